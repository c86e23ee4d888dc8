"""Post-filter shapes against the shipped one, on the same decodes (issue 19, session 10). Scratch.

- ``side``: the decoded base beside the final decode. The decoder has the upsampled base for free;
  given ``decoded - base`` (the residual that was coded) the filter could tell a block whose residual
  quantized to zero (the base's blur, to sharpen) from one with coded detail (ringing, to smooth).
- ``plain``: the shipped filter trained as many more steps (the control).
- ``deeper``: the shipped filter with a second residual block (zero-initialised: starts as shipped).
- ``shuffle``: a filter at half resolution on 2x2 pixel groups (12 channels in and out), 48 hidden
  channels, three convolutions and a residual block, from scratch: 18k multiply-adds per pixel
  against 29k, a receptive field twice as wide.

From the repository root, ``PYTHONPATH=.``:

- ``python research/postfilter/side_input.py cache train|eval OUT.pt``: (quality, decoded, base,
  original) of the training photos (3 qualities each, as ``fit-postfilter``), or (size, decoded, base)
  of Kodak and the four held-out photos at qualities 2-28 every other (as ``compare.py``);
- ``... train TRAIN.pt KIND STEPS SEED OUT.pt``: Adam on PSNR-weighted squared error (at 3e-4 from
  the default model's filter, at 1e-3 for ``shuffle``), a fifth of it for the last 30% of the steps;
- ``... compare EVAL.pt KIND:FILTER.pt...``: BD-rate of each against the shipped filter on the same files;
- ``... export TRAIN.pt deeper:FILTER.pt NAME OUT.safetensors``: the default model with that filter,
  its gains fitted on the training decodes as ``fit-postfilter`` fits them.
"""

import hashlib
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aecodec.bench.bdrate import bd_rate
from aecodec.bitstream.format import unpack
from aecodec.codec.api import Codec
from aecodec.codec.images import list_images
from aecodec.models.model_files import model_bytes
from aecodec.models.postfilter import PostFilter, ResidualBlock, one_onednn_thread
from aecodec.training.data import split_files
from aecodec.training.loop import text_table
from aecodec.training.postfilter import fit_gains, psnr_weights
from aecodec.training.residual import VALIDATION_FRACTION
from research.postfilter.compare import QUALITIES, SETS, psnr, rgb

EVAL_SETS = {name: paths for name, (paths, _) in SETS.items()}


def decode_with_base(codec: Codec, pixels: np.ndarray, quality: int) -> tuple[int, np.ndarray, np.ndarray]:
    """(file size, unfiltered decode, upsampled base) of ``pixels`` at ``quality``, effort 2."""
    data = codec.compress(pixels, quality)
    file = unpack(data, codec.max_pixels)
    base = codec._synthesize(file.header, codec.tile_indices(file))
    return len(data), codec.decompress_unfiltered(data), base


def chw(a: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)


def cache(which: str, out: str) -> None:
    codec, items = Codec(), []
    if which == "train":
        files = split_files(list_images(str(SETS["held"][0][0].parent)), VALIDATION_FRACTION)[0]
        for i, path in enumerate(files):
            pixels = rgb(path)
            for j in range(3):
                quality = codec.qualities[(i * 3 + j) % len(codec.qualities)]
                _, decoded, base = decode_with_base(codec, pixels, quality)
                items.append((quality, chw(decoded), chw(base), chw(pixels)))
            print(path.name, flush=True)
    else:
        for name, paths in EVAL_SETS.items():
            for path in paths:
                pixels = rgb(path)
                for quality in QUALITIES:
                    size, decoded, base = decode_with_base(codec, pixels, quality)
                    items.append((name, str(path), quality, size, decoded, base))
                print(path.name, flush=True)
    torch.save(items, out)


class SideFilter(PostFilter):
    """The shipped filter with ``decoded - base`` as three more inputs of the first layer (zero-initialised)."""

    def __init__(self, qualities: int, channels: int, blocks: int) -> None:
        super().__init__(qualities, channels, blocks)
        self.side = nn.Conv2d(3, channels, 3, padding=1, bias=False)
        nn.init.zeros_(self.side.weight)

    def correction_with(self, x: Tensor, base: Tensor, quality: Tensor) -> Tensor:
        shift = self.quality_bias[quality - 1][:, :, None, None]
        hidden = F.relu(self.first(x) + self.side(x - base) + shift)
        return self.last(self.blocks(F.relu(self.middle(hidden))))


class PlainFilter(PostFilter):
    """The shipped filter under the same interface (the control: as many steps, no side input)."""

    def correction_with(self, x: Tensor, base: Tensor, quality: Tensor) -> Tensor:
        return self.correction(x, quality)


