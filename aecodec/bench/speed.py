"""Encode/decode seconds and entropy-coding overhead of our codec on one image.

``python -m aecodec.bench.speed IMAGE [--model M] [--qualities 1,4,10] [--repeats 3]``
prints, per quality: file bytes, bpp, the ideal size of the same symbols under the same integer
frequency tables, the coder's overhead over that ideal, header bytes, and median seconds.
"""

import argparse

import torch

from aecodec.bench.runner import timed
from aecodec.bitstream.format import unpack
from aecodec.codec.api import Codec
from aecodec.codec.images import load_pixels
from aecodec.models.integer_prior import code_length


def measure(codec: Codec, image: str, quality: int, repeats: int) -> dict:
    """One row of the speed table for ``image`` at ``quality``."""
    pixels, _ = load_pixels(image, codec.max_pixels)
    data, encode_s = timed(lambda: codec.compress(pixels, quality), repeats)
    _, decode_s = timed(lambda: codec.decompress(data), repeats)
    file = unpack(data)
    ideal = sum(code_length(codec.model.prior, t.top, t.bottom)[0] for t in codec.analyze(pixels, quality))
    stream_bits = 8 * sum(len(s) for s in file.streams)
    return {
        "quality": quality,
        "bytes": len(data),
        "bpp": 8 * len(data) / (pixels.shape[0] * pixels.shape[1]),
        "ideal_bits": ideal,
        "stream_bits": stream_bits,
        "overhead_%": 100 * (stream_bits / ideal - 1),
        "header_bytes": len(data) - stream_bits // 8,
        "encode_s": encode_s,
        "decode_s": decode_s,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aecodec.bench.speed", description=__doc__.splitlines()[0])
    parser.add_argument("image")
    parser.add_argument("--model", help="model name or .safetensors path (default: the shipped default)")
    parser.add_argument("--qualities", default="1,4,10", help="comma-separated qualities")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    codec = Codec(args.model)
    print(f"threads={torch.get_num_threads()} model={codec.model.name}")
    columns = [
        "quality",
        "bytes",
        "bpp",
        "ideal_bits",
        "stream_bits",
        "overhead_%",
        "header_bytes",
        "encode_s",
        "decode_s",
    ]
    print(" ".join(f"{c:>12}" for c in columns))
    for quality in (int(q) for q in args.qualities.split(",")):
        row = measure(codec, args.image, quality, args.repeats)
        print(" ".join(f"{row[c]:>12.4f}" if isinstance(row[c], float) else f"{row[c]:>12}" for c in columns))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
