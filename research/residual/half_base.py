"""The residual layer on a full- or a half-resolution base: real coded bytes, no post-filter.

Run from the repository root: ``HB=3,4,6 PYTHONPATH=. python research/residual/half_base.py 2,4,8,12 IMAGE...``.
For each quality of the default model, codes every image's base with `vqvae2-wide` (the default's
network) at the ladder's base quality, and its half-size Lanczos downsampling at each base quality
of ``HB``, upsampled bicubically; then the residual layer of that quality (RDOQ, row offsets) on
each. Prints the mean (bpp, PSNR) of each base per quality and each half base's BD-rate against the
full one. This is how the half-resolution base and its base quality 3 were chosen
(research/residual/README.md).
"""

import os
import sys

import numpy as np
from PIL import Image

from aecodec.bench.bdrate import bd_rate, shared_range
from aecodec.codec.api import Codec
from aecodec.codec.residual_coding import decode_residual, encode_residual
from aecodec.codec.residual_rdo import rdo_chooser
from aecodec.models.model_files import resolve_model
from aecodec.models.residual import blocks_shape

MODEL = resolve_model("vqvae2-wide-rpf")
BASE = Codec("vqvae2-wide")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * np.log10(255**2 / np.square(a.astype(float) - b).mean())


def with_residual(x: np.ndarray, base: np.ndarray, base_bytes: int, quality: int) -> tuple[float, float]:
    """(bpp, PSNR) of the base plus the residual layer of ``quality`` coded on it."""
    layer, level = MODEL.residual, MODEL.quality_plan(quality)[1]
    shape = blocks_shape(x.shape[1], x.shape[0])
    payload = encode_residual(layer, level, rdo_chooser(layer, level, x, base), shape)
    decoded = base.copy()
    layer.add_to(decoded, decode_residual(layer, level, payload, shape), level)
    return 8 * (base_bytes + len(payload)) / x.shape[0] / x.shape[1], psnr(decoded, x)


def main() -> None:
    halves = [int(q) for q in os.environ.get("HB", "3").split(",")]
    qualities, files = [int(q) for q in sys.argv[1].split(",")], sys.argv[2:]
    names = ["full"] + [f"half{q}" for q in halves]
    curves: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for quality in qualities:
        points: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
        for path in files:
            image = Image.open(path).convert("RGB")
            x, (width, height) = np.asarray(image), image.size
            data = BASE.compress(image, MODEL.quality_plan(quality)[0])
            points["full"].append(with_residual(x, np.asarray(BASE.decompress(data)), len(data), quality))
            small = image.resize((width // 2, height // 2), Image.Resampling.LANCZOS)
            for half in halves:
                data = BASE.compress(small, half)
                base = np.asarray(BASE.decompress(data).resize((width, height), Image.Resampling.BICUBIC))
                points[f"half{half}"].append(with_residual(x, base, len(data), quality))
        for name in names:
            curves[name].append(tuple(np.mean(points[name], 0)))
        print(quality, " ".join(f"{n} {curves[n][-1][0]:.3f}/{curves[n][-1][1]:.2f}" for n in names), flush=True)
    full_rate, full_psnr = zip(*curves["full"])
    for name in names[1:]:
        rate, quality_db = zip(*curves[name])
        low, high = shared_range(full_psnr, quality_db)
        print(f"{name}: BD {bd_rate(full_rate, full_psnr, rate, quality_db):+.2f}% over {low:.1f}-{high:.1f} dB")


if __name__ == "__main__":
    main()
