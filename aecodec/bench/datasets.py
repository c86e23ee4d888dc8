"""Image folders for the benchmark: the images of a folder (:func:`~aecodec.codec.images.list_images`) as RGB."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from aecodec.codec.images import list_images

CROP_SIZE = 192  # side of the crops the report shows


@dataclass(frozen=True)
class DatasetImage:
    """One test image: its file name (the key used in results) and its pixels as (H, W, 3) uint8."""

    name: str
    pixels: np.ndarray

    @property
    def num_pixels(self) -> int:
        return int(self.pixels.shape[0] * self.pixels.shape[1])


def center_crop(pixels: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """The central size x size window of an image (the whole image if it is smaller)."""
    h, w = pixels.shape[:2]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return pixels[top : top + size, left : left + size]


def load_rgb(path: str | Path) -> np.ndarray:
    """Load an image file as an (H, W, 3) uint8 RGB array (grayscale and palette images converted)."""
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def load_dataset(folder: str | Path, limit: int | None = None) -> list[DatasetImage]:
    """Load the first `limit` images (all when None) of `folder`, in `list_images` order."""
    files = list_images(folder)[:limit]
    return [DatasetImage(p.name, load_rgb(p)) for p in files]
