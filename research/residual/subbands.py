"""Honest probe: would a position-within-band class (NB sub-bands) in the residual's contexts save bits?
Tables fitted on 10 training photos (effort-2 files), cross-entropy on test images, blended with the parent."""

import sys

import numpy as np

from aecodec.bitstream.format import RESIDUAL, unpack
from aecodec.codec.api import Codec
from aecodec.codec.residual_coding import decode_residual
from aecodec.models.residual import (
    BAND,
    BANDS,
    COEFFICIENTS,
    ESCAPE,
    band_sums,
    blocks_shape,
    context_count,
    contexts,
    decoding_passes,
    parity_mask,
)
from research.crops import load


def symbols(c, path, q):
    img = load(path)
    data = bytes(c.compress(img, q, effort=2))
    f = unpack(data)
    level = c.model.quality_plan(q)[1]
    shape = blocks_shape(*img.size)
    vals = decode_residual(c.model.residual, level, f.chunk(RESIDUAL), shape)
    sums = band_sums(np.abs(vals).astype(np.int64))
    out = []
    for parity in (0, 1):
        sel = parity_mask(*shape) == parity
        known = np.zeros_like(sums)
        if parity == 1:
            known[~sel] = sums[~sel]
        for band in range(BANDS):
            passes = decoding_passes(0, *shape)  # the checkerboard's two passes are the two parities
            ctx = contexts(known, passes, parity, band)
            v = vals.reshape(-1, COEFFICIENTS)[passes[parity].blocks[:, None], np.flatnonzero(band == BAND)]
            k = v.shape[1]
            pos = np.tile(np.arange(k), len(ctx)) / k  # relative position in the band, [0, 1)
            out.append((parity, np.repeat(ctx, k), pos, np.clip(v, -ESCAPE, ESCAPE).ravel() + ESCAPE))
            known[sel, band] = sums[sel, band]
    return out, len(data)


if __name__ == "__main__":
    c = Codec()
    q = int(sys.argv[1])
    NBS = [int(n) for n in sys.argv[2].split(",")]
    train = [f"../shared/data/photos/{i:03d}.png" for i in (1, 5, 9, 13, 17, 21, 25, 29, 33, 37)]
    test = sys.argv[3].split(",")
    tr = [symbols(c, p, q)[0] for p in train]
    A = 2 * ESCAPE + 1

    def table(NB):
        n = np.zeros((2, context_count(0) * NB, A))
        for t in tr:
            for parity, ctx, pos, s in t:
                np.add.at(n[parity], (ctx * NB + (pos * NB).astype(int), s), 1)
        return n

    tables = {1: table(1)}
    for NB in NBS:
        tables[NB] = table(NB)

    def cost(NB, t, prior):
        bits = 0.0
        n = tables[NB]
        n0 = tables[1]
        for parity, ctx, pos, s in t:
            key = ctx * NB + (pos * NB).astype(int)
            parent = n0[parity, ctx]
            row = n[parity, key] + prior * (parent + 1) / (parent.sum(-1, keepdims=True) + A)
            p = row / row.sum(-1, keepdims=True)
            bits += -np.log2(p[np.arange(len(s)), s]).sum()
        return bits

    for path in test:
        t, size = symbols(c, path, q)
        b0 = cost(1, t, 1.0)
        print(
            f"{path.split('/')[-1]} q{q} {size} B:",
            " ".join(f"NB{NB} {(cost(NB, t, 4.0) - b0) / size / 8:+.2%}" for NB in NBS),
            flush=True,
        )
