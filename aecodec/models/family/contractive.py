"""Contractive autoencoder (Rifai et al. 2011): penalize ||d code / d input||_F^2 of the encoder.

The exact penalty builds every per-sample Jacobian (fine for tiny inputs and codes); for images
the default is Hutchinson's estimator, one vector-Jacobian product per random projection.
"""

from dataclasses import dataclass

from torch import Tensor

from aecodec.models.family.autoencoder import Autoencoder, Bottleneck
from aecodec.models.family.backbone import BackboneConfig
from aecodec.models.family.losses import jacobian_frobenius_exact, jacobian_frobenius_hutchinson


@dataclass(frozen=True)
class ContractiveConfig(BackboneConfig):
    """Penalty weight; ``projections`` random directions per step, or 0 for the exact Jacobian."""

    contractive_weight: float = 1e-4
    projections: int = 1


class ContractiveAutoencoder(Autoencoder):
    """Autoencoder whose encoder is made locally insensitive to its input."""

    def jacobian_penalty(self, x: Tensor) -> Tensor:
        """||J||_F^2 of the encoder at ``x`` (mean over the batch), exact or estimated per the config."""
        if self.config.projections == 0:
            return jacobian_frobenius_exact(self.encode, x)
        return jacobian_frobenius_hutchinson(self.encode, x, self.config.projections)

    def bottleneck(self, x: Tensor) -> Bottleneck:
        jacobian = self.jacobian_penalty(x)
        return Bottleneck(self.encode(x), self.config.contractive_weight * jacobian, {"jacobian": jacobian.item()})
