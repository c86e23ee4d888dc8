"""Residual models compared with and without their post-filter: real files at effort 2, one folder of images.

Run from the repository root: ``PYTHONPATH=. python research/residual/prediction.py DIR MODEL,MODEL,... [filter]``.
Codes every PNG of DIR at qualities 4-24 with each model (names or .safetensors paths), its post-filter
removed unless ``filter`` is given, and prints each curve and its BD-rate against the first model's.
This is how the second-pass predictors were weighed without the post-filter's share
(``research/residual/README.md``).
"""

import dataclasses
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from aecodec.bench.bdrate import bd_rate, shared_range
from aecodec.codec.api import Codec
from aecodec.models.model_files import resolve_model

QUALITIES = [int(q) for q in __import__("os").environ.get("QUALITIES", "4,8,12,16,20,24").split(",")]


def curve(codec: Codec, images: list[np.ndarray]) -> list[tuple[float, float]]:
    """Mean (bpp from the file size, PSNR of the decode) per quality."""
    points = []
    for quality in QUALITIES:
        measured = []
        for pixels in images:
            data = codec.compress(pixels, quality)
            decoded = np.asarray(codec.decompress(data)).astype(float)
            mse = ((decoded - pixels) ** 2).mean()
            measured.append((8 * len(data) / pixels.shape[0] / pixels.shape[1], 10 * np.log10(255**2 / mse)))
        points.append(tuple(np.mean(measured, 0)))
    return points


def main() -> None:
    folder, names = Path(sys.argv[1]), sys.argv[2].split(",")
    filtered = sys.argv[3:] == ["filter"]
    images = [np.asarray(Image.open(path).convert("RGB")) for path in sorted(folder.glob("*.png"))]
    reference = None
    for name in names:
        model = resolve_model(name)
        points = curve(Codec(model if filtered else dataclasses.replace(model, postfilter=None)), images)
        reference = reference or points
        (r0, p0), (r, p) = zip(*reference), zip(*points)
        low, high = shared_range(p0, p)
        text = " ".join(f"{a:.3f}/{b:.2f}" for a, b in points)
        print(f"{name}: {text}  BD {bd_rate(r0, p0, r, p):+.2f}% over {low:.1f}-{high:.1f} dB", flush=True)


if __name__ == "__main__":
    main()
