"""The family by name: each member's model and config class, and the one training interface they share.

Every member has ``loss(batch) -> (loss, metrics)`` on a (B, 3, H, W) batch in [0, 1] (a loss that
needs no gradient, as k-means', is returned detached), a ``stride`` that image sides must be
multiples of, and a ``config`` dataclass with ``to_dict``.
"""

from dataclasses import dataclass, fields
from typing import Any

from torch import nn

from aecodec.family.autoencoder import Autoencoder
from aecodec.family.backbone import BackboneConfig
from aecodec.family.contractive import ContractiveAutoencoder, ContractiveConfig
from aecodec.family.denoising import DenoisingAutoencoder, DenoisingConfig
from aecodec.family.kmeans_vq import BlockVQ, BlockVQConfig
from aecodec.family.sparse import SparseAutoencoder, SparseConfig
from aecodec.family.vae import VAE, VAEConfig
from aecodec.family.vqgan import VQGAN, VQGANConfig
from aecodec.family.vqvae import VQVAE, VQVAEConfig


@dataclass(frozen=True)
class Member:
    """A family member: its model class and the config dataclass the model is built from."""

    model: type[nn.Module]
    config: type
    summary: str

    def build(self, **settings: Any) -> nn.Module:
        """A fresh model with the default config updated by ``settings`` (config field names)."""
        return self.model(self.config(**settings))

    def setting_names(self) -> list[str]:
        return [f.name for f in fields(self.config)]


FAMILY: dict[str, Member] = {
    "ae": Member(Autoencoder, BackboneConfig, "plain autoencoder, MSE"),
    "dae": Member(DenoisingAutoencoder, DenoisingConfig, "denoising autoencoder (noise + patch masking)"),
    "sparse": Member(SparseAutoencoder, SparseConfig, "sparse autoencoder (L1, optional KL sparsity)"),
    "contractive": Member(ContractiveAutoencoder, ContractiveConfig, "contractive autoencoder (Jacobian norm)"),
    "vae": Member(VAE, VAEConfig, "variational autoencoder (beta-VAE, Gaussian latent)"),
    "kmeans": Member(BlockVQ, BlockVQConfig, "k-means vector quantization of 4x4 blocks"),
    "vqvae": Member(VQVAE, VQVAEConfig, "single-level VQ-VAE, EMA codebook"),
    "vqgan": Member(VQGAN, VQGANConfig, "VQ-VAE + PatchGAN hinge loss + ST-LPIPS"),
}


def member(name: str) -> Member:
    """The member called ``name``; ValueError naming the choices otherwise."""
    if name not in FAMILY:
        raise ValueError(f"unknown family member {name!r}; choose from {', '.join(FAMILY)}")
    return FAMILY[name]


def build_model(name: str, **settings: Any) -> nn.Module:
    """A fresh model of member ``name`` with config ``settings`` over the defaults."""
    return member(name).build(**settings)
