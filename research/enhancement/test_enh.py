"""Small checks of the prototype: table bank, integer ARM vs its float emulation, latent round trip.

PYTHONPATH=. python -m pytest -q research/enhancement/test_enh.py   (from the repo root)
"""

import numpy as np
import torch

from research.enhancement.coding import decode_latents, encode_latents, integer_weights
from research.enhancement.model import Enhancement, EnhConfig, contexts, integer_arm
from research.enhancement.paramcode import exp_golomb_bits, load_quantized, quantize_module
from research.enhancement.tables import BANK, TABLE_BITS


def _model(seed: int = 0, h: int = 40, w: int = 56) -> Enhancement:
    torch.manual_seed(seed)
    m = Enhancement(EnhConfig(levels=4), h, w)
    with torch.no_grad():
        for y in m.latents:
            y.copy_(torch.randn_like(y) * 3)
        for p in m.arm.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    load_quantized(m.arm, quantize_module(m.arm, 7)[0])
    m.arm.emulate_integer = True
    return m


def test_bank_rows_are_exact() -> None:
    assert (BANK.sum(-1) == 1 << TABLE_BITS).all() and BANK.min() >= 1


def test_integer_arm_matches_emulation() -> None:
    m = _model()
    lat = m.quantized_latents("hard")
    ctx = contexts(lat)[0].flatten(2)[0].T
    mu_f, ls_f = m.arm(ctx)
    mu_i, ls_i = integer_arm(integer_weights(m.arm), ctx.round().long().numpy())
    s = float(1 << 8)
    assert np.mean(np.abs(mu_f.detach().numpy() * s - mu_i) <= 1) > 0.999
    assert np.mean(np.abs(ls_f.detach().numpy() * s - ls_i) <= 1) > 0.999


def test_latent_round_trip() -> None:
    m = _model(1)
    lat = m.quantized_latents("hard")
    w = integer_weights(m.arm)
    data = encode_latents(lat, w)
    back = decode_latents(data, w, m.height, m.width, m.cfg.levels)
    assert all(torch.equal(a, b) for a, b in zip(lat, back))
    torch.set_num_threads(2)
    assert encode_latents(lat, w) == data


def test_exp_golomb() -> None:
    assert exp_golomb_bits(np.array([0]), 0) == 1 and exp_golomb_bits(np.array([1, -1]), 0) == 6


def test_grouped_coding_round_trip() -> None:
    from research.enhancement.coding import decode_latents_grouped, encode_latents_grouped

    m = _model(2)
    lat = m.quantized_latents("hard")
    w = integer_weights(m.arm)
    data = encode_latents_grouped(lat, w)
    back = decode_latents_grouped(data, w, m.height, m.width, m.cfg.levels)
    assert all(torch.equal(a, b) for a, b in zip(lat, back))
    assert abs(len(data) - len(encode_latents(lat, w))) <= 8
