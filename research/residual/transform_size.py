"""Probe: per-block choice between one 8x8x3 KLT and four 4x4x3 KLTs on the residual a level codes.
First-order entropy per coefficient index (histograms refitted on the chosen blocks), deadzone quantizer,
J = D + lambda R with lambda = LAM step^2 per bit. Prints what the choice saves, in % of the all-8x8 bits."""

import os
import sys

import numpy as np

from aecodec.bitstream.format import unpack
from aecodec.codec.api import Codec
from aecodec.models.residual import residual_blocks
from research.crops import load

LAM = 0.1


OWN = os.environ.get("OWN") == "1"


def klt(x):
    m = x.mean(0)
    _, v = np.linalg.eigh(np.cov((x - m).T))
    return m, v[:, ::-1].T


def quant(c, s):
    mag = np.floor(np.abs(c) / s + 0.4).clip(0, 1000)
    return np.sign(c) * mag, (np.sign(c) * np.maximum(mag - 0.05, 0) * s - c) ** 2


def bits_of(q, weights):
    """-log2 p of each value under per-index histograms weighted by ``weights`` (n,) over rows."""
    qi = np.clip(q, -40, 40).astype(int) + 40
    out = np.empty(q.shape)
    for k in range(q.shape[1]):
        h = np.bincount(qi[:, k], weights=weights, minlength=81) + 0.2
        out[:, k] = -np.log2(h / h.sum())[qi[:, k]] + (np.abs(q[:, k]) > 40) * 8
    return out


def residual_of(c, path, q):
    img = load(path)
    x = np.asarray(img)
    f = unpack(bytes(c.compress(img, q, effort=2)))
    base, _ = c._decoded(f)
    return x, residual_blocks(x, base).astype(np.float64)


def to4(r):
    h, w = r.shape[:2]
    return r.reshape(h, w, 2, 4, 2, 4, 3).transpose(0, 1, 2, 4, 3, 5, 6).reshape(h * w * 4, 48)


TRAINED = {}


def trained(c, q):
    if q not in TRAINED:
        rs = [residual_of(c, f"../shared/data/photos/{i:03d}.png", q)[1] for i in (1, 9, 17, 25, 33, 41)]
        level = c.model.quality_plan(q)[1]
        TRAINED[q] = (
            (
                c.model.residual.means[level.basis].astype(np.float64),
                c.model.residual.bases[level.basis].astype(np.float64),
            ),
            klt(np.concatenate([to4(r) for r in rs])),
        )
    return TRAINED[q]


if __name__ == "__main__":
    c = Codec()
    for spec in sys.argv[1:]:
        path, q = spec.split(":")
        q = int(q)
        img = load(path)
        x = np.asarray(img)
        f = unpack(bytes(c.compress(img, q, effort=2)))
        level = c.model.quality_plan(q)[1]
        s = level.step
        base, _ = c._decoded(f)
        r = residual_blocks(x, base).astype(np.float64)
        h, w, _ = r.shape
        n = h * w
        r8 = r.reshape(n, 192)
        r4 = r.reshape(h, w, 2, 4, 2, 4, 3).transpose(0, 1, 2, 4, 3, 5, 6).reshape(n * 4, 48)
        if OWN:
            m8, b8 = klt(r8)
            m4, b4 = klt(r4)
        else:
            (m8, b8), (m4, b4) = trained(c, q)
        q8, d8 = quant((r8 - m8) @ b8.T, s)
        q4, d4 = quant((r4 - m4) @ b4.T, s)
        choose4 = np.zeros(n, bool)
        for it in range(4):
            w8 = np.ones(n) if it == 0 else (~choose4).astype(float) + 1e-3
            w4 = np.ones(4 * n) if it == 0 else np.repeat(choose4, 4).astype(float) + 1e-3
            R8 = bits_of(q8, w8).sum(1)
            R4 = bits_of(q4, w4).reshape(n, 4, 48).sum((1, 2))
            J8 = d8.sum(1) + LAM * s * s * R8
            J4 = d4.reshape(n, -1).sum(1) + LAM * s * s * R4
            p = 0.3 if it == 0 else min(max(choose4.mean(), 1e-3), 1 - 1e-3)
            flag8, flag4 = -np.log2(1 - p), -np.log2(p)
            choose4 = J4 + LAM * s * s * flag4 < J8 + LAM * s * s * flag8
        # control: two 8x8 classes with their own histograms, starting from the 4x4 choice (a pure context split)
        cls = choose4.copy()
        for _ in range(4):
            RA = bits_of(q8, (~cls).astype(float) + 1e-3).sum(1)
            RB = bits_of(q8, cls.astype(float) + 1e-3).sum(1)
            p = min(max(cls.mean(), 1e-3), 1 - 1e-3)
            JA = d8.sum(1) + LAM * s * s * (RA - np.log2(1 - p))
            JB = d8.sum(1) + LAM * s * s * (RB - np.log2(p))
            cls = JB < JA
        Jctl = np.minimum(JA, JB).sum()
        all8 = bits_of(q8, np.ones(n)).sum(1)
        Jall8 = d8.sum() + LAM * s * s * all8.sum()
        all4 = bits_of(q4, np.ones(4 * n)).sum()
        Jall4 = d4.sum() + LAM * s * s * all4
        Jad = np.where(choose4, J4 + LAM * s * s * flag4, J8 + LAM * s * s * flag8).sum()
        tot = all8.sum()
        unit = LAM * s * s * tot  # J differences in % of the all-8x8 bits
        print(
            f"{path.split('/')[-1]} q{q} step {s}: all-8x8 {tot / (x.shape[0] * x.shape[1]):.3f} bpp (first order), "
            f"D/px {d8.sum() / x.size:.2f}; all-4x4 {(Jall4 - Jall8) / unit:+.1%}, "
            f"adaptive {(Jad - Jall8) / unit:+.1%} "
            f"({choose4.mean():.0%} blocks 4x4); control split {(Jctl - Jall8) / unit:+.1%} ({cls.mean():.0%})",
            flush=True,
        )
