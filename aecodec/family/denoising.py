"""Denoising autoencoder (Vincent et al. 2008): reconstruct the clean image from a corrupted one.

Training inputs get Gaussian noise and a random share of square patches blanked to mid-grey
(masking noise); evaluation and coding see the clean image.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from aecodec.family.autoencoder import Autoencoder
from aecodec.family.backbone import BackboneConfig


@dataclass(frozen=True)
class DenoisingConfig(BackboneConfig):
    """Corruption strength: noise standard deviation, share of masked patches, patch side in pixels."""

    noise_sigma: float = 0.1
    mask_fraction: float = 0.25
    mask_patch: int = 8


def corrupt_image(x: Tensor, noise_sigma: float, mask_fraction: float, mask_patch: int) -> Tensor:
    """Add N(0, sigma^2) noise, then set a random ``mask_fraction`` of ``mask_patch``-square patches to 0.5."""
    noisy = x + noise_sigma * torch.randn_like(x)
    b, _, h, w = x.shape
    grid = (b, 1, -(-h // mask_patch), -(-w // mask_patch))
    keep = (torch.rand(grid, device=x.device) >= mask_fraction).to(x.dtype)
    keep = F.interpolate(keep, scale_factor=mask_patch, mode="nearest")[..., :h, :w]
    return keep * noisy + (1 - keep) * 0.5


class DenoisingAutoencoder(Autoencoder):
    """Autoencoder whose encoder sees corrupted images during training only."""

    def corrupt(self, x: Tensor) -> Tensor:
        if not self.training:
            return x
        return corrupt_image(x, self.config.noise_sigma, self.config.mask_fraction, self.config.mask_patch)
