"""Per-band deadzones (encoder-only) on the held-out photos, with the shipped residual layer, real coded bytes.

Run from the repository root: ``python research/residual/deadzone.py`` (~8 min on 2 cores). Each image's
base is decoded once per quality; only the residual analysis changes between settings.
"""

import numpy as np
from PIL import Image
from rdoq import base_and_bytes, curve, deadzone  # this folder's RDOQ script: run from the repository root

import aecodec.models.residual as residual
from aecodec.bench.bdrate import bd_rate, shared_range
from aecodec.codec.api import Codec

QUALITIES = [6, 10, 14, 18, 22]
PHOTOS = "../shared/data/photos"
SETTINGS = {  # deadzone per band 0..14
    "uniform 0.10": np.full(residual.BANDS, 0.10),
    "uniform 0.15": np.full(residual.BANDS, 0.15),
    "ramp 0.05-0.20": np.linspace(0.05, 0.20, residual.BANDS),
    "ramp 0.10-0.30": np.linspace(0.10, 0.30, residual.BANDS),
    "0.10 / 0.20 from band 8": np.where(np.arange(residual.BANDS) >= 8, 0.2, 0.1),
}


def main() -> None:
    codec = Codec()
    images = [np.asarray(Image.open(f"{PHOTOS}/{n}.png").convert("RGB")) for n in ("010", "020", "030", "040")]
    bases = {(i, q): base_and_bytes(codec, x, q) for i, x in enumerate(images) for q in QUALITIES}
    reference = None
    for name, per_band in SETTINGS.items():
        residual.DEADZONE = per_band[residual.BAND]
        points = curve(codec, images, bases, deadzone, QUALITIES)
        reference = reference or points
        (r0, p0), (r, p) = zip(*reference), zip(*points)
        low, high = shared_range(p0, p)
        gain = bd_rate(r0, p0, r, p)
        print(name, " ".join(f"{a:.3f}/{b:.2f}" for a, b in points), f"BD {gain:+.2f}% over {low:.1f}-{high:.1f} dB")


if __name__ == "__main__":
    main()
