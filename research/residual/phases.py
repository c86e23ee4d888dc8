"""Would more decoding passes than the checkerboard's two save residual bits? (Adopted: depth 2.)

With the checkerboard the anchors (half of the blocks) are coded with the lower bands of their own
block as their only context, and they take about half of the residual's bits. The hierarchical orders
of :func:`aecodec.models.residual.decoding_passes` code a grid of blocks 2**depth apart first and then,
at each finer scale, the centres of its squares (diagonal neighbours decoded) and the rest (edge
neighbours decoded), so that ever fewer blocks are coded without neighbours. The last pass is the
checkerboard's second at every depth, so the product's quantized values (its prediction included)
are valid for every order; only contexts differ.

Rows fitted on half of the training crops, bits counted on the other half and on the held-out
photos, deadzone quantizer, the shipped model's levels. Usage (repository root, ~5 min):
``PYTHONPATH=. python research/residual/phases.py [QUALITIES]``.
"""

import sys

import numpy as np
from PIL import Image

from aecodec.codec.api import Codec
from aecodec.codec.images import list_images
from aecodec.models.residual import ResidualLevel, context_count
from aecodec.training.data import split_files
from aecodec.training.residual import (
    VALIDATION_FRACTION,
    best_rows,
    center_crop,
    context_histograms,
    half_resolution_bases,
)

HELD_OUT = ("010", "020", "030", "040")
DEPTHS = (0, 1, 2, 3, 4)


def at_depth(level: ResidualLevel, depth: int) -> ResidualLevel:
    return ResidualLevel(level.base_quality, level.basis, level.step16, np.zeros(context_count(depth), int), 1)


def main() -> None:
    qualities = [int(q) for q in (sys.argv[1] if len(sys.argv) > 1 else "6,10,14,20").split(",")]
    codec = Codec()
    layer = codec.model.residual
    files = split_files(list_images("../shared/data/photos"), VALIDATION_FRACTION)[0]
    held = [f for f in list_images("../shared/data/photos") if f.stem in HELD_OUT]
    train = [f for f in files if f not in held][::2]
    half = len(train) // 2
    sets = {"fit": train[:half], "test": train[half:], "held": held}
    logp = np.log2(layer.bank / layer.bank.sum(1, keepdims=True))
    for quality in qualities:
        level = codec.model.quality_plan(quality)[1]
        pairs = {
            name: half_resolution_bases(
                codec, [center_crop(Image.open(f), 768, 512) for f in group], level.half_base_quality
            )
            for name, group in sets.items()
        }
        line = []
        for depth in DEPTHS:
            draft = at_depth(level, depth)
            rows = best_rows(context_histograms(layer, draft, pairs["fit"]), layer.bank)
            bpp = {
                name: -(context_histograms(layer, draft, pairs[name]) * logp[rows]).sum()
                / sum(x.shape[0] * x.shape[1] for x, _ in pairs[name])
                for name in ("test", "held")
            }
            line.append((depth, bpp["test"], bpp["held"]))
        _, test0, held0 = line[0]
        print(
            f"quality {quality} (step16 {level.step16}), bpp of training / held-out crops, vs the checkerboard: "
            + "; ".join(
                f"depth {d} {t:.4f} ({100 * (t / test0 - 1):+.2f}%) / {h:.4f} ({100 * (h / held0 - 1):+.2f}%)"
                for d, t, h in line
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
