"""Train a model's prior alone, in a pass order of choice, on the base indices of its training photos.

Usage: ``aecodec fit-prior --model NAME --data DIR --out FILE.safetensors --name NEW --order grid2``. The
network, residual layer and post-filter are carried over unchanged: every image codes to the same indices
and the same pixels as before, and only the base's bits change. Each training photo (the codec trainer's
split: its validation photos stay unseen) is coded, shifted against the base's grid and mirrored, to the
base indices of every base quality the model's ladder uses, at half resolution below a residual layer (as
efforts 1 and 2 code every base); a float prior (:mod:`aecodec.models.prior`) of the model's sizes learns
them from scratch by Adam on their bits (one image a step, a cosine schedule), then is quantized to the
integer runtime (:func:`~aecodec.models.integer_prior.quantize_prior`). The report gives the exact bits
per index of the validation photos under the old and the new prior.
"""

import argparse
import hashlib
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from aecodec.codec.effort import effort_plan, encode_tile
from aecodec.codec.files import check_writable, write_atomic
from aecodec.codec.images import list_images
from aecodec.codec.tiling import pad_to_multiple, to_tensor
from aecodec.models.integer_prior import IntegerPrior, code_length, quantize_prior
from aecodec.models.model_files import CodecModel, check_model_name, model_bytes, resolve_model
from aecodec.models.prior import ORDERS, HierarchicalPrior, PriorConfig
from aecodec.models.resampling import downsample2x
from aecodec.training.data import split_files
from aecodec.training.loop import text_table, trainer_parser
from aecodec.training.residual import VALIDATION_FRACTION

Indices = tuple[list[Tensor], list[Tensor]]  # (top stages, bottom stages), each (H, W)
SHIFTS = ((0, 0), (16, 8), (8, 24), (24, 16))  # pixels: four alignments of a photo to the base's grid
CALIBRATION_MAPS = 8


def base_qualities(model: CodecModel) -> list[int]:
    """The base qualities the model's ladder codes: its levels' (full and half) or, without a residual layer, all."""
    if model.residual is None:
        return list(range(1, model.network.num_qualities + 1))
    levels = model.residual.levels
    return sorted(
        {q for v in levels for q in (v.base_quality, v.half_base_quality)} | set(range(1, model.residual.base_only + 1))
    )


def load_images(files: list[Path]) -> list[np.ndarray]:
    return [np.asarray(Image.open(f).convert("RGB")) for f in files]


def variants(pixels: np.ndarray) -> list[np.ndarray]:
    """The photo at four alignments to the base's grid, each also mirrored: more contexts from the same photos."""
    shifted = [pixels[dy:, dx:] for dy, dx in SHIFTS]
    return [np.ascontiguousarray(x) for s in shifted for x in (s, s[:, ::-1])]


@torch.no_grad()
def base_indices(model: CodecModel, pixels: np.ndarray, quality: int) -> Indices:
    """Indices of the whole image's base at ``quality`` (one tile), at half resolution under a residual layer."""
    if model.residual is not None:
        pixels = downsample2x(pixels)
    x = pad_to_multiple(to_tensor(pixels), model.network.stride)
    return encode_tile(model.network, model.prior, x, quality, "psnr", effort_plan(2))


def indices_of(model: CodecModel, images: list[np.ndarray], qualities: list[int]) -> list[Indices]:
    return [base_indices(model, pixels, q) for pixels in images for q in qualities]


def as_batch(indices: Indices) -> Indices:
    return [t[None] for t in indices[0]], [t[None] for t in indices[1]]


