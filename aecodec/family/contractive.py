"""Contractive autoencoder (Rifai et al. 2011): penalize ||d code / d input||_F^2 of the encoder.

The exact penalty builds every per-sample Jacobian (fine for tiny inputs and codes); for images
the default is Hutchinson's estimator, one vector-Jacobian product per random projection.
"""

from dataclasses import dataclass

from torch import Tensor

from aecodec.family.autoencoder import Autoencoder, Bottleneck
from aecodec.family.backbone import BackboneConfig
from aecodec.family.losses import jacobian_frobenius_exact, jacobian_frobenius_hutchinson


@dataclass(frozen=True)
class ContractiveConfig(BackboneConfig):
    """Penalty weight; ``projections`` random directions per step, or 0 for the exact Jacobian."""

    contractive_weight: float = 1e-4
    projections: int = 1


class ContractiveAutoencoder(Autoencoder):
    """Autoencoder whose encoder is made locally insensitive to its input."""

    def bottleneck(self, x: Tensor) -> Bottleneck:
        x = x.detach().requires_grad_(True)
        code = self.encode(x)
        if self.config.projections == 0:
            jacobian = jacobian_frobenius_exact(self.encode, x)
        else:
            jacobian = jacobian_frobenius_hutchinson(code, x, self.config.projections)
        return Bottleneck(code, self.config.contractive_weight * jacobian, {"jacobian": jacobian.item()})
