"""Sparse autoencoder: an L1 penalty on the code, and for sigmoid codes the KL sparsity penalty.

The KL term (Ng's lecture notes) pulls each channel's mean activation towards a small target
``rho``; it needs codes in (0, 1), so it requires ``sigmoid_code``.
"""

from dataclasses import dataclass

import torch
from torch import Tensor

from aecodec.family.autoencoder import Autoencoder, Bottleneck
from aecodec.family.backbone import BackboneConfig
from aecodec.family.losses import bernoulli_kl_sparsity, l1_sparsity


@dataclass(frozen=True)
class SparseConfig(BackboneConfig):
    """Penalty weights; ``kl_weight`` > 0 needs ``sigmoid_code``."""

    l1_weight: float = 1e-3
    kl_weight: float = 0.0
    rho: float = 0.05
    sigmoid_code: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kl_weight > 0 and not self.sigmoid_code:
            raise ValueError("the KL sparsity penalty needs sigmoid codes (sigmoid_code=True)")


class SparseAutoencoder(Autoencoder):
    """Autoencoder whose code is pushed towards zero (or towards mean activation ``rho``)."""

    def encode(self, x: Tensor) -> Tensor:
        code = self.encoder(x)
        return torch.sigmoid(code) if self.config.sigmoid_code else code

    def bottleneck(self, x: Tensor) -> Bottleneck:
        code = self.encode(x)
        l1 = l1_sparsity(code)
        penalty, metrics = self.config.l1_weight * l1, {"l1": l1.item()}
        if self.config.kl_weight > 0:
            kl = bernoulli_kl_sparsity(code, self.config.rho)
            penalty, metrics["kl_sparsity"] = penalty + self.config.kl_weight * kl, kl.item()
        return Bottleneck(code, penalty, metrics)
