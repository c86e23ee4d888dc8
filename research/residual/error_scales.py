"""Where the codec's error differs from AVIF's at the same file size: by spatial scale, by colour channel, by block.

Run from the repository root: ``PYTHONPATH=. python research/residual/error_scales.py IMAGE:Q/Q,... EFFORT``,
e.g. ``../shared/data/kodak/kodim04.png:7/15 2``. Each point is coded at the quality and effort, and AVIF (Pillow,
default speed) at the quality whose file is nearest in size. For each, the error (decode minus original, in
8-bit levels) is split into YCbCr (BT.601) and, per channel, into three scales by Gaussian blurs: low (the error
blurred with sigma 4 px), mid (blurred with sigma 1 less blurred with 4) and high (the rest), each printed as its
mean square; and the mean square of the error's means over aligned 8x8 and 16x16 blocks (what an 8x8 block's
DC, or a 16x16 one's, leaves).
"""

import io
import sys

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from aecodec.codec.api import Codec

YCBCR = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])


def avif_near(image: Image.Image, size: int) -> tuple[int, bytes]:
    """AVIF's quality and file of the size nearest ``size`` bytes."""
    best: tuple[int, int, bytes] | None = None
    for quality in range(1, 100):
        buffer = io.BytesIO()
        image.save(buffer, format="AVIF", quality=quality)
        data = buffer.getvalue()
        if best is None or abs(len(data) - size) < abs(best[0] - size):
            best = (len(data), quality, data)
        if len(data) > 1.3 * size:
            break
    return best[1], best[2]


def block_means(plane: np.ndarray, side: int) -> np.ndarray:
    """Means of the aligned ``side`` x ``side`` blocks of an (H, W) plane (partial blocks left out)."""
    h, w = plane.shape[0] // side, plane.shape[1] // side
    return plane[: h * side, : w * side].reshape(h, side, w, side).mean((1, 3))


def describe(original: np.ndarray, decoded: np.ndarray) -> str:
    """One line: PSNR, then per YCbCr channel the low/mid/high mean squares and the 8x8/16x16 block-mean ones."""
    error = decoded.astype(np.float64) - original
    psnr = 10 * np.log10(255**2 / (error**2).mean())
    parts = []
    for channel, name in zip(np.moveaxis(error @ YCBCR.T, -1, 0), ("Y", "Cb", "Cr")):
        low = gaussian_filter(channel, 4)
        mid = gaussian_filter(channel, 1) - low
        high = channel - low - mid
        scales = "/".join(f"{(part**2).mean():.2f}" for part in (low, mid, high))
        blocks = "/".join(f"{(block_means(channel, side) ** 2).mean():.2f}" for side in (8, 16))
        parts.append(f"{name} {scales} blocks {blocks}")
    return f"{psnr:.2f} dB | " + " | ".join(parts)


def main() -> None:
    codec, effort = Codec(), int(sys.argv[2])
    for spec in sys.argv[1].split(","):
        path, qualities = spec.rsplit(":", 1)
        image = Image.open(path).convert("RGB")
        original, pixels = np.asarray(image), image.width * image.height
        for quality in [int(q) for q in qualities.split("/")]:
            data = bytes(codec.compress(image, quality=quality, effort=effort))
            decoded = np.asarray(codec.decompress(data).convert("RGB"))
            avif_quality, avif = avif_near(image, len(data))
            avif_decoded = np.asarray(Image.open(io.BytesIO(avif)).convert("RGB"))
            print(f"{path} q{quality}, AVIF q{avif_quality}")
            print(f"  aec  {8 * len(data) / pixels:.3f} bpp {describe(original, decoded)}")
            print(f"  avif {8 * len(avif) / pixels:.3f} bpp {describe(original, avif_decoded)}", flush=True)


if __name__ == "__main__":
    main()
