"""The residual recoded toward the post-filter's targets (``aecodec/codec/filter_target.py``), measured as users see it.

Run from the repository root: ``PYTHONPATH=. python research/residual/filter_passes.py PHOTOS QUALITIES PASSES``,
e.g. ``003,013 5,11,17 0,3``: 768x512 crops of those training photos, default model, effort 2 with
each number of recoding passes (effort 2 itself has none), real files, filtered decodes; the mean
bpp/PSNR per quality, seconds per encode, and the BD-rate of every count after the first against the first.
"""

import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from aecodec.bench.bdrate import bd_rate
from aecodec.codec import effort
from aecodec.codec.api import Codec


def main() -> None:
    names, qualities = sys.argv[1].split(","), [int(v) for v in sys.argv[2].split(",")]
    counts = [int(v) for v in sys.argv[3].split(",")]
    photos = Path("../shared/data/photos")
    images = [np.asarray(Image.open(photos / f"{n}.png").convert("RGB"))[:512, :768] for n in names]
    codec, plans, curves = Codec(), effort.EFFORTS, {}
    for count in counts:
        effort.EFFORTS = (plans[0], replace(plans[1], filter_passes=count), *plans[2:])
        points, start = [], time.monotonic()
        for quality in qualities:
            rates, psnrs = [], []
            for x in images:
                data = codec.compress(x, quality, effort=2)
                decoded = np.asarray(codec.decompress(data)).astype(float)
                rates.append(8 * len(data) / x.shape[0] / x.shape[1])
                psnrs.append(10 * np.log10(255**2 / np.square(decoded - x).mean()))
            points.append((np.mean(rates), np.mean(psnrs)))
        curves[count] = curve = np.array(points)
        seconds = (time.monotonic() - start) / len(qualities) / len(images)
        print(
            count, " ".join(f"{b:.4f}/{p:.3f}" for b, p in curve), f"{seconds:.1f} s per encode and decode", flush=True
        )
    ref = curves[counts[0]]
    for count in counts[1:]:
        c = curves[count]
        print(f"{count} passes vs {counts[0]}: {bd_rate(ref[:, 0], ref[:, 1], c[:, 0], c[:, 1]):+.2f}%")


if __name__ == "__main__":
    main()
