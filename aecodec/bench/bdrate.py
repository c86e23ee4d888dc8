"""Bjontegaard deltas between two rate-distortion curves, piecewise-cubic (PCHIP) variant.

As in JVET's and CompressAI's "piecewise cubic" BD-rate: log-rate is interpolated as a monotone
piecewise-cubic (PCHIP) function of quality over the quality range both curves cover, and the two
interpolants are integrated exactly (not sampled). Points may come in any order. A curve with fewer
than two points, repeated quality values (or repeated rates for `bd_psnr`), non-finite values,
non-positive rates, or two curves whose ranges do not overlap raise `ValueError`.
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


def _mean_gap(xa: Sequence[float], ya: Sequence[float], xb: Sequence[float], yb: Sequence[float]) -> float:
    """Mean of (yb(x) - ya(x)) over the x range shared by both curves, integrating exactly."""
    fa, fb = _interpolant(xa, ya, "anchor"), _interpolant(xb, yb, "test")
    lo, hi = max(fa.x[0], fb.x[0]), min(fa.x[-1], fb.x[-1])
    if not lo < hi:
        raise ValueError(f"curves do not overlap (shared range [{lo:g}, {hi:g}] is empty)")
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
