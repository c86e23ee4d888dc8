"""The tile grid: how an image of any size is cut into independently coded tiles.

Each tile owns a core square of ``tile_size - 2*overlap`` pixels (clipped at the image border) and is
coded over that core grown by ``overlap`` pixels on every side the image allows, so a decoder can
drop the tile's border pixels, where reconstructions are worst, and seams stay invisible.
"""

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class Box:
    """A rectangle of pixels: top-left corner and size."""

    top: int
    left: int
    height: int
    width: int

    def slices(self) -> tuple[slice, slice]:
        return slice(self.top, self.top + self.height), slice(self.left, self.left + self.width)


@dataclass(frozen=True)
class Tile:
    """The pixels a tile is responsible for (core) and the pixels it codes (region, contains core)."""

    core: Box
    region: Box


def tile_grid(width: int, height: int, tile_size: int, overlap: int) -> Iterator[Tile]:
    """Tiles in row-major order, as specified in docs/FORMAT.md; lazy, so a forged file with a huge
    grid fails on its first tile without the grid ever being built."""
    step = tile_size - 2 * overlap
    for r in range(math.ceil(height / step)):
        for c in range(math.ceil(width / step)):
            top, left = r * step, c * step
            core = Box(top, left, min(step, height - top), min(step, width - left))
            r_top, r_left = max(0, top - overlap), max(0, left - overlap)
            r_bottom = min(height, top + core.height + overlap)
            r_right = min(width, left + core.width + overlap)
            yield Tile(core, Box(r_top, r_left, r_bottom - r_top, r_right - r_left))


def padded_size(size: int, multiple: int) -> int:
    """``size`` rounded up to a multiple of ``multiple``."""
    return -(-size // multiple) * multiple


def pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """Pad a (1, C, H, W) image on the bottom/right by edge replication to sides divisible by ``multiple``."""
    h, w = x.shape[-2:]
    ph, pw = padded_size(h, multiple) - h, padded_size(w, multiple) - w
    if ph == 0 and pw == 0:
        return x
    if h == 1 or w == 1 or ph >= h or pw >= w:
        # Replicate pads of any size; reflect would need the image to be larger than the pad.
        return F.pad(x, (0, pw, 0, ph), mode="replicate")
    return F.pad(x, (0, pw, 0, ph), mode="reflect")


def core_within_region(tile: Tile) -> tuple[slice, slice]:
    """Where a tile's core lies inside its decoded region."""
    dy, dx = tile.core.top - tile.region.top, tile.core.left - tile.region.left
    return slice(dy, dy + tile.core.height), slice(dx, dx + tile.core.width)


def to_tensor(pixels) -> Tensor:
    """A (H, W, 3) uint8 array as a (1, 3, H, W) float tensor in [0, 1]."""
    return torch.from_numpy(np.array(pixels)).permute(2, 0, 1)[None].float() / 255
