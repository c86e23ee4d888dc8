"""Encoder-side tuning: refine a tile's bottom latent for a metric before it is quantized.

The analysis network gives a good latent for MSE on average; for one image, a few gradient steps
through the (frozen) decoder find a latent whose quantized reconstruction scores better on the
chosen metric, in the spirit of libaom's ``--tune=ssim``. Only the indices change: the decoder,
the prior and the file format are untouched, so a tuned file decodes anywhere, bit-exactly.
"""

import torch
from pytorch_msssim import ms_ssim
from torch import Tensor

from aecodec.codec.options import MS_SSIM_MIN_SIDE, TUNES
from aecodec.models.vqvae2 import VQVAE2


def tuned_encode(
    network: VQVAE2, x: Tensor, quality: int, tune: str, steps: int = 24, lr: float = 0.01
) -> tuple[list[Tensor], list[Tensor]]:
    """Indices of a (1, 3, H, W) tile, as :meth:`VQVAE2.encode`, with the bottom latent tuned for ``tune``.

    ``psnr`` is the network's own analysis (it was trained for MSE). ``ms-ssim`` takes ``steps`` Adam
    steps on 1 - MS-SSIM of the decoded tile, through the straight-through residual quantizer at
    ``quality``. The top level is kept as analysed, since the bottom encoder is conditioned on it.
    """
    if tune not in TUNES:
        raise ValueError(f"tune must be one of {', '.join(TUNES)}, got {tune!r}")
    if tune == "psnr" or min(x.shape[-2:]) < MS_SSIM_MIN_SIDE:  # too small for MS-SSIM: the plain analysis
        return network.encode(x, quality)
    keep = torch.tensor([quality], device=x.device)
    with torch.no_grad():
        top, latent = network.analyze_top(x, keep.clamp(max=network.config.top_stages))
    latent.requires_grad_(True)
    optimizer = torch.optim.Adam([latent], lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    best_loss, best = float("inf"), latent.detach().clone()
    with torch.enable_grad():  # also when the caller runs under torch.no_grad()
        for step in range(steps + 1):
            image = network.synthesize(top.quantized, network.quantize_bottom(latent, keep).quantized)
            loss = 1 - ms_ssim(image.clamp(0, 1), x, data_range=1.0)
            # Keep the best latent seen, the analysis's own included: tuning never makes a tile worse.
            if loss.item() < best_loss:
                best_loss, best = loss.item(), latent.detach().clone()
            if step == steps:
                break
            # Gradients for the latent only: the network's weights may be shared by other codecs.
            (latent.grad,) = torch.autograd.grad(loss, latent)
            optimizer.step()
            schedule.step()
    with torch.no_grad():
        return network.stage_indices(top, network.quantize_bottom(best, keep), quality)
