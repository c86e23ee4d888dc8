"""Train the VQ-VAE-2 codec model and its prior on a folder of images.

Usage: ``aecodec train --data DIR --out runs/NAME [--steps N] [--resume | --force] [--json]``; on several GPUs:
``torchrun --nproc_per_node=K -m aecodec.training.train --data DIR --out runs/NAME``.
Every training sample keeps a random number of residual stages, so one model serves every quality;
the prior learns the indices' rate at the same time (indices are detached: it does not steer them).
"""

import argparse
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from aecodec.models.prior import ORDERS, HierarchicalPrior, PriorConfig
from aecodec.models.vqvae2 import VQVAE2, VQVAE2Config, VQVAE2Output
from aecodec.training.data import add_scales_argument, random_crops, training_images
from aecodec.training.loop import (
    Run,
    RunOptions,
    add_run_arguments,
    batch_psnr,
    cosine_schedule,
    default_device,
    load_checkpoint,
    prepare,
    trainer_parser,
)


@dataclass
class TrainConfig:
    """Everything a run depends on; saved with each checkpoint."""

    data: str
    out: str
    steps: int = 20000
    batch: int = 8
    crop: int = 128
    lr: float = 3e-4
    commitment: float = 0.25
    val_fraction: float = 0.1
    val_every: int = 500
    checkpoint_every: int = 250
    seed: int = 0
    threads: int = 0
    init: str | None = None
    scales: tuple[float, ...] = (1.0,)
    model: VQVAE2Config = field(default_factory=VQVAE2Config)
    prior: PriorConfig = field(default_factory=PriorConfig)


def stage_mask(keep: Tensor, num_stages: int, like: Tensor) -> Tensor:
    """(B, S, 1, 1) mask of the stages each sample keeps, to count only coded indices."""
    return (torch.arange(num_stages, device=keep.device)[None, :] < keep[:, None]).to(like.dtype)[..., None, None]


def rate_bpp(prior: HierarchicalPrior, out, pixels: int) -> Tensor:
    """Estimated bits per pixel of each sample at its kept stages, from the prior's cross-entropy."""
    top = [i.detach() for i in out.top.indices]
    bottom = [i.detach() for i in out.bottom.indices]
    top_bits, bottom_bits = prior.bits(top, bottom)
    top_bits = top_bits * stage_mask(out.keep_top, top_bits.shape[1], top_bits)
    bottom_bits = bottom_bits * stage_mask(out.keep_bottom, bottom_bits.shape[1], bottom_bits)
    return (top_bits.sum((1, 2, 3)) + bottom_bits.sum((1, 2, 3))) / pixels