def train(prior: HierarchicalPrior, maps: list[Indices], steps: int, rate: float, seed: int) -> None:
    """Adam on the mean bits per index of one random map a step, the rate annealed by a cosine to zero."""
    optimizer = torch.optim.Adam(prior.parameters(), lr=rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    generator, start = torch.Generator().manual_seed(seed), time.time()
    for step in range(steps):
        top, bottom = prior.bits(*as_batch(maps[int(torch.randint(len(maps), (1,), generator=generator))]))
        loss = torch.cat([top.flatten(), bottom.flatten()]).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 500 == 0 or step == steps - 1:
            print(f"step {step} bits per index {loss.item():.3f} ({time.time() - start:.0f} s)", flush=True)


def calibration(maps: list[Indices]) -> Indices:
    """A batch of the maps with the most stages, cropped to their common size: what the quantizer calibrates on."""
    most = max(len(m[0]) + len(m[1]) for m in maps)
    chosen = [m for m in maps if len(m[0]) + len(m[1]) == most][:CALIBRATION_MAPS]
    height = min(m[1][0].shape[0] for m in chosen) // 2 * 2
    width = min(m[1][0].shape[1] for m in chosen) // 2 * 2
    top = [torch.stack([m[0][s][: height // 2, : width // 2] for m in chosen]) for s in range(len(chosen[0][0]))]
    bottom = [torch.stack([m[1][s][:height, :width] for m in chosen]) for s in range(len(chosen[0][1]))]
    return top, bottom


def bits_per_index(prior: IntegerPrior, maps: list[Indices]) -> float:
    """Exact bits per index of ``maps`` under an integer prior (their mean over maps)."""
    return float(np.mean([bits / count for bits, count in (code_length(prior, *m) for m in maps)]))


def fit_prior(
    model: CodecModel, train_images: list[np.ndarray], order: str, steps: int, rate: float, seed: int
) -> IntegerPrior:
    """An integer prior in ``order`` trained on the base indices of ``train_images`` (and their variants)."""
    qualities = base_qualities(model)
    maps = indices_of(model, [v for pixels in train_images for v in variants(pixels)], qualities)
    print(f"{len(maps)} index maps of {len(train_images)} images at base qualities {qualities}", flush=True)
    level = model.prior.top
    config = PriorConfig(embed=level.stage_bias.shape[1], hidden=level.conv1.weight.shape[0], order=order)
    torch.manual_seed(seed)
    cfg = model.network.config
    prior = HierarchicalPrior(cfg.num_codes, cfg.top_stages, cfg.bottom_stages, config)
    train(prior, maps, steps, rate, seed)
    with torch.no_grad():
        return quantize_prior(prior.eval(), *calibration(maps))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="model whose prior to retrain (default: the default model)")
    parser.add_argument("--data", required=True, help="folder of training images (never Kodak)")
    parser.add_argument("--out", required=True, help="model file to write (.safetensors)")
    parser.add_argument("--name", required=True, help="name of the new model")
    parser.add_argument("--order", choices=ORDERS, default="grid2", help="the prior's pass order (docs/FORMAT.md)")
    parser.add_argument("--steps", type=int, default=3000, help="Adam steps, one index map each")
    parser.add_argument("--rate", type=float, default=3e-3, help="Adam's first learning rate (cosine to zero)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initialisation and the map order")
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists")


def main(argv: list[str] | None = None) -> int:
    args = trainer_parser("aecodec fit-prior", __doc__, add_arguments).parse_args(argv)
    check_model_name(args.name)
    check_writable(args.out, args.force)
    model = resolve_model(args.model)
    train_files, validation_files = split_files(list_images(args.data), VALIDATION_FRACTION)
    prior = fit_prior(model, load_images(train_files), args.order, args.steps, args.rate, args.seed)
    metadata = {"prior_data": str(args.data), "prior_steps": str(args.steps)}
    data = model_bytes(args.name, model.network, prior, model.residual, metadata, model.postfilter)
    write_atomic(args.out, data, force=args.force)
    report, validation = [], load_images(validation_files)
    for quality in base_qualities(model):
        maps = indices_of(model, validation, [quality])
        if maps:
            report.append([quality, f"{bits_per_index(model.prior, maps):.3f}", f"{bits_per_index(prior, maps):.3f}"])
    print(text_table(["base quality", "validation bits/index before", "after"], report))
    print(f"saved {args.out} (sha256 {hashlib.sha256(data).hexdigest()[:16]})")
    return 0
