"""Encoder effort, cjxl's habit: a higher effort is a slower encoder that finds better indices for the same decoder.

Each effort is one row of :data:`EFFORTS` saying what the encoder does; a per-image enhancement
layer (issue 19) enters as further rows. Effort 1 is the network's own analysis, nearest
codewords and the residual layer's deadzone quantizer. Effort 2 (the default) quantizes the residual
by RDOQ (:mod:`aecodec.codec.residual_rdo`). Efforts 3 and 4 also refine the bottom latent, at the
qualities the base codes alone, through the frozen decoder for the tune's objective
(:mod:`aecodec.codec.refine`); for squared error, the tile then keeps whichever candidate, the
analysis's own indices or the refined ones, has the least pixel squared error plus lambda times its
exact bits under the integer prior, so a higher effort is never worse in D + lambda R. Below a
residual layer a refined base gained nothing (0.0% BD-rate for 12x the encode time: the residual
absorbs it), so there the base is always the analysis's. Efforts 1 and 2 code the base of every
residual level at half resolution (docs/FORMAT.md, flags), better on average at every rate; efforts
3 and up code the image on both a full- and a half-resolution base and keep the file of lower
squared error plus lambda times its bits, then recode the residual toward what the post-filter makes
of its decode (:mod:`aecodec.codec.filter_target`; 2 passes at effort 3, 4 at 4 and 5), keeping the
recoding of least filtered squared error plus lambda times its bits.
Effort 5 adds the first per-image layer: every bias of the post-filter tuned to the image
(:mod:`aecodec.codec.filter_tuning`), then two more recoding passes through the tuned filter; most of
its time is the tuning's steps, on the caller's threads (README, the speed table; larger images are tuned
on 0.5 MP of crops). Every effort but the first ends with two corrections fitted to the final
decode, each where it pays for its bits: a Wiener filter (:mod:`aecodec.codec.wiener_filter`), then
the correction field (:mod:`aecodec.codec.correction_field`). Fitting them takes a decode of the file
(the post-filter, mostly), which would triple effort 1's encode time. Efforts 3 and up end with
recodings aimed through them too (1 at effort 3, 2 at 4, 4 at 5): at the original less what the
corrections fitted to the last decode add, each candidate judged with its own corrections refitted.
"""

from dataclasses import dataclass

import torch
from torch import Tensor

from aecodec.codec.refine import can_refine, refine_latent, tuning
from aecodec.errors import InputError
from aecodec.models.integer_prior import IntegerPrior, code_length
from aecodec.models.vqvae2 import VQVAE2

Indices = tuple[list[Tensor], list[Tensor]]


@dataclass(frozen=True)
class Effort:
    """What the encoder does to each tile at one effort level."""

    refine_steps: int  # Adam steps on the tune's objective before quantization (a tune may take more)
    rdoq: bool = False  # residual coefficients by RDOQ, else by the deadzone quantizer
    lr: float = 0.01  # refinement step size
    filter_steps: int = 0  # Adam steps tuning the post-filter to the image (0: the shared filter)
    filter_passes: int = 0  # recodings of the residual toward what the post-filter makes of it
    tuned_passes: int = 0  # recodings through the image's tuned filter, once it is tuned
    corrected_passes: int = 0  # last recodings, toward what the corrections fitted to the decode leave
    base_choice: bool = False  # code on a full- and a half-resolution base, keep the lower D + lambda R
    corrections: bool = True  # fit the Wiener filter and correction field on the final decode (one more decode)


EFFORTS: tuple[Effort, ...] = (
    Effort(0, corrections=False),
    Effort(0, rdoq=True),
    Effort(8, rdoq=True, base_choice=True, filter_passes=2, corrected_passes=1),
    Effort(32, rdoq=True, base_choice=True, filter_passes=4, corrected_passes=2),
    Effort(32, rdoq=True, filter_steps=240, base_choice=True, filter_passes=4, tuned_passes=2, corrected_passes=4),
)


def effort_plan(effort: int) -> Effort:
    """The row of :data:`EFFORTS` for ``effort`` (1-based); InputError naming the valid range otherwise."""
    if isinstance(effort, bool) or not isinstance(effort, int) or effort not in range(1, len(EFFORTS) + 1):
        raise InputError(f"effort must be an integer in 1..{len(EFFORTS)}, got {effort!r}")
    return EFFORTS[effort - 1]


def rd_lambda(quality: int) -> float:
    """Lagrange multiplier at ``quality``, in squared error of [0, 1] pixel values per bit.

    The slope of the default model's Kodak curve (MSE per bpp, times 3 values per pixel) between
    neighbouring qualities, which halves at each step: 0.012 * 0.52 ** (quality - 1) MSE per bpp.
    """
    return 3 * 0.012 * 0.52 ** (quality - 1)


def rd_cost(network: VQVAE2, prior: IntegerPrior, x: Tensor, indices: Indices, quality: int) -> float:
    """Squared error of the decoded 8-bit tile plus lambda times the indices' exact bits under the integer prior."""
    decoded = (network.decode(*indices) * 255).round() / 255
    return float((decoded - x).pow(2).sum()) + rd_lambda(quality) * code_length(prior, *indices)[0]


@torch.no_grad()
def encode_tile(network: VQVAE2, prior: IntegerPrior, x: Tensor, quality: int, tune: str, effort: Effort) -> Indices:
    """Indices (top stages, bottom stages) of a (1, 3, H, W) tile at ``quality``, as encoded at ``effort``."""
    keep, tune_spec = torch.tensor([quality], device=x.device), tuning(tune)
    top, latent = network.analyze_top(x, keep.clamp(max=network.config.top_stages))
    steps = max(effort.refine_steps, tune_spec.min_steps) if can_refine(x, tune) else 0
    latents = [latent]
    if steps:
        refined = refine_latent(network, x, top, latent, quality, tune, steps, effort.lr)
        # The refinement already kept the analysis's latent if nothing beat it on the tune's objective;
        # only a squared-error tune can weigh the two index sets against their bits.
        latents = [latent, refined] if tune_spec.rate_distortion else [refined]
    candidates = [network.stage_indices(top, network.quantize_bottom(z, keep), quality) for z in latents]
    if len(candidates) == 1:
        return candidates[0]
    return min(candidates, key=lambda indices: rd_cost(network, prior, x, indices, quality))
