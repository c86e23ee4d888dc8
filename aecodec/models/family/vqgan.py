"""VQGAN (Esser et al. 2021): a VQ-VAE trained with a PatchGAN hinge loss and a perceptual loss.

The generator's adversarial term is scaled by the adaptive weight lambda = ||grad L_rec|| /
(||grad L_GAN|| + 1e-4) at the decoder's last layer. Both players train from one loss and one
optimizer: the generator's term sees the discriminator through detached weights, and the
discriminator's term sees a detached reconstruction, so neither pushes the other's parameters.
"""

from dataclasses import dataclass

import torch
from torch import Tensor

from aecodec.models.family.discriminator import PatchDiscriminator
from aecodec.models.family.losses import adaptive_generator_weight, hinge_discriminator_loss, hinge_generator_loss
from aecodec.models.family.perceptual import st_lpips
from aecodec.models.family.vqvae import VQVAE, VQVAEConfig


@dataclass(frozen=True)
class VQGANConfig(VQVAEConfig):
    """Discriminator size, GAN weight and start step, ST-LPIPS weight (0: no perceptual term)."""

    discriminator_channels: int = 64
    discriminator_layers: int = 3
    adversarial_weight: float = 0.8
    adversarial_start: int = 0
    perceptual_weight: float = 1.0


class VQGAN(VQVAE):
    """VQ-VAE plus a patch discriminator; ``steps`` counts training steps for ``adversarial_start``."""

    def __init__(self, config: VQGANConfig) -> None:
        super().__init__(config)
        self.discriminator = PatchDiscriminator(config.discriminator_channels, config.discriminator_layers)
        self.register_buffer("steps", torch.tensor(0))

    def generator_logits(self, reconstruction: Tensor) -> Tensor:
        """Discriminator logits whose gradient reaches the reconstruction but not the discriminator."""
        detached = {name: p.detach() for name, p in self.discriminator.named_parameters()}
        return torch.func.functional_call(self.discriminator, detached, (reconstruction,))

    def reconstruction_loss(self, reconstruction: Tensor, batch: Tensor) -> tuple[Tensor, dict[str, float]]:
        """MSE + ST-LPIPS, and in training once started lambda * generator hinge + the discriminator's hinge."""
        rec, metrics = super().reconstruction_loss(reconstruction, batch)
        distance = st_lpips(reconstruction, batch) if self.config.perceptual_weight > 0 else None
        if distance is not None:
            rec = rec + self.config.perceptual_weight * distance
            metrics["st_lpips"] = distance.item()
        adversarial = self.training and int(self.steps) >= self.config.adversarial_start
        self.steps += int(self.training)
        if not adversarial:
            return rec, metrics
        generator = hinge_generator_loss(self.generator_logits(reconstruction))
        last_layer = self.decoder.last_layer.weight
        weight = self.config.adversarial_weight * adaptive_generator_weight(rec, generator, last_layer)
        discriminator = hinge_discriminator_loss(self.discriminator(batch), self.discriminator(reconstruction.detach()))
        metrics.update(generator=generator.item(), discriminator=discriminator.item(), gan_weight=weight.item())
        return rec + weight * generator + discriminator, metrics
