"""Encode/decode seconds and entropy-coding overhead of our codec on one image.

``python -m aecodec.bench.speed IMAGE [--model M] [--qualities 1,4,10] [--repeats 3]``
prints, per quality: file bytes, bpp, the ideal size of the same symbols under the same integer
frequency tables, the coder's overhead over that ideal, header bytes, and median seconds.
"""

import argparse
import statistics
import time

import torch

from aecodec.bitstream.format import unpack
from aecodec.codec.api import Codec
from aecodec.codec.images import load_pixels
from aecodec.models.integer_prior import code_length


def median_seconds(function, repeats: int) -> tuple[float, object]:
    """Median wall time of ``repeats`` calls, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def measure(codec: Codec, image: str, quality: int, repeats: int) -> dict:
    """One row of the speed table for ``image`` at ``quality``."""
    pixels, _ = load_pixels(image, codec.max_pixels)
    encode_s, data = median_seconds(lambda: codec.compress(pixels, quality), repeats)
    decode_s, _ = median_seconds(lambda: codec.decompress(data), repeats)
    file = unpack(data)
    ideal = sum(code_length(codec.model.prior, t.top, t.bottom)[0] for t in codec.analyse(pixels, quality))
    stream_bits = 8 * sum(len(s) for s in file.streams)
    return {"quality": quality, "bytes": len(data), "bpp": 8 * len(data) / (pixels.shape[0] * pixels.shape[1]),
            "ideal_bits": ideal, "stream_bits": stream_bits, "overhead_%": 100 * (stream_bits / ideal - 1),
            "header_bytes": len(data) - stream_bits // 8, "encode_s": encode_s, "decode_s": decode_s}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aecodec.bench.speed", description=__doc__.splitlines()[0])
    parser.add_argument("image")
    parser.add_argument("--model", help="model name or .safetensors path (default: the shipped default)")
    parser.add_argument("--qualities", default="1,4,10", help="comma-separated qualities")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    codec = Codec(args.model)
    print(f"threads={torch.get_num_threads()} model={codec.model.name}")
    columns = ["quality", "bytes", "bpp", "ideal_bits", "stream_bits", "overhead_%", "header_bytes", "encode_s", "decode_s"]
    print(" ".join(f"{c:>12}" for c in columns))
    for quality in (int(q) for q in args.qualities.split(",")):
        row = measure(codec, args.image, quality, args.repeats)
        print(" ".join(f"{row[c]:>12.4f}" if isinstance(row[c], float) else f"{row[c]:>12}" for c in columns))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
