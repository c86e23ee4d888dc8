"""Does the base's prior, trained on full-resolution crops, fit the half-resolution bases it now codes?

Run from the repository root: ``PYTHONPATH=. python research/prior/finetune.py CACHE STEPS [LR]``.
The default model's integer prior is turned back into a float one (its integer units kept, so the
float twin gives the same tables up to rounding), fine-tuned on the indices of half-resolution
training photos (all but 010/020/030/040) at the half-base qualities the ladder uses (1-3), then
re-quantized; the integer code length of the indices of the Kodak images and the held-out photos
(half resolution, whole images) is compared before and after. CACHE (a pickle) keeps the indices.
"""

import os
import pickle
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from aecodec.codec.api import Codec
from aecodec.codec.effort import effort_plan, encode_tile
from aecodec.codec.tiling import pad_to_multiple, to_tensor
from aecodec.models.integer_prior import IntegerConv, IntegerLevelPrior, code_length, quantize_prior
from aecodec.models.prior import HierarchicalPrior, LevelPrior, PriorConfig
from aecodec.models.resampling import downsample2x
from aecodec.training.prior import variants
from research.postfilter.compare import rgb

SHARED = Path("../shared/data")
HELD = ("010", "020", "030", "040")
QUALITIES = (1, 2, 3)
Maps = tuple[list[Tensor], list[Tensor]]  # (top stages, bottom stages), each (H, W)


def index_maps(codec: Codec, pixels: np.ndarray, quality: int) -> Maps:
    """Base indices of a whole half-resolution image (one tile) at base ``quality``."""
    x = pad_to_multiple(to_tensor(downsample2x(pixels)), codec.network.stride)
    with torch.no_grad():
        return encode_tile(codec.network, codec.model.prior, x, quality, "psnr", effort_plan(2))


def dataset(cache: str) -> dict[str, list[tuple[int, Maps]]]:
    if os.path.exists(cache):
        return pickle.loads(Path(cache).read_bytes())
    codec = Codec()
    photos = sorted((SHARED / "photos").glob("*.png"))
    sets = {
        "train": [p for p in photos if p.stem not in HELD],
        "held": [p for p in photos if p.stem in HELD],
        "kodak": sorted((SHARED / "kodak").glob("*.png")),
    }
    out: dict[str, list[tuple[int, Maps]]] = {}
    for name, paths in sets.items():
        out[name] = []
        for path in paths:
            images = variants(rgb(path)) if name == "train" else [rgb(path)]
            for pixels in images:
                for q in QUALITIES:
                    out[name].append((q, index_maps(codec, pixels, q)))
        print(name, len(out[name]), flush=True)
    Path(cache).write_bytes(pickle.dumps(out))
    return out


def float_conv(conv: IntegerConv, weight: Tensor, kernel: int, scale: float = 1.0) -> torch.nn.Conv2d:
    """A float convolution computing the integer one's output units (before clamping)."""
    out_ch = weight.shape[0]
    in_ch = weight.shape[1] // (kernel * kernel)
    gain = conv.multiplier.double() / 2.0**conv.shift * scale
    layer = torch.nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2)
    w = weight.double().view(out_ch, kernel, kernel, in_ch).permute(0, 3, 1, 2) * gain.view(-1, 1, 1, 1)
    layer.weight.data = w.float()
    layer.bias.data = (conv.bias.double() * gain).float()
    return layer


def float_level(integer: IntegerLevelPrior, level: LevelPrior) -> LevelPrior:
    """Load ``level`` (a float prior of the same shape) with the integer one's tables, in its integer units."""
    level.stage_bias.data = integer.stage_bias.float()
    for name in ("previous", "coarser", "anchors"):
        for table, values in zip(getattr(level, name), getattr(integer, name)):
            table.weight.data = values.float()
    taps = integer.conv1.weight.shape[1] // 9
    both = torch.cat([integer.conv1.weight.view(-1, 9, taps), integer.conv1_neighbours.view(-1, 9, taps)], 2)
    level.conv1 = float_conv(integer.conv1, both.flatten(1), 3)
    level.conv2 = float_conv(integer.conv2, integer.conv2.weight, 3)
    level.head = float_conv(integer.head, integer.head.weight, 1, 1 / 32)
    return level


def float_prior(codec: Codec) -> HierarchicalPrior:
    cfg, integer = codec.network.config, codec.model.prior
    prior = HierarchicalPrior(cfg.num_codes, cfg.top_stages, cfg.bottom_stages, PriorConfig())
    float_level(integer.top, prior.top)
    float_level(integer.bottom, prior.bottom)
    return prior


def batch(maps: Maps) -> Maps:
    return [t[None] for t in maps[0]], [t[None] for t in maps[1]]


def per_quality(items: list[tuple[int, Maps]], bits_per_index) -> dict[int, float]:
    """Mean over images of ``bits_per_index(maps)``, per base quality."""
    out: dict[int, list[float]] = {}
    for q, maps in items:
        out.setdefault(q, []).append(bits_per_index(maps))
    return {q: float(np.mean(v)) for q, v in sorted(out.items())}


@torch.no_grad()
def float_bits(prior: HierarchicalPrior, items: list[tuple[int, Maps]]) -> dict[int, float]:
    """Mean bits per index per base quality under the float prior."""
    return per_quality(items, lambda maps: float(torch.cat([t.flatten() for t in prior.bits(*batch(maps))]).mean()))


def integer_bits(prior, items: list[tuple[int, Maps]]) -> dict[int, float]:
    """Mean exact bits per index per base quality under an integer prior."""

    def bits_per_index(maps: Maps) -> float:
        bits, count = code_length(prior, *maps)
        return bits / count

    return per_quality(items, bits_per_index)


def train(prior: HierarchicalPrior, items: list[tuple[int, Maps]], steps: int, lr: float) -> None:
    optimizer = torch.optim.Adam(prior.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    generator = torch.Generator().manual_seed(0)
    start = time.time()
    for step in range(steps):
        _, maps = items[int(torch.randint(len(items), (1,), generator=generator))]
        top, bottom = prior.bits(*batch(maps))
        loss = torch.cat([top.flatten(), bottom.flatten()]).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 500 == 0:
            print(f"step {step} loss {float(loss):.4f} {time.time() - start:.0f} s", flush=True)


def main() -> None:
    cache, steps = sys.argv[1], int(sys.argv[2])
    lr = float(sys.argv[3]) if len(sys.argv) > 3 else 3e-4
    data = dataset(cache)
    codec = Codec()
    prior = float_prior(codec)
    for name in ("train", "held", "kodak"):
        print(name, "integer", integer_bits(codec.model.prior, data[name]), "float", float_bits(prior, data[name]))
    train(prior, data["train"], steps, lr)
    prior.eval()
    top, bottom = batch(next(maps for q, maps in data["train"] if q == 3))
    integer = quantize_prior(prior, top, bottom)
    for name in ("train", "held", "kodak"):
        print(name, "tuned integer", integer_bits(integer, data[name]), "float", float_bits(prior, data[name]))
    torch.save(prior.state_dict(), cache + f".prior{steps}.pt")


if __name__ == "__main__":
    main()
