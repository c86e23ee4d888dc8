"""Test fixtures: tiny untrained models with a correctly built integer prior, as bytes or loaded.

For tests, fuzzing and the large-image tool; nothing in the codec's runtime path imports this module.
"""

import numpy as np
import torch

from aecodec.models.model_files import HALF_BASE_QUALITY, CodecModel, model_bytes, model_from_bytes
from aecodec.models.postfilter import PostFilter
from aecodec.models.prior import CHECKERBOARD, HierarchicalPrior, PriorConfig
from aecodec.models.residual import COEFFICIENTS, DEPTH, PREDICTOR_INPUTS, ResidualLayer, ResidualLevel, context_count
from aecodec.models.vqvae2 import VQVAE2, VQVAE2Config
from aecodec.training.export import export_model
from aecodec.training.residual import laplace_bank


def random_residual_layer(
    levels: list[tuple[int, float] | tuple[int, float, int]],
    base_only: int,
    seed: int = 0,
    predict: bool = False,
    depth: int = DEPTH,
) -> ResidualLayer:
    """A residual layer with random orthonormal transforms and context rows, one level per (base quality, step[,
    half-base quality: :data:`HALF_BASE_QUALITY` if not given]), decoding order of ``depth``; with ``predict``,
    small random second-pass predictors."""
    rng = np.random.default_rng(seed)
    qualities = sorted({q for q, *_ in levels})
    bases = np.stack([np.linalg.qr(rng.normal(size=(COEFFICIENTS, COEFFICIENTS)))[0] for _ in qualities])
    bank = laplace_bank()
    return ResidualLayer(
        rng.normal(size=(len(qualities), COEFFICIENTS)).astype(np.float32),
        bases.astype(np.float32),
        bank,
        tuple(
            ResidualLevel(
                q, qualities.index(q), round(step * 16), rng.integers(0, len(bank), context_count(depth)), half
            )
            for q, step, half in ((*level, HALF_BASE_QUALITY)[:3] for level in levels)
        ),
        0.1,
        base_only,
        base_only + 1,
        (rng.normal(size=(len(qualities), PREDICTOR_INPUTS, COEFFICIENTS)) * 0.05).astype(np.float32)
        if predict
        else None,
    )


def with_residual_layer(data: bytes, layer: ResidualLayer, name: str = "random-res") -> bytes:
    """Model-file bytes of the model in ``data`` with ``layer`` added."""
    model = model_from_bytes(data)
    return model_bytes(name, model.network, model.prior, layer)


def random_postfilter(qualities: int, channels: int = 8, seed: int = 0, blocks: int = 0) -> PostFilter:
    """A post-filter with small random weights (so its correction is not zero) and unit gains."""
    generator = torch.Generator().manual_seed(seed)
    postfilter = PostFilter(qualities, channels, blocks)
    with torch.no_grad():
        for parameter in postfilter.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)
    return postfilter.eval()


def with_postfilter(data: bytes, postfilter: PostFilter, name: str = "random-pf") -> bytes:
    """Model-file bytes of the model in ``data`` (its residual layer kept) with ``postfilter`` added."""
    model = model_from_bytes(data)
    return model_bytes(name, model.network, model.prior, model.residual, postfilter=postfilter)


def random_model_bytes(
    name: str = "random",
    config: VQVAE2Config | None = None,
    seed: int = 0,
    image_size: int = 64,
    order: str = CHECKERBOARD,
) -> bytes:
    """Model-file bytes of an untrained model with a correctly built integer prior in pass ``order`` (for tests)."""
    torch.manual_seed(seed)
    config = config or VQVAE2Config(
        channels=16, latent_dim=8, num_codes=32, top_stages=2, bottom_stages=3, res_blocks=1
    )
    network = VQVAE2(config)
    prior = HierarchicalPrior(
        config.num_codes, config.top_stages, config.bottom_stages, PriorConfig(embed=8, hidden=16, order=order)
    )
    if prior.top.pass_bias is not None:  # random pass biases, so that tests see them used (the network unchanged)
        generator = torch.Generator().manual_seed(seed)
        for level in (prior.top, prior.bottom):
            level.pass_bias.data = torch.randn(level.pass_bias.shape, generator=generator) * 0.5
    network.train()
    network(torch.rand(2, 3, image_size, image_size))  # k-means codebook initialisation
    data, _ = export_model(name, network, prior, torch.rand(2, 3, image_size, image_size))
    return data


def random_model(name: str = "random", config: VQVAE2Config | None = None, seed: int = 0) -> CodecModel:
    """An untrained, tiny model: fast tests of the whole codec."""
    return model_from_bytes(random_model_bytes(name, config, seed), name)


def random_residual_model(name: str = "random-res", seed: int = 0) -> CodecModel:
    """:func:`random_model` with a random residual layer (qualities 1..3 base only, 4 and 5 with residual
    levels on half bases of quality 1 and 3, second-pass predictors) and a random post-filter: every stage a
    decoder can run."""
    layer = random_residual_layer([(2, 12.0, 1), (3, 4.0)], 3, seed, predict=True)
    data = with_residual_layer(random_model_bytes(seed=seed), layer)
    return model_from_bytes(with_postfilter(data, random_postfilter(5, seed=seed), name), name)
