"""Test fixtures: tiny untrained models with a correctly built integer prior, as bytes or loaded.

For tests, fuzzing and the large-image tool; nothing in the codec's runtime path imports this module.
"""

import torch

from aecodec.models.model_files import CodecModel, model_from_bytes
from aecodec.models.prior import HierarchicalPrior, PriorConfig
from aecodec.models.vqvae2 import VQVAE2, VQVAE2Config
from aecodec.training.export import export_model


def random_model_bytes(
    name: str = "random", config: VQVAE2Config | None = None, seed: int = 0, image_size: int = 64
) -> bytes:
    """Model-file bytes of an untrained model with a correctly built integer prior (for tests)."""
    torch.manual_seed(seed)
    config = config or VQVAE2Config(
        channels=16, latent_dim=8, num_codes=32, top_stages=2, bottom_stages=3, res_blocks=1
    )
    network = VQVAE2(config)
    prior = HierarchicalPrior(
        config.num_codes, config.top_stages, config.bottom_stages, PriorConfig(embed=8, hidden=16)
    )
    network.train()
    network(torch.rand(2, 3, image_size, image_size))  # k-means codebook initialisation
    data, _ = export_model(name, network, prior, torch.rand(2, 3, image_size, image_size))
    return data


def random_model(name: str = "random", config: VQVAE2Config | None = None, seed: int = 0) -> CodecModel:
    """An untrained, tiny model: fast tests of the whole codec."""
    return model_from_bytes(random_model_bytes(name, config, seed), name)
