"""Train any member of the autoencoder family on a folder of images (``aecodec train --model NAME``).

One loop for all: random flipped crops, Adam on ``model.loss(batch)``, tqdm with loss and PSNR,
metrics in OUT/log.jsonl and a resumable OUT/checkpoint.pt, on the skeleton of
:mod:`aecodec.training.loop`. VQ-VAE-2 keeps :mod:`aecodec.training.train`.
"""

import argparse
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from aecodec.codec.images import list_images
from aecodec.errors import InputError
from aecodec.family.registry import FAMILY, build_model, member
from aecodec.training.data import load_image_tensor, random_crops
from aecodec.training.loop import (
    Run,
    RunOptions,
    add_run_arguments,
    default_device,
    load_checkpoint,
    prepare,
    trainer_parser,
)


@dataclass
class FamilyTrainConfig:
    """A run: the member, its config ``settings`` over the defaults, and the loop's knobs.

    ``init`` names a checkpoint whose weights start a fresh run (VQ-GAN fine-tuned from a trained
    VQ-VAE, as in the paper's practice of adding the discriminator late); its missing parts stay new.
    """

    model: str
    data: str
    out: str
    settings: dict[str, Any] = field(default_factory=dict)
    steps: int = 20000
    batch: int = 8
    crop: int = 128
    lr: float = 2e-4
    seed: int = 0
    checkpoint_every: int = 500
    log_every: int = 50
    threads: int = 0
    init: str = ""


def load_member(path: str | Path, device: str = "cpu") -> tuple[str, nn.Module]:
    """(member name, model in eval mode) from a family checkpoint."""
    state = load_checkpoint(path, device)
    model = build_model(state["member"], **state["settings"])
    model.load_state_dict(state["model"])
    return state["member"], model.to(device).eval()


def initialise_from(model: nn.Module, checkpoint: str | Path, device: torch.device | str = "cpu") -> None:
    """Copy a family checkpoint's weights into ``model``; weights ``model`` lacks or shapes apart are an error.

    Weights only ``model`` has (a VQ-GAN's discriminator) keep their fresh initialisation.
    """
    weights = load_checkpoint(checkpoint, device)["model"]
    try:
        unexpected = model.load_state_dict(weights, strict=False).unexpected_keys
    except RuntimeError as exc:  # shape mismatches
        raise InputError(f"{checkpoint} does not fit this model: {str(exc).splitlines()[-1].strip()}") from exc
    if unexpected:
        raise InputError(f"{checkpoint} does not fit this model: it has {', '.join(unexpected[:5])}")


def train_family(config: FamilyTrainConfig, options: RunOptions | None = None) -> Path:
    """Run (or with ``options.resume`` continue) training; returns the checkpoint path."""
    device = default_device()
    prepare(config.seed, config.threads)
    run = Run(config.out, options, device)
    state = run.state
    if state and state["member"] != config.model:
        raise InputError(f"{run.checkpoint} trains {state['member']!r}, not {config.model!r}")

    model = build_model(config.model, **(state["settings"] if state else config.settings)).to(device)
    parameters = [p for p in model.parameters() if p.requires_grad]
    # k-means learns inside loss() and has nothing for an optimizer.
    optimizer = torch.optim.Adam(parameters, lr=config.lr) if parameters else None
    generator = torch.Generator().manual_seed(config.seed)
    if config.init and not state:
        initialise_from(model, config.init, device)
    if state:
        model.load_state_dict(state["model"])
        if optimizer:
            optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["crop_rng"])
        torch.set_rng_state(state["torch_rng"])

    images = [load_image_tensor(f, config.crop) for f in list_images(config.data)]
    model.train()

    def step(_: int) -> tuple[Tensor, dict[str, float]]:
        batch = random_crops(images, config.batch, config.crop, generator).to(device)
        loss, metrics = model.loss(batch)
        if optimizer:
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return loss, metrics

    def checkpoint(done: int) -> dict:
        return {
            "step": done,
            "member": config.model,
            "settings": model.config.to_dict(),
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict() if optimizer else None,
            "crop_rng": generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "train": asdict(config),
        }

    return run.loop(
        config.steps,
        step,
        checkpoint,
        config.checkpoint_every,
        record=lambda done, result: {"step": done, "loss": result[0].item(), **result[1]},
        record_every=config.log_every,
        postfix=lambda result: {"loss": f"{result[0].item():.4f}", "psnr": f"{result[1]['psnr']:.2f}"},
        echo=False,
    )


def _setting_types() -> dict[str, type]:
    """Every member config field (name -> type); a name shared by members has one type."""
    return {f.name: f.type for m in FAMILY.values() for f in fields(m.config)}


def _setting_help(name: str) -> str:
    """Which members have setting ``name``, and each one's default: ``default: 64 (ae, dae); 32 (vae)``."""
    defaults: dict[str, list[str]] = {}
    for member_name, m in FAMILY.items():
        if name in m.setting_names():
            defaults.setdefault(str(getattr(m.config(), name)), []).append(member_name)
    return "member setting; default: " + "; ".join(f"{value} ({', '.join(names)})" for value, names in defaults.items())


def add_family_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``aecodec train --model NAME`` for the family; member settings default to the member's."""
    defaults = FamilyTrainConfig(model="", data="", out="")
    members = "; ".join(f"{name}: {m.summary}" for name, m in FAMILY.items())
    parser.add_argument("--model", required=True, choices=list(FAMILY), help=f"family member to train ({members})")
    add_run_arguments(parser, defaults)
    parser.add_argument("--log-every", type=int, default=defaults.log_every, help="log a record every N steps")
    parser.add_argument(
        "--init", default="", help="start from this family checkpoint's weights, e.g. vqgan from vqvae (default: none)"
    )
    for name, kind in _setting_types().items():
        option, text = f"--{name.replace('_', '-')}", _setting_help(name)
        if kind is bool:
            parser.add_argument(option, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=text)
        else:
            parser.add_argument(option, type=kind, default=argparse.SUPPRESS, help=text)


def config_from_args(args: argparse.Namespace) -> FamilyTrainConfig:
    """A :class:`FamilyTrainConfig` from parsed options; a setting the chosen member lacks is an error."""
    given = {name: value for name, value in vars(args).items() if name in _setting_types()}
    foreign = sorted(set(given) - set(member(args.model).setting_names()))
    if foreign:
        raise InputError(f"--model {args.model} has no setting {', '.join(foreign)}")
    return FamilyTrainConfig(
        model=args.model,
        data=args.data,
        out=args.out,
        settings=given,
        steps=args.steps,
        batch=args.batch,
        crop=args.crop,
        lr=args.lr,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
        log_every=args.log_every,
        threads=args.threads,
        init=args.init,
    )


def run_family_train(args: argparse.Namespace) -> int:
    """Entry point of ``aecodec train --model NAME`` for a family member."""
    train_family(config_from_args(args), RunOptions.from_args(args))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_family_train(trainer_parser("aecodec train", __doc__, add_family_arguments).parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
