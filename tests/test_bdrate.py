"""Bjontegaard deltas against hand-computed cases."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aecodec.bench.bdrate import bd_psnr, bd_rate, saturation_start, shared_range, window_mean

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


def test_bd_rate_of_a_shifted_copy_covers_the_overlap() -> None:
    # Anchor: ln R = (Q - 30) / 10 on Q in [30, 40]; the test is the same points 1 dB higher, so at
    # every Q of the overlap [31, 40] its log-rate is 0.1 lower: BD-rate = e^-0.1 - 1 over [31, 40].
    anchor_q = [30.0, 32.5, 35.0, 37.5, 40.0]
    rates = [math.exp((q - 30) / 10) for q in anchor_q]
    test_q = [q + 1.0 for q in anchor_q]
    assert bd_rate(rates, anchor_q, rates, test_q) == pytest.approx(100 * math.expm1(-0.1), abs=1e-9)
    assert shared_range(anchor_q, test_q) == (31.0, 40.0)


def test_saturation_is_flagged_on_a_flat_tail_only() -> None:
    rising = [0.1, 0.2, 0.4, 0.8, 1.2]
    assert saturation_start(rising, [24.0, 26.0, 28.0, 30.0, 32.0]) is None
    # Steps of 0.05 dB per 0.4 bpp from 0.4 bpp up: 0.125 dB/bpp < 1 dB/bpp.
    assert saturation_start(rising, [24.0, 26.0, 28.0, 28.05, 28.1]) == (0.4, 28.0)
    # Exactly 0.1 dB per 0.1 bpp is not saturated; a falling last step is.
    assert saturation_start([0.1, 0.2], [30.0, 30.1]) is None
    assert saturation_start([0.2, 0.1, 0.3], [30.0, 25.0, 29.9]) == (0.2, 30.0)


def test_window_mean_holds_curves_flat_beyond_their_points() -> None:
    # Q = 30 + 10 ln R on [e^-1, 1] bpp (collinear in ln R, reproduced exactly), held flat outside.
    lns = [-1.0, -0.5, 0.0]
    rates, psnrs = [math.exp(x) for x in lns], [30 + 10 * x for x in lns]
    # Window [e^-2, e^1] in ln R: flat 20 dB on [-2, -1], mean 25 dB on [-1, 0], flat 30 dB on [0, 1].
    assert window_mean(rates, psnrs, math.exp(-2), math.exp(1)) == pytest.approx((20 + 25 + 30) / 3, abs=1e-9)
    # Inside the curve: the mean of the line; wholly above it: its last point.
    assert window_mean(rates, psnrs, math.exp(-1), 1.0) == pytest.approx(25.0, abs=1e-9)
    assert window_mean(rates, psnrs, 2.0, 3.0) == pytest.approx(30.0, abs=1e-9)


def test_window_bd_psnr_counts_saturation_against_a_codec() -> None:
    # Over [e^-1, e^1]: a curve rising 30 + 5 ln R on all of it has mean 30 dB; the same curve
    # stopping at 1 bpp (its last point 30 dB) is held at 30 dB on [0, 1]: mean (27.5 + 30) / 2.
    lns = [-1.0, 0.0, 1.0]
    full = ([math.exp(x) for x in lns], [30 + 5 * x for x in lns])
    stopped = (full[0][:2], full[1][:2])
    lo, hi = math.exp(-1), math.exp(1)
    gap = window_mean(*stopped, lo, hi) - window_mean(*full, lo, hi)
    assert gap == pytest.approx(28.75 - 30.0, abs=1e-9)
    with pytest.raises(ValueError, match="window"):
        window_mean(*full, 1.5, 0.1)
