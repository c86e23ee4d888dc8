"""Training images: a folder of photos held in memory, sampled as random flipped crops.

Folders are listed by :func:`aecodec.codec.images.list_images`, the one image-folder lister.
"""

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from aecodec.codec.images import list_images


def parse_scales(text: str) -> tuple[float, ...]:
    """``--scales`` of the trainers: comma-separated scale factors, e.g. "1,0.7,0.5"."""
    return tuple(float(v) for v in text.split(","))


def add_scales_argument(parser: argparse.ArgumentParser, default: tuple[float, ...]) -> None:
    """The trainers' ``--scales`` option, its default written as it is typed."""
    parser.add_argument(
        "--scales",
        type=parse_scales,
        default=",".join(f"{scale:g}" for scale in default),
        help="train on each image at these scales, e.g. 1,0.7,0.5",
    )


def load_image_tensor(path: Path, min_side: int) -> Tensor:
    """An image as a (3, H, W) uint8 tensor, upscaled if a side is shorter than ``min_side``."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        if min(im.size) < min_side:
            scale = min_side / min(im.size)
            im = im.resize((max(min_side, round(im.width * scale)), max(min_side, round(im.height * scale))))
        return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1)


def downscaled(image: Tensor, scales: tuple[float, ...], min_side: int) -> list[Tensor]:
    """``image`` at each of ``scales`` (<= 1, Lanczos), skipping scales that would cut a side below ``min_side``.

    High-resolution photos hold less detail per pixel than Kodak-sized images; training on several
    scales shows the network both.
    """
    out = []
    _, h, w = image.shape
    for scale in scales:
        if not 0 < scale <= 1:
            raise ValueError(f"scales must be in (0, 1], got {scale}")
        size = (round(w * scale), round(h * scale))
        if scale == 1:
            out.append(image)
        elif min(size) >= min_side:
            small = Image.fromarray(image.permute(1, 2, 0).numpy()).resize(size, Image.Resampling.LANCZOS)
            out.append(torch.from_numpy(np.asarray(small).copy()).permute(2, 0, 1))
    return out


def split_files(files: list[Path], val_fraction: float) -> tuple[list[Path], list[Path]]:
    """Deterministic train/validation split: every k-th file (at least one) goes to validation."""
    if val_fraction <= 0 or len(files) < 2:
        return files, []
    step = min(max(2, round(1 / val_fraction)), len(files))
    return [f for i, f in enumerate(files) if i % step != step - 1], files[step - 1 :: step]


def random_crops(images: list[Tensor], batch: int, crop: int, generator: torch.Generator) -> Tensor:
    """A (batch, 3, crop, crop) float batch in [0, 1] of random crops with random horizontal flips."""
    out = torch.empty(batch, 3, crop, crop)
    for b in range(batch):
        image = images[int(torch.randint(len(images), (1,), generator=generator))]
        _, h, w = image.shape
        top = int(torch.randint(h - crop + 1, (1,), generator=generator))
        left = int(torch.randint(w - crop + 1, (1,), generator=generator))
        patch = image[:, top : top + crop, left : left + crop]
        if torch.rand(1, generator=generator) < 0.5:
            patch = patch.flip(-1)
        out[b] = patch.float() / 255
    return out


def center_crops(images: list[Tensor], crop: int) -> Tensor:
    """A deterministic validation batch: the centre crop of every image."""
    out = []
    for image in images:
        _, h, w = image.shape
        top, left = (h - crop) // 2, (w - crop) // 2
        out.append(image[:, top : top + crop, left : left + crop].float() / 255)
    return torch.stack(out)


def training_images(
    data: str | Path, crop: int, scales: tuple[float, ...], val_fraction: float
) -> tuple[list[Tensor], Tensor | None]:
    """The training split's images (each also at ``scales``) and the validation split's 256-px centre crops."""
    train_files, val_files = split_files(list_images(data), val_fraction)
    images = [small for f in train_files for small in downscaled(load_image_tensor(f, crop), scales, crop)]
    return images, center_crops([load_image_tensor(f, 256) for f in val_files], 256) if val_files else None
