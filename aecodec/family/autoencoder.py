"""Plain autoencoder (encoder -> latent bottleneck -> decoder, MSE), and the template the family extends.

A member changes one hook: ``corrupt`` (what the encoder sees in training), ``bottleneck`` (what
the decoder gets and the regularizer it costs), ``reconstruction_loss``, or ``encode`` (the code a
codec stores).
"""

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from aecodec.family.backbone import BackboneConfig, Decoder, Encoder
from aecodec.training.loop import batch_psnr


@dataclass
class Bottleneck:
    """What the bottleneck hands the decoder in training: the code, its penalty, and terms to log."""

    code: Tensor
    penalty: Tensor
    metrics: dict[str, float]


class Autoencoder(nn.Module):
    """Deterministic autoencoder on [0, 1] images whose sides are multiples of ``config.stride``."""

    def __init__(self, config: BackboneConfig, encoder_channels: int | None = None) -> None:
        super().__init__()
        self.config = config
        self.stride = config.stride
        self.encoder = Encoder(config, encoder_channels or config.latent_dim)
        self.decoder = Decoder(config)

    def encode(self, x: Tensor) -> Tensor:
        """The continuous code (B, latent_dim, H/stride, W/stride) that a codec quantizes."""
        return self.encoder(x)

    def decode(self, code: Tensor) -> Tensor:
        """Image from a code; values are not clamped, so the MSE sees the raw output."""
        return self.decoder(code)

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))

    def corrupt(self, x: Tensor) -> Tensor:
        """The encoder's training input made from the clean batch (the plain AE sees it unchanged)."""
        return x

    def bottleneck(self, x: Tensor) -> Bottleneck:
        """Encode a training input; the plain AE adds no penalty."""
        return Bottleneck(self.encode(x), x.new_zeros(()), {})

    def reconstruct(self, batch: Tensor) -> tuple[Tensor, Bottleneck]:
        """Training pass: corrupt, encode through the bottleneck, decode."""
        bottleneck = self.bottleneck(self.corrupt(batch))
        return self.decode(bottleneck.code), bottleneck

    def reconstruction_loss(self, reconstruction: Tensor, batch: Tensor) -> tuple[Tensor, dict[str, float]]:
        """How far the reconstruction is from the clean batch: MSE (VQGAN adds perceptual and GAN terms)."""
        mse = F.mse_loss(reconstruction, batch)
        return mse, {"mse": mse.item(), "psnr": batch_psnr(reconstruction.detach(), batch)}

    def loss(self, batch: Tensor) -> tuple[Tensor, dict[str, float]]:
        """Reconstruction loss to the clean batch plus the bottleneck's penalty, with the terms to log."""
        reconstruction, bottleneck = self.reconstruct(batch)
        distortion, metrics = self.reconstruction_loss(reconstruction, batch)
        return distortion + bottleneck.penalty, {**metrics, **bottleneck.metrics}
