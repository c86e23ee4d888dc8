"""Bjontegaard deltas between two rate-distortion curves, piecewise-cubic (PCHIP) variant.

As in JVET's and CompressAI's "piecewise cubic" BD-rate: log-rate is interpolated as a monotone
piecewise-cubic (PCHIP) function of quality over the quality range both curves cover, and the two
interpolants are integrated exactly (not sampled). Points may come in any order. A curve with fewer
than two points, repeated quality values (or repeated rates for `bd_psnr`), non-finite values,
non-positive rates, or two curves whose ranges do not overlap raise `ValueError`.

A BD value only describes the interval it averages over (`shared_range`), so reports print it
beside each value. Two helpers describe what a BD-rate hides: `saturation_start`, where a curve
stops gaining quality for its bits, and `window_mean`, a curve's mean quality over a fixed rate
window with the curve held flat beyond its measured points, which counts saturation against it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.interpolate import PchipInterpolator


def _interpolant(x: Sequence[float], y: Sequence[float], what: str) -> PchipInterpolator:
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if xs.shape != ys.shape or xs.ndim != 1:
        raise ValueError(f"{what}: rate and quality lists must have the same length")
    if xs.size < 2:
        raise ValueError(f"{what}: a curve needs at least 2 points, got {xs.size}")
    if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ys))):
        raise ValueError(f"{what}: non-finite values in the curve")
    order = np.argsort(xs)
    xs, ys = xs[order], ys[order]
    if np.any(np.diff(xs) == 0):
        raise ValueError(f"{what}: repeated values on the interpolation axis")
    return PchipInterpolator(xs, ys)


def shared_range(xa: Sequence[float], xb: Sequence[float]) -> tuple[float, float]:
    """The interval both curves cover on one axis: a BD-rate averages over this quality range only."""
    lo, hi = max(min(xa), min(xb)), min(max(xa), max(xb))
    if not lo < hi:
        raise ValueError(f"curves do not overlap (shared range [{lo:g}, {hi:g}] is empty)")
    return float(lo), float(hi)


def _mean_gap(xa: Sequence[float], ya: Sequence[float], xb: Sequence[float], yb: Sequence[float]) -> float:
    """Mean of (yb(x) - ya(x)) over the x range shared by both curves, integrating exactly."""
    fa, fb = _interpolant(xa, ya, "anchor"), _interpolant(xb, yb, "test")
    lo, hi = shared_range(fa.x, fb.x)
    return float((fb.integrate(lo, hi) - fa.integrate(lo, hi)) / (hi - lo))


def _log_rates(rate: Sequence[float]) -> np.ndarray:
    r = np.asarray(rate, dtype=float)
    if np.any(~(r > 0)):
        raise ValueError("rates must be positive")
    return np.log(r)


def bd_rate(
    anchor_rate: Sequence[float],
    anchor_quality: Sequence[float],
    test_rate: Sequence[float],
    test_quality: Sequence[float],
) -> float:
    """Average rate difference of test vs anchor at equal quality, in percent (negative = test saves bits)."""
    gap = _mean_gap(anchor_quality, _log_rates(anchor_rate), test_quality, _log_rates(test_rate))
    return float(np.expm1(gap) * 100.0)


def bd_psnr(
    anchor_rate: Sequence[float],
    anchor_quality: Sequence[float],
    test_rate: Sequence[float],
    test_quality: Sequence[float],
) -> float:
    """Average quality difference of test vs anchor at equal rate (in quality units, e.g. dB)."""
    return _mean_gap(_log_rates(anchor_rate), anchor_quality, _log_rates(test_rate), test_quality)


# A curve saturates where it gains less than 0.1 dB per 0.1 bpp.
SATURATION_SLOPE = 1.0


def saturation_start(
    rate: Sequence[float], quality: Sequence[float], slope: float = SATURATION_SLOPE
) -> tuple[float, float] | None:
    """Where a curve's flat tail starts, as (bpp, quality): each later step gains < `slope` dB/bpp; None if none."""
    points = sorted(zip(rate, quality, strict=True))
    start = None
    for (r0, q0), (r1, q1) in zip(points[-2::-1], points[:0:-1]):  # steps from the top down
        if (q1 - q0) >= slope * (r1 - r0):
            break
        start = (float(r0), float(q0))
    return start


def window_mean(rate: Sequence[float], quality: Sequence[float], lo: float, hi: float) -> float:
    """Mean quality over log-rate in [lo, hi] bpp, the curve held at its end points' quality beyond them.

    Held flat past its last point, a curve that saturates or stops early scores what it reaches;
    held flat below its first point, a curve that starts late is flattered (reports show the range).
    """
    if not 0 < lo < hi:
        raise ValueError(f"rate window must satisfy 0 < lo < hi, got [{lo:g}, {hi:g}]")
    f = _interpolant(_log_rates(rate), quality, "curve")
    a, b, first, last = np.log(lo), np.log(hi), f.x[0], f.x[-1]
    total = f(first) * max(0.0, min(b, first) - a) + f(last) * max(0.0, b - max(a, last))
    if max(a, first) < min(b, last):
        total += f.integrate(max(a, first), min(b, last))
    return float(total / (b - a))
