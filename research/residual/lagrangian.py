"""RDOQ's Lagrangian measured as users see it: real files, post-filtered decodes, default model, effort 2.

Run from the repository root: ``PYTHONPATH=. python research/residual/lagrangian.py PHOTOS SETTINGS``,
e.g. ``003,013,023,033 0.09:0,0.065:1.8``: 768x512 crops of those training photos at qualities 2-26
every third, RDOQ at each LAGRANGIAN:BAND_TILT; the BD-rate of every setting after the first against
the first, over all qualities and over the lower and upper halves of them. ``rdoq.py`` chose 0.09
without a post-filter.
"""

import sys
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from aecodec.bench.bdrate import bd_rate
from aecodec.codec import api
from aecodec.codec.api import Codec
from aecodec.codec.residual_rdo import rdo_chooser

QUALITIES = range(2, 29, 3)


def curve(codec: Codec, images: list[np.ndarray], lagrangian: float, tilt: float) -> np.ndarray:
    """(quality, 2): mean bpp and mean PSNR of the images' filtered decodes."""
    api.rdo_chooser = partial(rdo_chooser, lagrangian=lagrangian, tilt=tilt)  # the codec calls it with the defaults
    points = []
    for quality in QUALITIES:
        rates, psnrs = [], []
        for x in images:
            data = codec.compress(x, quality)
            decoded = np.asarray(codec.decompress(data)).astype(float)
            rates.append(8 * len(data) / x.shape[0] / x.shape[1])
            psnrs.append(10 * np.log10(255**2 / np.square(decoded - x).mean()))
        points.append((np.mean(rates), np.mean(psnrs)))
    return np.array(points)


def main() -> None:
    names, settings = sys.argv[1].split(","), [tuple(map(float, v.split(":"))) for v in sys.argv[2].split(",")]
    shared = Path("../shared/data/photos")
    images = [np.asarray(Image.open(shared / f"{n}.png").convert("RGB"))[:512, :768] for n in names]
    codec, curves = Codec(), {}
    for setting in settings:
        curves[setting] = c = curve(codec, images, *setting)
        print(setting, " ".join(f"{b:.3f}/{p:.2f}" for b, p in c), flush=True)
    ref, half = curves[settings[0]], len(QUALITIES) // 2
    for setting in settings[1:]:
        c = curves[setting]
        parts = [
            bd_rate(ref[s, 0], ref[s, 1], c[s, 0], c[s, 1])
            for s in (slice(None), slice(None, half + 1), slice(half, None))
        ]
        print(f"{setting} vs {settings[0]}: {parts[0]:+.2f}% (lower half {parts[1]:+.2f}%, upper {parts[2]:+.2f}%)")


if __name__ == "__main__":
    main()
