"""Encoder-side tuning: refine a tile's bottom latent for a metric before it is quantized.

The analysis network gives a good latent for MSE on average; for one image, a few gradient steps
through the (frozen) decoder find a latent whose quantized reconstruction scores better on the
chosen objective, in the spirit of libaom's ``--tune=ssim``. Only the indices change: the decoder,
the prior and the file format are untouched, so a tuned file decodes anywhere, bit-exactly.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from pytorch_msssim import ms_ssim
from torch import Tensor

from aecodec.codec.options import MS_SSIM_MIN_SIDE
from aecodec.models.quantizer import QuantizerOutput
from aecodec.models.vqvae2 import VQVAE2


@dataclass(frozen=True)
class Tune:
    """What an encoder tuned for a metric minimises, and how.

    ``objective(decoded, source)``: the loss on the decoded tile (clamped to [0, 1], as the decoder
    outputs it). ``min_steps``: refinement steps taken at every effort. ``rate_distortion``: whether
    the tune's distortion is the squared error that RD index search weighs against bits.
    """

    objective: Callable[[Tensor, Tensor], Tensor]
    min_steps: int
    rate_distortion: bool


TUNINGS: dict[str, Tune] = {  # one per name in options.TUNES
    "psnr": Tune(lambda image, x: F.mse_loss(image.clamp(0, 1), x), 0, True),
    "ms-ssim": Tune(lambda image, x: 1 - ms_ssim(image.clamp(0, 1), x, data_range=1.0), 24, False),
}


def tuning(tune: str) -> Tune:
    """The tuning called ``tune``; ValueError naming the choices otherwise."""
    if tune not in TUNINGS:
        raise ValueError(f"tune must be one of {', '.join(TUNINGS)}, got {tune!r}")
    return TUNINGS[tune]


def can_refine(x: Tensor, tune: str) -> bool:
    """Whether the objective of ``tune`` is defined on tile ``x`` (MS-SSIM needs a side of at least 161)."""
    return tune != "ms-ssim" or min(x.shape[-2:]) >= MS_SSIM_MIN_SIDE


def refine_latent(
    network: VQVAE2, x: Tensor, top: QuantizerOutput, latent: Tensor, quality: int, tune: str, steps: int, lr: float
) -> Tensor:
    """The best bottom latent seen in ``steps`` Adam steps on ``tune``'s objective, the analysis's own included.

    Gradients pass the residual quantizer at ``quality`` straight through; the step size follows a cosine.
    The top level stays as analysed, since the bottom latent is conditioned on it.
    """
    objective, keep = tuning(tune).objective, torch.tensor([quality], device=x.device)
    latent = latent.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([latent], lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    best_loss, best = float("inf"), latent.detach().clone()
    with torch.enable_grad():  # also when the caller runs under torch.no_grad()
        for step in range(steps + 1):
            loss = objective(network.synthesize(top.quantized, network.quantize_bottom(latent, keep).quantized), x)
            # Keep the best latent seen, the analysis's own included: tuning never makes a tile worse.
            if loss.item() < best_loss:
                best_loss, best = loss.item(), latent.detach().clone()
            if step == steps:
                break
            # Gradients for the latent only: the network's weights may be shared by other codecs.
            (latent.grad,) = torch.autograd.grad(loss, latent)
            optimizer.step()
            schedule.step()
    return best
