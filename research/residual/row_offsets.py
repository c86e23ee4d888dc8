"""Per-image row offsets of the residual layer (residual chunk version 2) against none, with real coded bytes.

Run from the repository root: ``PYTHONPATH=. python research/residual/row_offsets.py [train|held|kodak]``. Three
curves, RDOQ quantizer, no post-filter, qualities 4-24: offsets fixed at 0 (the coding of version 1),
offsets counted on the deadzone quantizer's values (a cheaper first pass), and the shipped fit,
counted on the RDOQ's own choices. Prints each curve and its BD-rate against the first.
"""

import sys

import numpy as np
from PIL import Image

from aecodec.bench.bdrate import bd_rate, shared_range
from aecodec.codec import residual_coding
from aecodec.codec.api import Codec
from aecodec.codec.residual_coding import given
from aecodec.codec.residual_rdo import rdo_chooser
from aecodec.models.residual import BANDS
from research.residual.rdoq import QUALITIES, SETS, base_and_bytes, curve

fitted = residual_coding.fit_row_offsets


def main() -> None:
    which = sys.argv[1] if len(sys.argv) > 1 else "held"
    codec = Codec()
    images = [np.asarray(Image.open(path).convert("RGB")) for path in SETS[which]]
    bases = {(i, q): base_and_bytes(codec, x, q) for i, x in enumerate(images) for q in QUALITIES}
    deadzone = {}

    def rdoq_remembering_deadzone(layer, level, pixels, base):
        deadzone["values"] = given(layer.analyze(pixels, base, level))
        return rdo_chooser(layer, level, pixels, base)

    fits = {
        "none": lambda *args: np.zeros(BANDS, dtype=np.int64),
        "deadzone-counted": lambda layer, level, choose, shape: fitted(layer, level, deadzone["values"], shape),
        "rdoq-counted": fitted,
    }
    reference = None
    for name, fit in fits.items():
        residual_coding.fit_row_offsets = fit
        points = curve(codec, images, bases, rdoq_remembering_deadzone)
        reference = reference or points
        (r0, p0), (r, p) = zip(*reference), zip(*points)
        low, high = shared_range(p0, p)
        text = " ".join(f"{a:.3f}/{b:.2f}" for a, b in points)
        print(f"{name:17} {text}  BD {bd_rate(r0, p0, r, p):+.2f}% over {low:.1f}-{high:.1f} dB", flush=True)
    residual_coding.fit_row_offsets = fitted


if __name__ == "__main__":
    main()
