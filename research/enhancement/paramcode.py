"""Quantization of per-image network parameters and their cost in bits (signed exp-Golomb)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

STEP_HEADER_BITS = 4 + 3  # per coded tensor group: the step exponent and the Golomb order


def exp_golomb_bits(values: np.ndarray, order: int) -> int:
    """Length of the signed exp-Golomb-``order`` code of integer ``values``."""
    v = values.astype(np.int64)
    u = np.where(v > 0, 2 * v - 1, -2 * v)
    m = np.floor(np.log2(u / (1 << order) + 1)).astype(np.int64)
    return int(np.sum(2 * m + 1 + order))


def best_golomb_bits(values: np.ndarray) -> int:
    """Cost with the best Golomb order in 0..10, plus the header."""
    return min(exp_golomb_bits(values, k) for k in range(11)) + STEP_HEADER_BITS


def quantize_module(module: nn.Module, step_exp: int) -> tuple[dict[str, torch.Tensor], int]:
    """Quantized state (values on the 2^-step_exp grid) and its bits (weights and biases coded apart)."""
    step = 2.0**-step_exp
    state, bits = {}, 0
    for kind in ("weight", "bias"):
        ints = [torch.round(p.detach() / step) for n, p in module.named_parameters() if n.endswith(kind)]
        bits += best_golomb_bits(torch.cat([i.flatten() for i in ints]).numpy())
    for n, p in module.named_parameters():
        state[n] = torch.round(p.detach() / step) * step
    return state, bits


def load_quantized(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for n, p in module.named_parameters():
            p.copy_(state[n])
