"""Which post-filter shape gains most? Train variants on the same decodes, compare on held-out photos.

The filter does not change a file's bits, so its BD-rate effect is its PSNR gain at fixed rates.
Variants: the shipped shape; plus a learned bias per position in the 8x8 block grid (the residual
layer's blocks: a deblocking filter knows where the edges are); a fourth convolution; 48 channels.
Usage: ``python research/postfilter/variants.py STEPS`` from the repository root (decodes are cached
in runs/postfilter-variants/).
"""

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from aecodec.codec.api import Codec
from aecodec.codec.images import list_images
from aecodec.models.model_files import resolve_model
from aecodec.models.postfilter import PostFilter
from aecodec.training.data import split_files
from aecodec.training.postfilter import decodes, train
from aecodec.training.residual import VALIDATION_FRACTION

CACHE = Path("runs/postfilter-variants")
HELD_QUALITIES = (2, 5, 8, 11, 14, 17, 20, 23, 26)


class GridFilter(PostFilter):
    """The shipped filter plus a learned bias per pixel position in the 8x8 block grid, after the first layer."""

    def __init__(self, qualities: int, channels: int = 32, depth: int = 3) -> None:
        super().__init__(qualities, channels)
        self.grid_bias = nn.Parameter(torch.zeros(channels, 8, 8))
        self.extra = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in range(depth - 3))

    def correction(self, x: Tensor, quality: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        grid = self.grid_bias.repeat(1, -(-h // 8), -(-w // 8))[:, :h, :w]
        hidden = F.relu(self.first(x) + self.quality_bias[quality - 1][:, :, None, None] + grid)
        hidden = F.relu(self.middle(hidden))
        for conv in self.extra:
            hidden = F.relu(conv(hidden))
        return self.last(hidden)


class DeepFilter(PostFilter):
    """The shipped filter with one more hidden convolution."""

    def __init__(self, qualities: int, channels: int = 32) -> None:
        super().__init__(qualities, channels)
        self.second = nn.Conv2d(channels, channels, 3, padding=1)

    def correction(self, x: Tensor, quality: Tensor) -> Tensor:
        hidden = F.relu(self.first(x) + self.quality_bias[quality - 1][:, :, None, None])
        return self.last(F.relu(self.second(F.relu(self.middle(hidden)))))


def cached_decodes(codec: Codec, name: str, images: list[np.ndarray], qualities: list[int] | None) -> list:
    path = CACHE / f"{name}.pt"
    if path.exists():
        return torch.load(path)
    if qualities is None:
        pairs = decodes(codec, images, 3)
    else:
        pairs = []
        for pixels in images:
            for q in qualities:
                decoded = np.asarray(codec.decompress(codec.compress(pixels, q)).convert("RGB"))
                pairs.append((q, *(torch.from_numpy(a).permute(2, 0, 1) for a in (decoded, pixels))))
    CACHE.mkdir(parents=True, exist_ok=True)
    torch.save(pairs, path)
    return pairs


@torch.no_grad()
def held_out_gain(postfilter: PostFilter, pairs: list) -> dict[int, float]:
    """dB gained per quality on the held-out decodes (gain 1, no rounding: the filter's raw effect)."""
    errors: dict[int, list[float]] = {}
    for quality, decoded, original in pairs:
        x, target = decoded[None].float() / 255, original[None].float() / 255
        before = float(F.mse_loss(x, target))
        after = float(F.mse_loss((postfilter(x, torch.tensor([quality]))).clamp(0, 1), target))
        errors.setdefault(quality, []).append(10 * np.log10(before / after))
    return {q: float(np.mean(v)) for q, v in errors.items()}


def main() -> None:
    steps = int(sys.argv[1])
    model = resolve_model("vqvae2-wide-r")  # the base of the shipped filter, decoded without a filter
    codec = Codec(model)
    train_files, held_files = split_files(list_images("../shared/data/photos"), VALIDATION_FRACTION)
    load = [np.asarray(Image.open(f).convert("RGB")) for f in train_files]
    train_pairs = cached_decodes(codec, "train", load, None)
    held = [np.asarray(Image.open(f).convert("RGB")) for f in held_files]
    held_pairs = cached_decodes(codec, "held", held, list(HELD_QUALITIES))
    variants = {
        "shipped shape": lambda: PostFilter(model.num_qualities),
        "grid bias": lambda: GridFilter(model.num_qualities),
        "four convolutions": lambda: DeepFilter(model.num_qualities),
        "grid bias, four convolutions": lambda: GridFilter(model.num_qualities, depth=4),
    }
    for name, make in variants.items():
        torch.manual_seed(0)
        postfilter = make()
        train(postfilter, train_pairs, steps, 16, 64, 0)
        gains = held_out_gain(postfilter.eval(), held_pairs)
        mean = np.mean(list(gains.values()))
        print(f"{name}: mean {mean:+.3f} dB; " + " ".join(f"q{q} {g:+.2f}" for q, g in gains.items()), flush=True)


if __name__ == "__main__":
    main()
