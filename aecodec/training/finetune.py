"""Retrain a codec model's synthesis alone: encoder, codebooks and prior stay frozen.

Every image then codes to the same indices and the same bits as before, and only the reconstruction
changes. ``aecodec finetune --from runs/X/checkpoint.pt --data DIR --out runs/Y --objective OBJ``:

- ``mse``: the decoder on the quantized latents of every quality; with ``--upsample resize``, the
  warm-up that trains the new upsampling layers;
- ``gan``: the hierarchical VQ-GAN: L1 + ST-LPIPS (VGG) + a PatchGAN hinge loss with the VQGAN
  adaptive weight. Use ``--upsample resize``: the new upsampling convolutions start fresh, the rest of
  the decoder is kept.

The checkpoint has the layout of :mod:`aecodec.training.train`'s, so ``aecodec export`` takes it.
"""

import argparse
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from pytorch_msssim import ms_ssim
from torch import Tensor, nn

from aecodec.errors import InputError
from aecodec.models.layers import UPSAMPLERS
from aecodec.models.prior import HierarchicalPrior, PriorConfig
from aecodec.models.vqvae2 import VQVAE2, VQVAE2Config
from aecodec.training.data import add_scales_argument, random_crops, training_images
from aecodec.training.gan import (
    PatchDiscriminator,
    adaptive_generator_weight,
    hinge_discriminator_loss,
    hinge_generator_loss,
)
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
from aecodec.training.perceptual import st_lpips
from aecodec.training.train import load_matching_modules, validation_qualities

OBJECTIVES = ("mse", "gan")


@dataclass
class FinetuneConfig:
    """A decoder fine-tune: where the model comes from, the objective and its weights, the loop's knobs.

    ``max_quality`` bounds the qualities sampled per crop (0: all). ``adversarial_start`` is the step the
    generator's GAN term starts; the discriminator trains from step 0, so it is not random by then.
    """

    source: str
    data: str
    out: str
    objective: str = "mse"
    upsample: str = ""
    steps: int = 10000
    batch: int = 8
    crop: int = 128
    lr: float = 1e-4
    scales: tuple[float, ...] = (1.0,)
    max_quality: int = 0
    perceptual_weight: float = 0.2
    adversarial_weight: float = 0.1
    adversarial_start: int = 500
    val_every: int = 500
    checkpoint_every: int = 250
    seed: int = 0
    threads: int = 0

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise InputError(f"objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")


def synthesis(network: VQVAE2) -> list[nn.Parameter]:
    """The parameters a fine-tune trains: the decoder and the top level's upsampling into it."""
    return [*network.upsample_top.parameters(), *network.decoder.parameters()]


def last_layer(network: VQVAE2) -> Tensor:
    """Weight of the convolution that makes the pixels, where VQGAN compares loss gradients."""
    final = network.decoder[-1]
    return (final[-1] if isinstance(final, nn.Sequential) else final).weight


def load_source(config: FinetuneConfig, device: torch.device) -> tuple[VQVAE2, HierarchicalPrior, dict]:
    """The source run's network (with ``config.upsample`` if given) and prior, and its training config."""
    state = load_checkpoint(config.source, device)
    settings = state["config"]
    model_config = VQVAE2Config(**settings["model"])
    if config.upsample:
        model_config = replace(model_config, upsample=config.upsample)
    network = VQVAE2(model_config)
    fresh = load_matching_modules(network, state["model"])
    if any(not name.startswith(("decoder.", "upsample_top")) for name in fresh):
        raise InputError(f"{config.source}: only the synthesis may change shape; fresh: {', '.join(fresh)}")
    prior_config = PriorConfig(**settings["prior"])
    prior = HierarchicalPrior(model_config.num_codes, model_config.top_stages, model_config.bottom_stages, prior_config)
    prior.load_state_dict(state["prior"])
    return network.to(device), prior.to(device), settings


