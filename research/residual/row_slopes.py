"""The residual chunk's row slopes (version 3) against the row offsets alone, in one process, on real files.

Run from the repository root: ``PYTHONPATH=. python research/residual/row_slopes.py IMAGES EFFORT [QUALITIES]``,
e.g. ``../shared/data/kodak/kodim19.png,../shared/data/kodak/kodim23.png 2``: each image coded at the qualities
(default 2-26 every third) by the product's encoder as it is and with the fitted slopes set to zero (a version 2
chunk); the BD-rate (PSNR of the filtered decodes) of the slopes against no slopes, per image.
"""

import sys

import numpy as np
from PIL import Image

from aecodec.bench.bdrate import bd_rate
from aecodec.codec import residual_coding
from aecodec.codec.api import Codec

FIT = residual_coding.fit_row_shifts


def offsets_only(*args) -> tuple[np.ndarray, np.ndarray]:
    """The product's fit with its slopes dropped."""
    offsets, slopes = FIT(*args)
    return offsets, np.zeros_like(slopes)


def curve(codec: Codec, x: np.ndarray, qualities: list[int], effort: int) -> np.ndarray:
    """(qualities, 2): bpp and PSNR of the real files' decodes."""
    points = []
    for quality in qualities:
        data = codec.compress(x, quality, effort=effort)
        decoded = np.asarray(codec.decompress(data)).astype(float)
        points.append((8 * len(data) / x.shape[0] / x.shape[1], 10 * np.log10(255**2 / np.square(decoded - x).mean())))
    return np.array(points)


def main() -> None:
    files, effort = sys.argv[1].split(","), int(sys.argv[2])
    qualities = [int(q) for q in sys.argv[3].split(",")] if len(sys.argv) > 3 else list(range(2, 27, 3))
    codec = Codec()
    for path in files:
        x = np.asarray(Image.open(path).convert("RGB"))
        residual_coding.fit_row_shifts = offsets_only
        without = curve(codec, x, qualities, effort)
        residual_coding.fit_row_shifts = FIT
        with_slopes = curve(codec, x, qualities, effort)
        rate = bd_rate(without[:, 0], without[:, 1], with_slopes[:, 0], with_slopes[:, 1])
        print(
            f"{path.split('/')[-1]}: {rate:+.2f}% over {without[:, 1].min():.1f}-{without[:, 1].max():.1f} dB",
            flush=True,
        )


if __name__ == "__main__":
    main()
