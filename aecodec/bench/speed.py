"""Encode/decode seconds and entropy-coding overhead of our codec on one image.

``python -m aecodec.bench.speed IMAGE [--model M] [--qualities 1,4,10] [--efforts 2] [--repeats 3]
[--hyperprior]`` prints, per effort and quality: file bytes, bpp, the ideal size of the tile
streams under the same integer frequency tables, the coder's overhead over that ideal,
residual-chunk and other header bytes, and median seconds. ``--hyperprior`` also times
CompressAI's ``bmshj2018_hyperprior`` (quality-3 architecture, untrained weights, ``update()``d:
its speed does not depend on training) on the same image in the same process, as the reference of
issue 18's speed target.
"""

import argparse
import itertools

import torch

from aecodec.bench.runner import timed
from aecodec.bitstream.format import RESIDUAL, unpack
from aecodec.codec.api import Codec
from aecodec.codec.images import load_pixels
from aecodec.codec.options import DEFAULT_EFFORT
from aecodec.models.integer_prior import code_length


def measure(codec: Codec, image: str, quality: int, repeats: int, effort: int = DEFAULT_EFFORT) -> dict:
    """One row of the speed table for ``image`` at ``quality`` and encoder ``effort``."""
    pixels, _ = load_pixels(image, codec.max_pixels)
    data, encode_s = timed(lambda: codec.compress(pixels, quality, effort=effort), repeats)
    _, decode_s = timed(lambda: codec.decompress(data), repeats)
    file = unpack(data)
    tiles = codec.analyze(pixels, quality, half_base=file.header.half_base)
    ideal = sum(code_length(codec.model.prior, t.top, t.bottom)[0] for t in tiles)
    stream_bits = 8 * sum(len(s) for s in file.streams)
    return {
        "effort": effort,
        "quality": quality,
        "bytes": len(data),
        "bpp": 8 * len(data) / (pixels.shape[0] * pixels.shape[1]),
        "ideal_bits": ideal,
        "stream_bits": stream_bits,
        "overhead_%": 100 * (stream_bits / ideal - 1),
        "residual_bytes": len(file.chunk(RESIDUAL) or b""),
        "header_bytes": len(data) - stream_bits // 8 - len(file.chunk(RESIDUAL) or b""),
        "encode_s": encode_s,
        "decode_s": decode_s,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aecodec.bench.speed", description=__doc__.splitlines()[0])
    parser.add_argument("image")
    parser.add_argument("--model", help="model name or .safetensors path (default: the shipped default)")
    parser.add_argument("--qualities", default="1,4,10", help="comma-separated qualities")
    parser.add_argument("--efforts", default=str(DEFAULT_EFFORT), help="comma-separated encoder efforts")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--hyperprior", action="store_true", help="also time CompressAI's bmshj2018_hyperprior")
    args = parser.parse_args(argv)
    codec = Codec(args.model)
    print(f"threads={torch.get_num_threads()} model={codec.model.name}")
    columns = [
        "effort",
        "quality",
        "bytes",
        "bpp",
        "ideal_bits",
        "stream_bits",
        "overhead_%",
        "residual_bytes",
        "header_bytes",
        "encode_s",
        "decode_s",
    ]
    print(" ".join(f"{c:>12}" for c in columns))
    for effort, quality in itertools.product(_integers(args.efforts), _integers(args.qualities)):
        row = measure(codec, args.image, quality, args.repeats, effort)
        print(" ".join(f"{row[c]:>12.4f}" if isinstance(row[c], float) else f"{row[c]:>12}" for c in columns))
    if args.hyperprior:
        row = hyperprior_seconds(args.image, args.repeats)
        print(f"bmshj2018_hyperprior (quality 3 architecture): encode_s {row[0]:.4f} decode_s {row[1]:.4f}")
    return 0


def _integers(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


@torch.no_grad()
def hyperprior_seconds(image: str, repeats: int) -> tuple[float, float]:
    """Median compress and decompress seconds of CompressAI's bmshj2018_hyperprior on ``image`` (padded to 64)."""
    from compressai.zoo import bmshj2018_hyperprior

    net = bmshj2018_hyperprior(quality=3, pretrained=False).eval()
    net.update(force=True)
    pixels, _ = load_pixels(image, 1 << 27)
    x = torch.from_numpy(pixels[:, :, :3].copy()).permute(2, 0, 1)[None].float() / 255
    x = torch.nn.functional.pad(x, (0, -x.shape[-1] % 64, 0, -x.shape[-2] % 64))
    coded, encode_s = timed(lambda: net.compress(x), repeats)
    _, decode_s = timed(lambda: net.decompress(coded["strings"], coded["shape"]), repeats)
    return encode_s, decode_s


if __name__ == "__main__":
    raise SystemExit(main())
