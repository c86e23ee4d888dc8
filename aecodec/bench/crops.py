"""A visual comparison grid: the same crop of one image for each codec near given target bpps."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from aecodec.bench.datasets import CROP_SIZE, DatasetImage, center_crop
from aecodec.bench.runner import CodecResult, ImageResult


def closest_point(result: CodecResult, image: str, target_bpp: float) -> ImageResult:
    """The per-image result of `image` whose bpp is closest to `target_bpp`."""
    candidates = [r for r in result.images if r.image == image]
    if not candidates:
        raise ValueError(f"{result.name} has no results for image {image}")
    return min(candidates, key=lambda r: abs(r.bpp - target_bpp))


def crop_grid(results: Sequence[CodecResult], image: DatasetImage, targets: Sequence[float]) -> Figure:
    """One row per target bpp: the original crop, then each codec's decode at its closest quality.

    The decodes are the benchmark's own (``run_benchmark``'s ``crop_images``), not new encodes: at a
    top effort an encode takes minutes. Captions give the quality, and the bpp and PSNR of the whole
    image at that quality.
    """
    cols = 1 + len(results)
    # Constrained layout reserves each title's height, so two-line captions never cover the row above.
    fig = Figure(figsize=(2.6 * cols, 3.0 * len(targets)), layout="constrained")
    axes = fig.subplots(len(targets), cols, squeeze=False)
    original = center_crop(image.pixels)
    for row, target in zip(axes, targets):
        panels = [(original, f"original\n(target {target:g} bpp)")]
        for result in results:
            point = closest_point(result, image.name, target)
            if (image.name, point.quality) not in result.crops:
                raise ValueError(f"{result.name} kept no decode of {image.name}: benchmark it among the crop images")
            caption = f"{result.name} q={point.quality}\n{point.bpp:.3f} bpp, {point.psnr:.2f} dB"
            panels.append((result.crops[(image.name, point.quality)], caption))
        for ax, (pixels, caption) in zip(row, panels):
            ax.imshow(pixels, interpolation="nearest")
            ax.set_title(caption, fontsize=8)
            ax.axis("off")
    fig.suptitle(f"{image.name}, central {CROP_SIZE}x{CROP_SIZE} crop (bpp/PSNR of the whole image)", fontsize=9)
    return fig


def write_crop_grid(
    results: Sequence[CodecResult],
    image: DatasetImage,
    targets: Sequence[float],
    path: str | Path,
) -> None:
    """Save :func:`crop_grid` as a PNG."""
    crop_grid(results, image, targets).savefig(path, dpi=110)
