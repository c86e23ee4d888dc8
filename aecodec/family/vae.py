"""Variational autoencoder (Kingma & Welling 2014): Gaussian q(z|x), reparameterised, KL to N(0, I).

The loss is MSE per pixel plus ``beta`` times the KL in nats per image element (3 H W), so beta
does not depend on the crop size; beta = 1 would be a Gaussian decoder of variance 1/2.
"""

from dataclasses import dataclass

import torch
from torch import Tensor

from aecodec.family.autoencoder import Autoencoder, Bottleneck
from aecodec.family.backbone import BackboneConfig
from aecodec.family.losses import gaussian_kl


@dataclass(frozen=True)
class VAEConfig(BackboneConfig):
    """``beta`` weighs the KL term (beta-VAE)."""

    beta: float = 1e-3


class VAE(Autoencoder):
    """VAE whose encoder outputs mean and log-variance of a spatial Gaussian latent."""

    def __init__(self, config: VAEConfig) -> None:
        super().__init__(config, encoder_channels=2 * config.latent_dim)

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(mu, logvar) of q(z|x), each (B, latent_dim, H/stride, W/stride)."""
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar

    def encode(self, x: Tensor) -> Tensor:
        """The posterior mean: the code a codec stores."""
        return self.posterior(x)[0]

    def bottleneck(self, x: Tensor) -> Bottleneck:
        mu, logvar = self.posterior(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        kl = gaussian_kl(mu, logvar).mean() / x[0].numel()
        return Bottleneck(z, self.config.beta * kl, {"kl": kl.item()})

    @torch.no_grad()
    def sample(self, n: int, height: int, width: int) -> Tensor:
        """``n`` images of ``height`` x ``width`` decoded from z ~ N(0, I)."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.config.latent_dim, height // self.stride, width // self.stride, device=device)
        return self.decode(z).clamp(0, 1)

    @torch.no_grad()
    def interpolate(self, x1: Tensor, x2: Tensor, steps: int) -> Tensor:
        """(steps, 3, H, W) images decoded along the line between the posterior means of x1 and x2 (3, H, W)."""
        mu1, mu2 = self.encode(torch.stack([x1, x2])).unbind(0)
        weights = torch.linspace(0, 1, steps, device=mu1.device).view(-1, 1, 1, 1)
        return self.decode((1 - weights) * mu1 + weights * mu2).clamp(0, 1)