class ShuffleFilter(nn.Module):
    """A filter on 2x2 pixel groups at half resolution: 12 -> C -> C -> (residual block) -> 12 channels."""

    def __init__(self, qualities: int, channels: int = 48) -> None:
        super().__init__()
        self.first = nn.Conv2d(12, channels, 3, padding=1)
        self.quality_bias = nn.Parameter(torch.zeros(qualities, channels))
        self.middle = nn.Conv2d(channels, channels, 3, padding=1)
        self.block = ResidualBlock(channels)
        self.last = nn.Conv2d(channels, 12, 3, padding=1)
        nn.init.zeros_(self.last.weight)
        nn.init.zeros_(self.last.bias)

    def correction_with(self, x: Tensor, base: Tensor, quality: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        grouped = F.pixel_unshuffle(F.pad(x, (0, w % 2, 0, h % 2), mode="replicate"), 2)
        hidden = F.relu(self.first(grouped) + self.quality_bias[quality - 1][:, :, None, None])
        out = self.last(self.block(F.relu(self.middle(hidden))))
        return F.pixel_shuffle(out, 2)[..., :h, :w]


def made(kind: str) -> nn.Module:
    """A filter of ``kind``: all but ``shuffle`` start from the default model's (so as the shipped filter)."""
    own = Codec().model.postfilter
    if kind == "shuffle":
        return ShuffleFilter(len(own.gain))
    blocks = len(own.blocks) + (kind == "deeper")
    postfilter = (SideFilter if kind == "side" else PlainFilter)(len(own.gain), own.first.out_channels, blocks)
    postfilter.load_state_dict(own.state_dict(), strict=False)
    return postfilter


def train(train_cache: str, kind: str, steps: int, seed: int, out: str, batch: int = 16, crop: int = 64) -> None:
    items = torch.load(train_cache)
    weights = psnr_weights([(q, d, o) for q, d, _, o in items])
    postfilter, rate = made(kind).requires_grad_(True), 1e-3 if kind == "shuffle" else 3e-4
    optimizer = torch.optim.Adam(postfilter.parameters(), lr=rate)
    generator = torch.Generator().manual_seed(seed)
    for step in range(1, steps + 1):
        if step == int(0.7 * steps):
            optimizer.param_groups[0]["lr"] = rate / 5
        chosen = torch.randint(len(items), (batch,), generator=generator).tolist()
        crops, qualities = [], []
        for k in chosen:
            quality, decoded, base, original = items[k]
            top = int(torch.randint(decoded.shape[1] - crop + 1, (1,), generator=generator))
            left = int(torch.randint(decoded.shape[2] - crop + 1, (1,), generator=generator))
            crops.append(torch.stack([a[:, top : top + crop, left : left + crop] for a in (decoded, base, original)]))
            qualities.append(quality)
        x, base, target = (torch.stack(crops).float() / 255).unbind(1)
        error = (x + postfilter.correction_with(x, base, torch.tensor(qualities)) - target).square().mean((1, 2, 3))
        loss = (torch.tensor([weights[k] for k in chosen]) * error).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 500 == 0:
            print(f"step {step}: loss {loss.item():.4g}", flush=True)
    torch.save(postfilter.state_dict(), out)


@torch.no_grad()
def filtered(postfilter: nn.Module, decoded: np.ndarray, base: np.ndarray, quality: int) -> np.ndarray:
    """The whole image filtered at gain 1 (the shipped gains are near 1; scratch, not strips)."""
    x, b = (chw(a)[None].float() / 255 for a in (decoded, base))
    with one_onednn_thread():
        y = x + postfilter.correction_with(x, b, torch.tensor([quality]))
    return (y[0] * 255).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()


def compare(eval_cache: str, files: list[str]) -> None:
    items, originals = torch.load(eval_cache, weights_only=False), {}
    candidates = {"shipped": made("plain")}
    for spec in files:
        kind, file = spec.split(":", 1)
        candidates[Path(file).stem] = made(kind)
        candidates[Path(file).stem].load_state_dict(torch.load(file))
    points = {}  # (candidate, set) -> quality -> [(bpp, psnr)]
    for name, path, quality, size, decoded, base in items:
        x = originals.setdefault(path, rgb(Path(path)))
        bpp = 8 * size / x.shape[0] / x.shape[1]
        for label, postfilter in candidates.items():
            value = psnr(filtered(postfilter.eval(), decoded, base, quality), x)
            points.setdefault((label, name), {}).setdefault(quality, []).append((bpp, value))
    curves = {key: np.array([np.mean(v[q], 0) for q in sorted(v)]) for key, v in points.items()}
    for label in candidates:
        line = label
        for name in EVAL_SETS:
            ref, mine = curves[("shipped", name)], curves[(label, name)]
            dbs = mine[:, 1] - ref[:, 1]
            line += f" | {name} {bd_rate(ref[:, 0], ref[:, 1], mine[:, 0], mine[:, 1]):+.2f}%"
            line += f" ({dbs.min():+.3f}..{dbs.max():+.3f} dB)"
        print(line, flush=True)


def export(train_cache: str, spec: str, name: str, out: str) -> None:
    kind, file = spec.split(":", 1)
    trained, model = made(kind), Codec().model
    trained.load_state_dict(torch.load(file))
    postfilter = PostFilter(len(trained.gain), trained.first.out_channels, len(trained.blocks))
    postfilter.load_state_dict(trained.state_dict())
    pairs = [(q, d, o) for q, d, _, o in torch.load(train_cache)]
    report = fit_gains(postfilter.eval(), pairs, psnr_weights(pairs))
    metadata = {"postfilter_data": "photos (training split)", "postfilter_weighting": "psnr"}
    data = model_bytes(name, model.network, model.prior, model.residual, metadata, postfilter)
    Path(out).write_bytes(data)
    print(text_table(["quality", "decodes", "gain", "training dB"], report))
    print(f"saved {out} (sha256 {hashlib.sha256(data).hexdigest()[:16]})")


if __name__ == "__main__":
    command, *rest = sys.argv[1:]
    if command == "cache":
        cache(*rest)
    elif command == "train":
        train(rest[0], rest[1], int(rest[2]), int(rest[3]), rest[4])
    elif command == "export":
        export(*rest)
    else:
        compare(rest[0], rest[1:])
