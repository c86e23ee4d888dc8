"""Entropy-constrained choice of the base's indices under the residual layer (session 31, not adopted).

Each index of a stage the least ||r - c||^2 + mu * bits, r what the earlier stages leave of the latent and bits
its exact cost under the integer prior's table for that position (checkerboard anchors first, then the others
given them), instead of the nearest codeword; the file is then coded as the effort says, and judged by squared
error plus the codec's Lagrangian times its real bytes, against mu = 0 (the shipped encoder).

    PYTHONPATH=. python research/base/ecvq.py IMAGE QUALITY EFFORT MU_TOP,... MU_BOTTOM,...
"""

import sys

import numpy as np
import torch
from torch import Tensor

import aecodec.codec.api as api
from aecodec.codec.api import Codec
from aecodec.codec.distortion import squared_error
from aecodec.codec.images import load_source
from aecodec.models.integer_prior import IntegerLevelPrior, IntegerPrior
from aecodec.models.prior import pass_masks
from aecodec.models.quantizer import VectorQuantizer
from aecodec.models.vqvae2 import VQVAE2

MU = [0.0, 0.0]  # (top, bottom) weights of an index's bits, in squared latent units


def ecvq_level(
    prior: IntegerLevelPrior,
    quantizers: list[VectorQuantizer],
    z: Tensor,
    stages: int,
    coarser: list[Tensor],
    mu: float,
) -> list[Tensor]:
    """The stage index maps of a level's latent ``z`` (1, D, H, W), each index by D + mu R."""
    shape = tuple(z.shape[2:])
    residual, decoded = z[0].permute(1, 2, 0), []
    for stage in range(stages):
        codebook = quantizers[stage].codebook
        context = prior.context(stage, decoded, coarser, shape)
        indices = torch.zeros(shape, dtype=torch.int64)
        distance = residual.pow(2).sum(-1, keepdim=True) - 2 * residual @ codebook.t() + codebook.pow(2).sum(1)
        for number, positions in enumerate(pass_masks(prior.order, *shape)):
            cost = distance[positions].double()
            if mu:
                freqs = prior.frequencies(stage, context, indices, number).double()
                cost = cost + mu * (freqs.sum(1, keepdim=True).log2() - freqs.log2())
            indices[positions] = cost.argmin(1)
        decoded.append(indices)
        residual = residual - codebook[indices]
    return decoded


def ecvq_tile(network: VQVAE2, prior: IntegerPrior, x: Tensor, quality: int, tune: str, plan: object) -> tuple:
    """``encode_tile``'s result with both levels' indices chosen by :func:`ecvq_level`."""
    n_top, n_bottom = network.stages_for_quality(quality)
    with torch.no_grad():
        h = network.encode_bottom(x - 0.5)
        top = ecvq_level(prior.top, network.quantize_top.stages, network.encode_top(h), n_top, [], MU[0])
        top_q = network.quantize_top.decode([i[None] for i in top])
        latent = network.pre_bottom(torch.cat([h, network.decode_top(top_q)], 1))
        bottom = ecvq_level(prior.bottom, network.quantize_bottom.stages, latent, n_bottom, top, MU[1])
    return top, bottom


def main() -> None:
    image, quality, effort = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    codec = Codec()
    api.encode_tile = ecvq_tile
    original = load_source(image, codec.max_pixels, False).pixels[:, :, :3]
    reference = None
    for mu_top in map(float, sys.argv[4].split(",")):
        for mu_bottom in map(float, sys.argv[5].split(",")):
            MU[:] = [mu_top, mu_bottom]
            data = codec.compress(image, quality, effort=effort)
            error = squared_error(np.asarray(codec.decompress(data).convert("RGB")), original)
            cost = error + codec._lagrangian(quality) * 8 * len(data)
            reference = reference or cost
            psnr = 10 * np.log10(255**2 * original.size / error)
            print(f"mu {mu_top:g}/{mu_bottom:g}: {len(data)} B {psnr:.3f} dB, J {100 * (cost / reference - 1):+.2f}%")


if __name__ == "__main__":
    main()
