"""Exact integer frequency tables for the enhancement latents: a fixed Laplace table bank.

The context model (:mod:`enh.model`) outputs, in fixed-point integers, a mean ``mu`` and a log-scale.
Both are mapped to a table index by integer arithmetic only:

* scale index ``s = clip((ls_fp - LS_LO_FP) // LS_STEP_FP, 0, N_SCALES - 1)`` (64 log-uniform bins);
* mean in quarter units ``m4 = (mu_fp + 2**(F-3)) >> (F-2)``, then ``shift = m4 >> 2`` (clipped) and
  ``frac = m4 & 3``;
* the symbol coded is ``y - shift`` in ``[-SUPPORT, SUPPORT]`` with row ``BANK[s, frac]``.

``BANK`` is computed once (float64 here; the product would ship it as a constant uint16 array
with its hash checked in a test, 50 KB), so decoders never evaluate a transcendental function.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

FRAC_BITS = 8  # fixed-point precision of the integer context model
N_SCALES = 64
LS_LO, LS_HI = -3.0, 4.0  # log-scale range (b from 0.05 to 54.6)
LS_LO_FP = int(LS_LO * (1 << FRAC_BITS))
LS_STEP_FP = int((LS_HI - LS_LO) * (1 << FRAC_BITS)) // N_SCALES  # 28: exact in fixed point
N_FRAC = 4
LATENT_MAX = 24  # latents are clamped to [-LATENT_MAX, LATENT_MAX]
SUPPORT = 2 * LATENT_MAX  # symbol y - shift lies in [-SUPPORT, SUPPORT]
TABLE_BITS = 16
ALPHABET = 2 * SUPPORT + 1


def scale_of_index(s: np.ndarray | int) -> np.ndarray:
    """Laplace scale b at the centre of scale bin ``s``."""
    step = LS_STEP_FP / (1 << FRAC_BITS)
    return np.exp(LS_LO + (np.asarray(s) + 0.5) * step)


def _laplace_pmf(mu: float, b: float) -> np.ndarray:
    """Discretized Laplace(mu, b) over integers -SUPPORT..SUPPORT, tails folded into the end bins."""
    edges = np.arange(-SUPPORT - 0.5, SUPPORT + 1.5) - mu
    cdf = np.where(edges < 0, 0.5 * np.exp(np.minimum(edges, 0) / b), 1 - 0.5 * np.exp(-np.maximum(edges, 0) / b))
    cdf[0], cdf[-1] = 0.0, 1.0
    return np.diff(cdf)


def _integer_row(pmf: np.ndarray) -> np.ndarray:
    """Frequencies >= 1 summing exactly to 2**TABLE_BITS (rounding remainder on the mode)."""
    total = 1 << TABLE_BITS
    freq = 1 + np.floor(pmf * (total - pmf.size)).astype(np.int64)
    freq[np.argmax(pmf)] += total - freq.sum()
    return freq


def build_bank() -> np.ndarray:
    """The (N_SCALES, N_FRAC, ALPHABET) int64 table bank."""
    bank = np.empty((N_SCALES, N_FRAC, ALPHABET), dtype=np.int64)
    for s in range(N_SCALES):
        for f in range(N_FRAC):
            bank[s, f] = _integer_row(_laplace_pmf(f / N_FRAC, float(scale_of_index(s))))
    return bank


BANK = build_bank()
BANK_SHA256 = hashlib.sha256(BANK.astype("<u2").tobytes()).hexdigest()


def table_indices(mu_fp: np.ndarray, ls_fp: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scale index, mean fraction, integer shift) from fixed-point context-model outputs."""
    s = np.clip((ls_fp - LS_LO_FP) // LS_STEP_FP, 0, N_SCALES - 1)
    m4 = (mu_fp + (1 << (FRAC_BITS - 3))) >> (FRAC_BITS - 2)
    shift = np.clip(m4 >> 2, -LATENT_MAX, LATENT_MAX)
    return s, m4 & 3, shift


def rows_and_symbols(y: np.ndarray, mu_fp: np.ndarray, ls_fp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frequency rows (n, ALPHABET) and symbols (n,) for integer latents ``y`` under the bank."""
    s, frac, shift = table_indices(mu_fp, ls_fp)
    return BANK[s, frac], (y - shift + SUPPORT)


def shifts_and_rows(mu_fp: np.ndarray, ls_fp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Decoder side: rows to decode with and the shift to add back."""
    s, frac, shift = table_indices(mu_fp, ls_fp)
    return BANK[s, frac], shift


def exact_bits(y: np.ndarray, mu_fp: np.ndarray, ls_fp: np.ndarray) -> float:
    """-sum log2 of the integer table probabilities of ``y``."""
    rows, sym = rows_and_symbols(y, mu_fp, ls_fp)
    return float(np.sum(TABLE_BITS - np.log2(rows[np.arange(sym.size), sym])))


if __name__ == "__main__":
    print("bank", BANK.shape, BANK_SHA256[:16], "sum ok", bool((BANK.sum(-1) == 1 << TABLE_BITS).all()))
    print("min freq", BANK.min(), "scales", scale_of_index(0), scale_of_index(N_SCALES - 1), math.log2(1))
