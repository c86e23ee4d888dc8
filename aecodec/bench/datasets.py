"""Image folders for the benchmark: list the images of a folder in a stable order and load them as RGB."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from aecodec.errors import InputError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".pnm", ".bmp", ".tif", ".tiff", ".webp"})


@dataclass(frozen=True)
class DatasetImage:
    """One test image: its file name (the key used in results) and its pixels as (H, W, 3) uint8."""

    name: str
    pixels: np.ndarray

    @property
    def num_pixels(self) -> int:
        return int(self.pixels.shape[0] * self.pixels.shape[1])


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside `folder`, sorted by name; InputError if missing or without images."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"dataset folder not found: {root}")
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in dataset folder {root}")
    return files


def load_rgb(path: str | Path) -> np.ndarray:
    """Load an image file as an (H, W, 3) uint8 RGB array (grayscale and palette images converted)."""
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def load_dataset(folder: str | Path, limit: int | None = None) -> list[DatasetImage]:
    """Load the first `limit` images (all when None) of `folder`, in `list_images` order."""
    files = list_images(folder)[:limit]
    return [DatasetImage(p.name, load_rgb(p)) for p in files]