def validation_qualities(model: VQVAE2) -> list[int]:
    """The lowest, middle and highest quality: where validation reports a model."""
    return sorted({1, (model.num_qualities + 1) // 2, model.num_qualities})


@torch.no_grad()
def validate(model: VQVAE2, prior: HierarchicalPrior, batch: Tensor) -> dict:
    """PSNR and estimated bpp of the validation crops at the lowest, middle and highest quality."""
    model.eval()
    prior.eval()
    report = {}
    for quality in validation_qualities(model):
        keep = torch.full((batch.shape[0],), quality, device=batch.device)
        out = model(batch, keep)
        bpp = rate_bpp(prior, out, batch.shape[-1] * batch.shape[-2]).mean()
        report[f"q{quality}"] = {"psnr": round(batch_psnr(out.reconstruction, batch), 3), "bpp": round(float(bpp), 4)}
    model.train()
    prior.train()
    return report


def load_matching_modules(module: torch.nn.Module, weights: dict[str, Tensor]) -> list[str]:
    """Copy into ``module`` every submodule whose tensors all have the shapes in ``weights``.

    A warm start for a resized network (say a wider latent): the trunk is reused, and a submodule
    that changed shape keeps its fresh initialisation whole, so a quantizer whose codebook changed
    also keeps its "not initialised" flag and re-runs k-means. Returns the submodules left fresh.
    """
    own = module.state_dict()
    groups: dict[str, list[str]] = {}
    for key in own:
        groups.setdefault(key.rpartition(".")[0], []).append(key)
    fresh = [
        name
        for name, keys in groups.items()
        if any(key not in weights or weights[key].shape != own[key].shape for key in keys)
    ]
    skipped = {key for name in fresh for key in groups[name]}
    module.load_state_dict({k: weights[k] for k in own if k not in skipped}, strict=False)
    return fresh


def build(config: TrainConfig) -> tuple[VQVAE2, HierarchicalPrior]:
    """Fresh model and prior for ``config``."""
    model = VQVAE2(config.model)
    m = config.model
    prior = HierarchicalPrior(m.num_codes, m.top_stages, m.bottom_stages, config.prior)
    return model, prior


def train(config: TrainConfig, options: RunOptions | None = None) -> Path:
    """Run (or with ``options.resume`` continue) training; returns the checkpoint path."""
    distributed = "RANK" in os.environ
    if distributed:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank = dist.get_rank() if distributed else 0
    device = default_device(int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    prepare(config.seed, config.threads)
    run = Run(config.out, options, device, main=rank == 0)

    images, val_batch = training_images(config.data, config.crop, config.scales, config.val_fraction)
    val_batch = val_batch.to(device) if val_batch is not None else None

    model, prior = build(config)
    model.to(device)
    prior.to(device)
    optimizer = torch.optim.Adam([*model.parameters(), *prior.parameters()], lr=config.lr)
    if run.state:
        model.load_state_dict(run.state["model"])
        prior.load_state_dict(run.state["prior"])
        optimizer.load_state_dict(run.state["optimizer"])
    elif config.init:
        init = load_checkpoint(config.init, device)
        fresh = load_matching_modules(model, init["model"]) + load_matching_modules(prior, init["prior"])
        tqdm.write(f"initialised from {config.init}; fresh: {', '.join(fresh) or 'none'}")
    ddp_model, ddp_prior = model, prior
    if distributed:
        ids = [device.index] if device.type == "cuda" else None
        ddp_model, ddp_prior = (torch.nn.parallel.DistributedDataParallel(m, device_ids=ids) for m in (model, prior))
    schedule = cosine_schedule(optimizer, config.steps)
    if run.state:
        schedule.load_state_dict(run.state["schedule"])
    generator = torch.Generator().manual_seed(config.seed * 1000 + rank + run.start)

    def step(_: int) -> tuple[Tensor, VQVAE2Output, Tensor, Tensor]:
        x = random_crops(images, config.batch, config.crop, generator).to(device)
        keep = torch.randint(1, config.model.bottom_stages + 1, (x.shape[0],), generator=generator).to(device)
        out = ddp_model(x, keep)
        mse = F.mse_loss(out.reconstruction, x)
        bpp = rate_bpp(ddp_prior, out, config.crop * config.crop)
        loss = mse + config.commitment * (out.top.loss + out.bottom.loss) + 1e-3 * bpp.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        return x, out, loss, bpp

    def postfix(result: tuple[Tensor, VQVAE2Output, Tensor, Tensor]) -> dict[str, str]:
        x, out, loss, bpp = result
        return {
            "loss": f"{float(loss.detach()):.4f}",
            "psnr": f"{batch_psnr(out.reconstruction, x):.2f}",
            "bpp": f"{float(bpp.detach().mean()):.3f}",
            "usage": f"{np.mean(out.top.usage + out.bottom.usage):.2f}",
        }

    def checkpoint(done: int) -> dict:
        return {
            "step": done,
            "model": model.state_dict(),
            "prior": prior.state_dict(),
            "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(),
            "config": asdict(config),
            "rng": torch.get_rng_state(),
        }

    def record(done: int, result: tuple[Tensor, VQVAE2Output, Tensor, Tensor]) -> dict | None:
        if val_batch is None:
            return None
        x, out, _, _ = result
        return {
            "step": done,
            "train_psnr": round(batch_psnr(out.reconstruction, x), 3),
            "perplexity_bottom": [round(p, 1) for p in out.bottom.perplexity],
            "usage_bottom": [round(u, 3) for u in out.bottom.usage],
            "val": validate(model, prior, val_batch),
        }

    path = run.loop(
        config.steps, step, checkpoint, config.checkpoint_every, record, config.val_every, postfix, show_every=10
    )
    if distributed:
        dist.destroy_process_group()
    return path


MODEL_HELP = {
    "channels": "width of the encoder and decoder",
    "latent_dim": "channels of each latent vector",
    "num_codes": "codebook size of every stage",
    "top_stages": "residual quantizer stages of the top level",
    "bottom_stages": "residual quantizer stages of the bottom level (one per quality)",
    "res_blocks": "residual blocks per resolution",
    "upsample": "decoder upsampling: transposed or resize",
    "embed": "prior: code embedding width",
    "hidden": "prior: hidden channels of the context model",
    "order": "prior: the order of its passes over each stage (a grid of depth 2 codes 16%% fewer bits at low rates)",
}


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Command-line options of ``aecodec train``."""
    defaults = TrainConfig(data="", out="")
    parser.add_argument(
        "--model",
        choices=["vqvae2"],
        default="vqvae2",
        help="vqvae2, the codec model (family members: `aecodec train --model ae --help`)",
    )
    add_run_arguments(parser, defaults)
    parser.add_argument(
        "--val-every", type=int, default=defaults.val_every, help="validate and log every N steps (and after the last)"
    )
    for name, value in VQVAE2Config().to_dict().items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value, help=MODEL_HELP[name])
    for name, value in PriorConfig().to_dict().items():
        choices = ORDERS if name == "order" else None
        parser.add_argument(f"--prior-{name}", type=type(value), choices=choices, default=value, help=MODEL_HELP[name])
    add_scales_argument(parser, defaults.scales)
    parser.add_argument(
        "--init",
        help="warm start from another run's checkpoint.pt; submodules whose shapes "
        "changed (a wider latent) start fresh (default: none, a fresh start)",
    )


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """A :class:`TrainConfig` from parsed ``aecodec train`` options."""
    model = VQVAE2Config(**{k: getattr(args, k) for k in VQVAE2Config().to_dict()})
    prior = PriorConfig(**{k: getattr(args, f"prior_{k}") for k in PriorConfig().to_dict()})
    return TrainConfig(
        data=args.data,
        out=args.out,
        steps=args.steps,
        batch=args.batch,
        crop=args.crop,
        lr=args.lr,
        val_every=args.val_every,
        checkpoint_every=args.checkpoint_every,
        seed=args.seed,
        threads=args.threads,
        init=args.init,
        scales=args.scales,
        model=model,
        prior=prior,
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``aecodec train`` (VQ-VAE-2)."""
    args = trainer_parser("aecodec train", __doc__, add_train_arguments).parse_args(argv)
    train(config_from_args(args), RunOptions.from_args(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