class Objective:
    """The fine-tune loss; for ``gan`` it also owns the discriminator and takes its step."""

    def __init__(self, config: FinetuneConfig, network: VQVAE2, device: torch.device) -> None:
        self.config, self.network = config, network
        self.discriminator = PatchDiscriminator().to(device) if config.objective == "gan" else None
        # beta1 = 0.5 as in VQGAN's and most GANs' discriminators: momentum lags a moving target.
        self.optimizer = (
            torch.optim.Adam(self.discriminator.parameters(), lr=config.lr, betas=(0.5, 0.9))
            if self.discriminator
            else None
        )

    def __call__(self, reconstruction: Tensor, batch: Tensor, step: int) -> tuple[Tensor, dict[str, float]]:
        """Generator-side loss and its terms; for ``gan`` first one discriminator step on this batch."""
        c = self.config
        if c.objective == "mse":
            return F.mse_loss(reconstruction, batch), {}
        metrics = {"discriminator": self._discriminator_step(reconstruction.detach(), batch)}
        rec = F.l1_loss(reconstruction, batch)
        distance = st_lpips(reconstruction, batch, "vgg") if c.perceptual_weight > 0 else None
        if distance is not None:
            rec = rec + c.perceptual_weight * distance
            metrics["st_lpips_vgg"] = distance.item()
        if step < c.adversarial_start:
            return rec, metrics
        self.discriminator.requires_grad_(False)
        generator = hinge_generator_loss(self.discriminator(reconstruction))
        self.discriminator.requires_grad_(True)
        weight = c.adversarial_weight * adaptive_generator_weight(rec, generator, last_layer(self.network))
        metrics.update(generator=generator.item(), gan_weight=weight.item())
        return rec + weight * generator, metrics

    def _discriminator_step(self, fake: Tensor, real: Tensor) -> float:
        loss = hinge_discriminator_loss(self.discriminator(real), self.discriminator(fake))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def state_dict(self) -> dict:
        if not self.discriminator:
            return {}
        return {"discriminator": self.discriminator.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if self.discriminator:
            self.discriminator.load_state_dict(state["discriminator"])
            self.optimizer.load_state_dict(state["optimizer"])


@torch.no_grad()
def validate(network: VQVAE2, batch: Tensor) -> dict[str, dict[str, float]]:
    """PSNR and MS-SSIM of the validation crops at the lowest, middle and highest quality."""
    report = {}
    for quality in validation_qualities(network):
        top, bottom = network.analyze(batch, torch.full((batch.shape[0],), quality, device=batch.device))
        image = network.synthesize(top.quantized, bottom.quantized).clamp(0, 1)
        report[f"q{quality}"] = {
            "psnr": round(batch_psnr(image, batch), 3),
            "ms_ssim": round(float(ms_ssim(image, batch, data_range=1.0)), 4),
        }
    return report


def finetune(config: FinetuneConfig, options: RunOptions | None = None) -> Path:
    """Run (or with ``options.resume`` continue) a decoder fine-tune; returns the checkpoint path."""
    device = default_device()
    prepare(config.seed, config.threads)
    run = Run(config.out, options, device)
    network, prior, settings = load_source(config, device)
    network.eval()  # quantizers must not update their codebooks; the network has no batch statistics
    network.requires_grad_(False)
    parameters = synthesis(network)
    for p in parameters:
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(parameters, lr=config.lr)
    objective = Objective(config, network, device)
    if run.state:
        network.load_state_dict(run.state["model"])
        optimizer.load_state_dict(run.state["optimizer"])
        objective.load_state_dict(run.state["objective"])
    schedule = cosine_schedule(optimizer, config.steps, last_epoch=run.start - 1)
    images, val_batch = training_images(config.data, config.crop, config.scales, 0.1)
    val_batch = val_batch.to(device) if val_batch is not None else None
    generator = torch.Generator().manual_seed(config.seed * 1000 + run.start)
    max_quality = config.max_quality or network.num_qualities
    run_config = {**settings, "data": config.data, "model": network.config.to_dict(), "finetune": asdict(config)}

    def step(i: int) -> tuple[Tensor, Tensor, Tensor, dict[str, float]]:
        batch = random_crops(images, config.batch, config.crop, generator).to(device)
        keep = torch.randint(1, max_quality + 1, (batch.shape[0],), generator=generator).to(device)
        with torch.no_grad():
            top, bottom = network.analyze(batch, keep)
        reconstruction = network.synthesize(top.quantized, bottom.quantized)
        loss, metrics = objective(reconstruction, batch, i)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        return batch, reconstruction, loss, metrics

    def postfix(result: tuple[Tensor, Tensor, Tensor, dict[str, float]]) -> dict[str, str]:
        batch, reconstruction, loss, _ = result
        return {"loss": f"{loss.item():.4f}", "psnr": f"{batch_psnr(reconstruction, batch):.2f}"}

    def checkpoint(done: int) -> dict:
        return {
            "step": done,
            "model": network.state_dict(),
            "prior": prior.state_dict(),
            "optimizer": optimizer.state_dict(),
            "objective": objective.state_dict(),
            "config": run_config,
        }

    def record(done: int, result: tuple[Tensor, Tensor, Tensor, dict[str, float]]) -> dict | None:
        if val_batch is None:
            return None
        _, _, loss, metrics = result
        return {"step": done, "loss": round(loss.item(), 5), **metrics, "val": validate(network, val_batch)}

    return run.loop(
        config.steps, step, checkpoint, config.checkpoint_every, record, config.val_every, postfix, show_every=10
    )


def add_finetune_arguments(parser: argparse.ArgumentParser) -> None:
    """Command-line options of ``aecodec finetune``."""
    defaults = FinetuneConfig(source="", data="", out="")
    parser.add_argument("--from", dest="source", required=True, help="checkpoint.pt of an `aecodec train` run")
    add_run_arguments(parser, defaults)
    parser.add_argument("--objective", choices=OBJECTIVES, default=defaults.objective, help="the decoder's loss")
    parser.add_argument(
        "--upsample",
        choices=list(UPSAMPLERS),
        default="",
        help="replace the decoder's upsampling (new layers start fresh); default: keep it",
    )
    options = {
        "max_quality": (int, "highest quality sampled per crop (0: all)"),
        "adversarial_start": (int, "step the generator's GAN term starts (gan)"),
        "val_every": (int, "validate and log every N steps (and after the last)"),
        "perceptual_weight": (float, "weight of ST-LPIPS beside L1 (gan)"),
        "adversarial_weight": (float, "weight of the adaptive GAN term (gan)"),
    }
    for name, (kind, text) in options.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=getattr(defaults, name), help=text)
    add_scales_argument(parser, defaults.scales)


def run_finetune(args: argparse.Namespace) -> int:
    """Entry point of ``aecodec finetune``."""
    options = {k: v for k, v in vars(args).items() if k in FinetuneConfig.__dataclass_fields__}
    finetune(FinetuneConfig(**options), RunOptions.from_args(args))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_finetune(trainer_parser("aecodec finetune", __doc__, add_finetune_arguments).parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
