"""Ablation: the residual layer on a flat grey image instead of the VQ-VAE-2 base, same levels (issues 18, 19).

Run from the repository root: ``PYTHONPATH=. python research/residual/no_base.py [train|held|kodak]``.
RDOQ, row offsets, no post-filter, qualities 4-31; the grey "base" costs only a header. The KLTs and
rows were fitted to residuals of a base, so the result bounds from above what the base buys.
"""

import sys

import numpy as np
from PIL import Image

from aecodec.bench.bdrate import bd_rate, shared_range
from aecodec.codec.api import Codec
from aecodec.codec.residual_rdo import rdo_chooser
from research.residual.rdoq import SETS, base_and_bytes, curve

QUALITIES = [4, 8, 12, 16, 20, 24, 28, 31]
HEADER_BYTES = 76  # what a file without tile streams would still carry


def main() -> None:
    which = sys.argv[1] if len(sys.argv) > 1 else "kodak"
    codec = Codec()
    images = [np.asarray(Image.open(path).convert("RGB")) for path in SETS[which]]
    bases = {(i, q): base_and_bytes(codec, x, q) for i, x in enumerate(images) for q in QUALITIES}
    grey = {(i, q): (np.full_like(x, 128), HEADER_BYTES) for i, x in enumerate(images) for q in QUALITIES}
    with_base = curve(codec, images, bases, rdo_chooser, QUALITIES)
    without = curve(codec, images, grey, rdo_chooser, QUALITIES)
    for name, points in (("VQ-VAE-2 base", with_base), ("grey", without)):
        print(f"{name:14}", " ".join(f"{a:.3f}/{b:.2f}" for a, b in points))
    (r0, p0), (r, p) = zip(*with_base), zip(*without)
    low, high = shared_range(p0, p)
    print(f"without the base: BD {bd_rate(r0, p0, r, p):+.2f}% over {low:.1f}-{high:.1f} dB")


if __name__ == "__main__":
    main()
