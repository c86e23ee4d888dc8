"""Probe: per 16x16 area, one 16x16x3 KLT against its four 8x8x3 KLT blocks, with the control that a choice must beat.

    PYTHONPATH=. python research/residual/transform_16.py IMAGE:QUALITY ...

As transform_size.py (session 19) does for 4x4 blocks: the level's residual before quantization on effort-2
decodes, the model's 8x8 KLT against a 768-coefficient KLT fitted on the same six training photos at that level,
deadzone quantizer, first-order entropy per coefficient index (the 16x16's in fours, by energy rank) refitted on the
areas that chose each, a flag per area, J = D + 0.1 step^2 per bit, J differences in % of the all-8x8 bits. The
control splits the areas into two classes of 8x8 blocks with histograms of their own: what a choice saves beyond
it is the larger transform's.
"""

import sys
from functools import partial

import numpy as np

from aecodec.codec.api import Codec
from research.residual.transform_size import LAM, bits_of, klt, quant, residual_of

PHOTOS = (1, 9, 17, 25, 33, 41)


def areas(residual: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(areas, 768) pixels of each 16x16x3 area and (areas * 4, 192) its four 8x8 blocks' (the model's block layout)."""
    h, w = residual.shape[0] // 2 * 2, residual.shape[1] // 2 * 2
    blocks = residual[:h, :w].reshape(h // 2, 2, w // 2, 2, 192).transpose(0, 2, 1, 3, 4)
    return blocks.reshape(-1, 4 * 192), blocks.reshape(-1, 192)


def area_bits(levels: np.ndarray, blocks: int, weights: np.ndarray) -> np.ndarray:
    """Bits of each area's ``blocks`` rows of ``levels`` under histograms weighted by the areas' ``weights``."""
    return bits_of(levels, np.repeat(weights, blocks)).reshape(len(weights), -1).sum(1)


def choose(cost_a: np.ndarray, bits_a, cost_b: np.ndarray, bits_b, unit: float, start: np.ndarray) -> tuple:
    """Alternate the choice of b over a per area and the histograms refitted on the choice; (choice, J per area)."""
    chosen = start
    for _ in range(4):
        p = min(max(chosen.mean(), 1e-3), 1 - 1e-3)
        ja = cost_a + unit * (bits_a((~chosen).astype(float) + 1e-3) - np.log2(1 - p))
        jb = cost_b + unit * (bits_b(chosen.astype(float) + 1e-3) - np.log2(p))
        chosen = jb < ja
    return chosen, np.minimum(ja, jb)


def main() -> None:
    codec, trained = Codec(), {}
    for spec in sys.argv[1:]:
        path, quality = spec.rsplit(":", 1)
        quality = int(quality)
        x, residual = residual_of(codec, path, quality)
        level = codec.model.quality_plan(quality)[1]
        step, unit = level.step, LAM * level.step**2
        if quality not in trained:
            trained[quality] = klt(
                np.concatenate(
                    [areas(residual_of(codec, f"../shared/data/photos/{i:03d}.png", quality)[1])[0] for i in PHOTOS]
                )
            )
        mean16, basis16 = trained[quality]
        mean8 = codec.model.residual.means[level.basis].astype(np.float64)
        basis8 = codec.model.residual.bases[level.basis].astype(np.float64)
        big, small = areas(residual)
        n = len(big)
        q16, d16 = quant((big - mean16) @ basis16.T, step)
        q8, d8 = quant((small - mean8) @ basis8.T, step)
        d8 = d8.reshape(n, -1).sum(1)
        d16 = d16.sum(1)

        # the 16x16 coefficients 4j..4j+3 share histogram j: as many histograms as the 8x8's, as much data each
        shared = q16.reshape(n, 192, 4).transpose(0, 2, 1).reshape(4 * n, 192)
        bits8, bits16 = partial(area_bits, q8, 4), partial(area_bits, shared, 4)
        all8 = bits8(np.ones(n))
        j_all8 = d8.sum() + unit * all8.sum()
        j_all16 = d16.sum() + unit * bits16(np.ones(n)).sum()
        # the alternation finds a local optimum: start it from the first-order comparison and from every area
        starts = (d16 + unit * bits16(np.ones(n)) < d8 + unit * all8, np.ones(n, dtype=bool))
        big_chosen, j_choice = min((choose(d8, bits8, d16, bits16, unit, s) for s in starts), key=lambda c: c[1].sum())
        split, j_control = min(
            (choose(d8, bits8, d8, bits8, unit, s) for s in (big_chosen, ~big_chosen, starts[0])),
            key=lambda c: c[1].sum(),
        )
        scale = unit * all8.sum() / 100
        print(
            f"{path.split('/')[-1]} q{quality} step {step}: all-8x8 {all8.sum() / x.shape[0] / x.shape[1]:.3f} bpp "
            f"(first order); all-16x16 {(j_all16 - j_all8) / scale:+.1f}%, per-area choice "
            f"{(j_choice.sum() - j_all8) / scale:+.1f}% ({big_chosen.mean():.0%} areas 16x16); control split "
            f"{(j_control.sum() - j_all8) / scale:+.1f}% ({split.mean():.0%})",
            flush=True,
        )


if __name__ == "__main__":
    main()
