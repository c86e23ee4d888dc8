"""A visual comparison grid: the same crop of one image for each codec near given target bpps."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from aecodec.bench.baselines import CodecUnderTest
from aecodec.bench.datasets import DatasetImage
from aecodec.bench.metrics import as_rgb_array
from aecodec.bench.runner import CodecResult, ImageResult

CROP_SIZE = 192


def closest_point(result: CodecResult, image: str, target_bpp: float) -> ImageResult:
    """The per-image result of `image` whose bpp is closest to `target_bpp`."""
    candidates = [r for r in result.images if r.image == image]
    if not candidates:
        raise ValueError(f"{result.name} has no results for image {image}")
    return min(candidates, key=lambda r: abs(r.bpp - target_bpp))


def center_crop(pixels: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """The central size x size window of an image (the whole image if it is smaller)."""
    h, w = pixels.shape[:2]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return pixels[top : top + size, left : left + size]


def crop_grid(
    coded: Sequence[tuple[CodecUnderTest, CodecResult]], image: DatasetImage, targets: Sequence[float]
) -> Figure:
    """One row per target bpp: the original crop, then each codec re-coded at its closest quality.

    Captions give the quality, and the bpp and PSNR of the whole image at that quality.
    """
    cols = 1 + len(coded)
    # Constrained layout reserves each title's height, so two-line captions never cover the row above.
    fig = Figure(figsize=(2.6 * cols, 3.0 * len(targets)), layout="constrained")
    axes = fig.subplots(len(targets), cols, squeeze=False)
    original = center_crop(image.pixels)
    for row, target in zip(axes, targets):
        panels = [(original, f"original\n(target {target:g} bpp)")]
        for codec, result in coded:
            point = closest_point(result, image.name, target)
            decoded = codec.decode(codec.encode(Image.fromarray(image.pixels), point.quality))
            caption = f"{codec.name} q={point.quality}\n{point.bpp:.3f} bpp, {point.psnr:.2f} dB"
            panels.append((center_crop(as_rgb_array(decoded)), caption))
        for ax, (pixels, caption) in zip(row, panels):
            ax.imshow(pixels, interpolation="nearest")
            ax.set_title(caption, fontsize=8)
            ax.axis("off")
    fig.suptitle(f"{image.name}, central {CROP_SIZE}x{CROP_SIZE} crop (bpp/PSNR of the whole image)", fontsize=9)
    return fig


def write_crop_grid(
    coded: Sequence[tuple[CodecUnderTest, CodecResult]],
    image: DatasetImage,
    targets: Sequence[float],
    path: str | Path,
) -> None:
    """Save :func:`crop_grid` as a PNG."""
    crop_grid(coded, image, targets).savefig(path, dpi=110)
