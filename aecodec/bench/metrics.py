"""Distortion metrics on 8-bit RGB images: PSNR and MS-SSIM, as used in the RD benchmark.

Identical images have infinite PSNR. `psnr` returns `math.inf` for them; the benchmark records
`capped_db(value)` (at most `DB_CAP` = 100 dB) per image, so per-quality means stay finite and the
JSON output stays standard. The same cap applies to MS-SSIM expressed in dB.

MS-SSIM (5 scales, 11x11 Gaussian window) needs a smaller side of at least `MS_SSIM_MIN_SIDE`
(161) pixels. For smaller images `ms_ssim` returns `nan` rather than a reduced-scale variant, which
would not be comparable with published numbers; the benchmark's means skip `nan` values.
MS-SSIM runs on one torch thread (the caller's setting is restored): that is fast enough, and it
avoids the large slowdowns of oversubscribed threads on a busy machine.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from PIL import Image
from pytorch_msssim import ms_ssim as _pytorch_ms_ssim

from aecodec.codec.options import MS_SSIM_MIN_SIDE

PEAK = 255.0
DB_CAP = 100.0

ImageLike = np.ndarray | Image.Image


def as_rgb_array(img: ImageLike) -> np.ndarray:
    """Return `img` as an (H, W, 3) uint8 array; grayscale (2-D or L) is replicated to RGB."""
    if isinstance(img, Image.Image):
        img = np.asarray(img.convert("RGB"))
    arr = np.asarray(img)
    if arr.dtype != np.uint8:
        raise ValueError(f"expected an 8-bit image, got dtype {arr.dtype}")
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an RGB or grayscale image, got shape {arr.shape}")
    return arr


def _pair(a: ImageLike, b: ImageLike) -> tuple[np.ndarray, np.ndarray]:
    x, y = as_rgb_array(a), as_rgb_array(b)
    if x.shape != y.shape:
        raise ValueError(f"image sizes differ: {x.shape} vs {y.shape}")
    return x, y


def psnr(a: ImageLike, b: ImageLike) -> float:
    """PSNR in dB over all RGB samples with peak 255; `math.inf` when the images are identical."""
    x, y = _pair(a, b)
    mse = float(np.mean((x.astype(np.float64) - y.astype(np.float64)) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(PEAK**2 / mse)


def ms_ssim(a: ImageLike, b: ImageLike) -> float:
    """MS-SSIM (pytorch-msssim, data_range 255) of two RGB images; `nan` below 161 px (see module doc)."""
    x, y = _pair(a, b)
    if min(x.shape[:2]) < MS_SSIM_MIN_SIDE:
        return math.nan
    tx, ty = (torch.tensor(v).permute(2, 0, 1)[None].float() for v in (x, y))
    with torch.no_grad(), torch_threads(1):
        return float(_pytorch_ms_ssim(tx, ty, data_range=PEAK))


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def ms_ssim_db(value: float) -> float:
    """MS-SSIM on a dB scale, -10*log10(1 - value), capped at `DB_CAP` (CompressAI's plot convention)."""
    return capped_db(math.inf if value >= 1.0 else -10.0 * math.log10(1.0 - value))


def defined_mean(values: Sequence[float]) -> float:
    """Mean of the values that are not `nan` (MS-SSIM of small images); `nan` when none is."""
    defined = [v for v in values if not math.isnan(v)]
    return sum(defined) / len(defined) if defined else math.nan


def capped_db(value: float) -> float:
    """Clamp a dB value to at most `DB_CAP` so that averages over images stay finite."""
    return min(value, DB_CAP)
