"""VQGAN (Esser et al. 2021): a VQ-VAE trained with a PatchGAN hinge loss and a perceptual loss.

The reconstruction term is L1 + ST-LPIPS with a VGG trunk, as the paper's L1 + LPIPS (VGG). The
generator's adversarial term is scaled by the adaptive weight lambda = ||grad L_rec|| /
(||grad L_GAN|| + 1e-4) at the decoder's last layer. The discriminator trains from the first step,
the generator's term only from ``adversarial_start``: against an untrained discriminator lambda
spikes (0.39 at step 50 of a fine-tune, then 0.02) and wrecks the reconstruction. Both players train
from one loss and one optimizer: the generator's term sees the discriminator through detached
weights, and the discriminator's term sees a detached reconstruction, so neither pushes the other's
parameters.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from aecodec.family.vqvae import VQVAE, VQVAEConfig
from aecodec.training.gan import (
    PatchDiscriminator,
    adaptive_generator_weight,
    hinge_discriminator_loss,
    hinge_generator_loss,
)
from aecodec.training.perceptual import TRUNKS, st_lpips


@dataclass(frozen=True)
class VQGANConfig(VQVAEConfig):
    """Discriminator size, GAN weight, the step the generator's GAN term starts, ST-LPIPS weight (0: none) and trunk."""

    discriminator_channels: int = 64
    discriminator_layers: int = 3
    adversarial_weight: float = 0.8
    adversarial_start: int = 0
    perceptual_weight: float = 1.0
    perceptual_net: str = "vgg"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.perceptual_net not in TRUNKS:
            raise ValueError(f"perceptual_net must be one of {', '.join(TRUNKS)}, got {self.perceptual_net!r}")


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
        """L1 + ST-LPIPS; in training also the discriminator's hinge and, once started, lambda * generator hinge."""
        _, metrics = super().reconstruction_loss(reconstruction, batch)
        rec = F.l1_loss(reconstruction, batch)
        metrics["l1"] = rec.item()
        distance = (
            st_lpips(reconstruction, batch, self.config.perceptual_net) if self.config.perceptual_weight > 0 else None
        )
        if distance is not None:
            rec = rec + self.config.perceptual_weight * distance
            metrics["st_lpips"] = distance.item()
        if not self.training:
            return rec, metrics
        discriminator = hinge_discriminator_loss(self.discriminator(batch), self.discriminator(reconstruction.detach()))
        metrics["discriminator"] = discriminator.item()
        generator_on = int(self.steps) >= self.config.adversarial_start
        self.steps += 1
        if not generator_on:
            return rec + discriminator, metrics
        generator = hinge_generator_loss(self.generator_logits(reconstruction))
        last_layer = self.decoder.last_layer.weight
        weight = self.config.adversarial_weight * adaptive_generator_weight(rec, generator, last_layer)
        metrics.update(generator=generator.item(), gan_weight=weight.item())
        return rec + weight * generator + discriminator, metrics
