"""Single-level VQ-VAE (van den Oord et al. 2017): the backbone's latent snapped to an EMA codebook.

The decoder gets the codebook vectors through the straight-through estimator; the encoder pays a
commitment loss; the codebook itself learns by EMA (see :mod:`aecodec.models.quantizer`).
"""

from dataclasses import dataclass

import torch
from torch import Tensor

from aecodec.family.autoencoder import Autoencoder, Bottleneck
from aecodec.family.backbone import BackboneConfig
from aecodec.models.quantizer import VectorQuantizer, code_stats, straight_through


@dataclass(frozen=True)
class VQVAEConfig(BackboneConfig):
    """Codebook size and the commitment weight (beta in the paper)."""

    num_codes: int = 512
    commitment: float = 0.25


class VQVAE(Autoencoder):
    """Autoencoder with a vector-quantized latent; a codec stores the code indices."""

    def __init__(self, config: VQVAEConfig) -> None:
        super().__init__(config)
        self.num_codes = config.num_codes
        self.quantizer = VectorQuantizer(config.num_codes, config.latent_dim)

    def bottleneck(self, x: Tensor) -> Bottleneck:
        z = self.encode(x)
        quantized, indices, commitment = self.quantizer(z)
        perplexity, usage = code_stats(indices, self.num_codes)
        metrics = {"commitment": commitment.item(), "perplexity": perplexity, "usage": usage}
        return Bottleneck(straight_through(z, quantized), self.config.commitment * commitment, metrics)

    @torch.no_grad()
    def encode_indices(self, x: Tensor) -> Tensor:
        """Code indices (B, H/stride, W/stride) int64 of images (call in eval mode: training updates the codebook)."""
        return self.quantizer(self.encode(x))[1]

    @torch.no_grad()
    def decode_indices(self, indices: Tensor) -> Tensor:
        """Images from code indices, as returned by :meth:`encode_indices`."""
        return self.decode(self.quantizer.lookup(indices))
