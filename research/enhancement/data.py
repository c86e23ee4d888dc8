"""Images, crops and the VQ-VAE-2 base through aecodec's public API (`aecodec.Codec`)."""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image

import aecodec

KODAK = "/work/shared/data/kodak"


@functools.lru_cache(maxsize=1)
def codec() -> aecodec.Codec:
    return aecodec.Codec()


def load(path: str, crop: int | None = None) -> np.ndarray:
    """RGB uint8; with ``crop``, the centre crop of that side."""
    img = np.asarray(Image.open(path).convert("RGB"))
    if crop:
        h, w = img.shape[:2]
        top, left = (h - crop) // 2, (w - crop) // 2
        img = img[top : top + crop, left : left + crop]
    return np.ascontiguousarray(img)


def base(pixels: np.ndarray, quality: int) -> tuple[np.ndarray, int]:
    """The base decoder's output pixels and the real .aec size in bits at ``quality``."""
    data = codec().compress(Image.fromarray(pixels), quality=quality)
    return np.asarray(codec().decompress(data).convert("RGB")), len(data) * 8
