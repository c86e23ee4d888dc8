"""Projecting the filtered decode back into the residual's quantization cells (issue 19, session 10). Scratch.

The post-filter does not know what the residual layer coded: its output may move a KLT coefficient
of a block further than the quantizer's rounding allows. Clipping every coefficient of the filtered
residual (filtered image - base) to within ``reach`` steps of the decoded one is a projection onto a
convex set; where the set holds the original (plain rounding: 0.5 + the deadzone), it can only bring
the image closer. RDOQ moves coefficients further, and the filter errs too, so the reach is swept.

``PYTHONPATH=. python research/postfilter/consistency.py fit TRAIN.pt`` chooses a reach per band on
the training decodes (PSNR-weighted squared error in the KLT domain, which the orthonormal basis
makes the pixels'); ``... eval EVAL.pt R,...`` reports the dB gained on the bench images with one
reach, or a reach per band (15 values joined by ``/``), on ``shapes.py cache train|eval``.
"""

import sys
from pathlib import Path

import numpy as np
import torch

from aecodec.codec.api import Codec
from aecodec.models.residual import BAND, BANDS, from_blocks, product, to_blocks
from research.postfilter.shapes import psnr, rgb

REACHES = np.array([0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.8, 1.0, 1e9])


def coefficients(codec: Codec, images: list[np.ndarray], base: np.ndarray, quality: int) -> list[np.ndarray]:
    """The (blocks, 192) KLT coefficients of each image's residual over ``base`` at ``quality``'s level."""
    layer, level = codec.model.residual, codec.model.quality_plan(quality)[1]
    mean, basis = layer.means[level.basis], layer.bases[level.basis]
    return [product(to_blocks(a.astype(np.float32) - base) - mean, basis.T) for a in images]


def projected(
    codec: Codec, filtered: np.ndarray, decoded: np.ndarray, base: np.ndarray, quality: int, reach
) -> np.ndarray:
    """``filtered`` with each block's coefficients within ``reach`` steps (one, or one per band) of ``decoded``'s."""
    layer, level = codec.model.residual, codec.model.quality_plan(quality)[1]
    mean, basis = layer.means[level.basis], layer.bases[level.basis]
    mine, coded = coefficients(codec, [filtered, decoded], base, quality)
    width = (np.asarray(reach, dtype=np.float32)[BAND] if np.ndim(reach) else reach) * level.step
    residual = from_blocks(product(np.clip(mine, coded - width, coded + width), basis) + mean)
    return (base + residual[: base.shape[0], : base.shape[1]]).round().clip(0, 255).astype(np.uint8)


def fit(train_cache: str) -> None:
    items, codec = torch.load(train_cache), Codec()
    errors = np.zeros((BANDS, len(REACHES)))
    for quality, *images in items:
        decoded, base, original = (a.permute(1, 2, 0).numpy() for a in images)
        filtered = codec.model.postfilter.apply(decoded, quality)
        mine, coded, truth = coefficients(codec, [filtered, decoded, original], base, quality)
        step = codec.model.quality_plan(quality)[1].step
        weight = 1 / max(np.square(filtered.astype(float) - original).mean(), 1e-2)
        for k, reach in enumerate(REACHES):
            error = np.square(np.clip(mine, coded - reach * step, coded + reach * step) - truth).reshape(-1, 192).sum(0)
            errors[:, k] += weight * np.bincount(BAND, error, minlength=BANDS)
    relative = errors.sum(0) / errors[:, -1].sum()
    print("reach per band:", "/".join(f"{r:g}" for r in REACHES[errors.argmin(1)]))
    print("one reach, error relative to none:", " ".join(f"{r:g}:{e:.5f}" for r, e in zip(REACHES, relative)))
    print(f"a reach per band, relative error: {errors.min(1).sum() / errors[:, -1].sum():.5f}")


def evaluate(eval_cache: str, spec: str) -> None:
    items, codec, gains = torch.load(eval_cache, weights_only=False), Codec(), {}
    reaches = [np.array([float(v) for v in a.split("/")]) if "/" in a else float(a) for a in spec.split(",")]
    for name, path, quality, _, decoded, base in items:
        x = rgb(Path(path))
        filtered = codec.model.postfilter.apply(decoded, quality)
        before = psnr(filtered, x)
        for k, reach in enumerate(reaches):
            after = psnr(projected(codec, filtered, decoded, base, quality, reach), x)
            gains.setdefault((name, k), {}).setdefault(quality, []).append(after - before)
    for (name, k), by_quality in gains.items():
        mean = np.mean([np.mean(v) for v in by_quality.values()])
        line = " ".join(f"q{q}:{np.mean(v):+.3f}" for q, v in sorted(by_quality.items()))
        print(f"{name} {spec.split(',')[k]}: mean {mean:+.4f} dB | {line}", flush=True)


if __name__ == "__main__":
    fit(sys.argv[2]) if sys.argv[1] == "fit" else evaluate(sys.argv[2], sys.argv[3])
