"""Bjontegaard deltas against hand-computed cases."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aecodec.bench.bdrate import bd_psnr, bd_rate

RATES = [0.2, 0.45, 0.8, 1.4, 2.5]
PSNRS = [27.0, 29.5, 32.0, 34.0, 37.5]


def test_identical_curves_give_zero() -> None:
    assert bd_rate(RATES, PSNRS, RATES, PSNRS) == pytest.approx(0.0, abs=1e-12)
    assert bd_psnr(RATES, PSNRS, RATES, PSNRS) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(("scale", "expected"), [(0.5, -50.0), (1.2, 20.0), (2.0, 100.0)])
def test_uniform_rate_scaling_gives_that_percentage(scale: float, expected: float) -> None:
    assert bd_rate(RATES, PSNRS, [r * scale for r in RATES], PSNRS) == pytest.approx(expected, abs=1e-9)


def test_uniform_quality_shift_gives_that_bd_psnr() -> None:
    assert bd_psnr(RATES, PSNRS, RATES, [p + 1.0 for p in PSNRS]) == pytest.approx(1.0, abs=1e-9)


def test_linear_curves_by_hand() -> None:
    # Anchor: ln R = (Q - 30) / 10 on Q in [30, 40]; test: ln R = (Q - 30) / 5 on Q in [35, 45] (collinear
    # points, which PCHIP reproduces exactly). Shared Q range [35, 40]: the log-rate gap (Q - 30) / 10 has
    # mean 0.75 there, so BD-rate = e^0.75 - 1.
    anchor_q, test_q = [30.0, 35.0, 40.0], [35.0, 40.0, 45.0]
    anchor_r = [math.exp((q - 30) / 10) for q in anchor_q]
    test_r = [math.exp((q - 30) / 5) for q in test_q]
    assert bd_rate(anchor_r, anchor_q, test_r, test_q) == pytest.approx(100 * (math.exp(0.75) - 1), abs=1e-9)


def test_linear_bd_psnr_by_hand() -> None:
    # Anchor: Q = 30 + 10 L on L = ln R in [0, 2]; test: Q = 30 + 5 L on L in [1, 3]. Shared L range
    # [1, 2]: the quality gap -5 L has mean -7.5 dB there.
    anchor_l, test_l = [0.0, 1.0, 2.0], [1.0, 2.0, 3.0]
    anchor_q, test_q = [30 + 10 * x for x in anchor_l], [30 + 5 * x for x in test_l]
    anchor_r, test_r = [math.exp(x) for x in anchor_l], [math.exp(x) for x in test_l]
    assert bd_psnr(anchor_r, anchor_q, test_r, test_q) == pytest.approx(-7.5, abs=1e-9)


@settings(max_examples=25, deadline=None)
@given(st.permutations(range(len(RATES))), st.permutations(range(len(RATES))))
def test_point_order_is_irrelevant(order_a: list[int], order_b: list[int]) -> None:
    test_rates = [r * (0.7 + 0.1 * i) for i, r in enumerate(RATES)]
    expected = bd_rate(RATES, PSNRS, test_rates, PSNRS)
    shuffled = bd_rate(
        [RATES[i] for i in order_a],
        [PSNRS[i] for i in order_a],
        [test_rates[i] for i in order_b],
        [PSNRS[i] for i in order_b],
    )
    assert shuffled == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize(
    ("anchor", "test", "message"),
    [
        (([1.0], [30.0]), ([1.0, 2.0], [30.0, 35.0]), "at least 2 points"),
        (([1.0, 2.0], [30.0, 33.0]), ([1.0, 2.0], [34.0, 38.0]), "do not overlap"),
        (([1.0, 2.0], [30.0, 30.0]), ([1.0, 2.0], [30.0, 35.0]), "repeated"),
        (([1.0, 0.0], [30.0, 33.0]), ([1.0, 2.0], [30.0, 35.0]), "positive"),
        (([1.0, 2.0], [30.0, math.nan]), ([1.0, 2.0], [30.0, 35.0]), "non-finite"),
        (([1.0, 2.0, 3.0], [30.0, 33.0]), ([1.0, 2.0], [30.0, 35.0]), "same length"),
    ],
)
def test_invalid_curves_raise(anchor: tuple, test: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bd_rate(*anchor, *test)
