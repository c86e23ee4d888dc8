"""Where the decode's error exceeds AVIF's at the same size: by the original's activity, in quartiles of 32x32
blocks, and whether a guided filter of the decode's chroma by its luma (He et al.) takes any of it.

    PYTHONPATH=. python research/residual/by_activity.py IMAGE:QUALITY ... [--effort N]

AVIF (Pillow, default speed) at the largest quality whose file is no larger than ours. Activity: the mean of
|dx| + |dy| of the original's grey level over the block. The guided filter: the best of radii 2, 4, 8 and
eps 4-256 (8-bit units squared), chosen with hindsight, its two parameters' bytes not counted.
"""

import argparse
import io

import numpy as np
from PIL import Image
from scipy.ndimage import uniform_filter

from aecodec.bench import metrics
from aecodec.codec.api import Codec

YCC = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
BLOCK = 32


def psnr(decoded: np.ndarray, original: np.ndarray) -> float:
    """PSNR of a float decode rounded to 8 bits, as a decoder would show it."""
    return metrics.psnr(np.clip(np.round(decoded), 0, 255).astype(np.uint8), original.astype(np.uint8))


def avif_at_most(path: str, size: int) -> tuple[int, int, np.ndarray]:
    """(quality, bytes, pixels) of the largest-quality AVIF of ``path`` within ``size`` bytes (quality 1 if none is)."""
    best = None
    with Image.open(path) as image:
        for quality in range(1, 100):
            out = io.BytesIO()
            image.save(out, "AVIF", quality=quality)
            if len(out.getvalue()) > size and best is not None:
                break
            pixels = np.asarray(Image.open(io.BytesIO(out.getvalue())).convert("RGB")).astype(np.float64)
            best = (quality, len(out.getvalue()), pixels)
    return best


def block_means(x: np.ndarray) -> np.ndarray:
    height, width = (s // BLOCK * BLOCK for s in x.shape[:2])
    return x[:height, :width].reshape(height // BLOCK, BLOCK, width // BLOCK, BLOCK, -1).mean(axis=(1, 3, 4)).ravel()


def guided(guide: np.ndarray, x: np.ndarray, radius: int, eps: float) -> np.ndarray:
    mean = lambda v: uniform_filter(v, 2 * radius + 1, mode="reflect")  # noqa: E731
    mg, mx = mean(guide), mean(x)
    a = (mean(guide * x) - mg * mx) / (mean(guide * guide) - mg * mg + eps)
    return mean(a) * guide + mean(mx - a * mg)


def chroma_guided_gain(decoded: np.ndarray, original: np.ndarray) -> tuple[float, int, float]:
    ycc, before, best = decoded @ YCC.T, psnr(decoded, original), (-np.inf, 0, 0.0)
    for radius in (2, 4, 8):
        for eps in (4.0, 16.0, 64.0, 256.0):
            filtered = ycc.copy()
            for channel in (1, 2):
                filtered[..., channel] = guided(ycc[..., 0], ycc[..., channel], radius, eps)
            best = max(best, (psnr(filtered @ np.linalg.inv(YCC).T, original) - before, radius, eps))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("points", nargs="+")
    parser.add_argument("--effort", type=int, default=2)
    args = parser.parse_args()
    codec = Codec()
    for point in args.points:
        path, quality = point.rsplit(":", 1)
        original = np.asarray(Image.open(path).convert("RGB")).astype(np.float64)
        data = codec.compress(path, int(quality), effort=args.effort)
        ours = np.asarray(codec.decompress(data).convert("RGB")).astype(np.float64)
        avif_quality, avif_bytes, avif = avif_at_most(path, len(data))
        print(
            f"{point}: {len(data)} B {psnr(ours, original):.2f} dB; AVIF q{avif_quality} {avif_bytes} B "
            f"{psnr(avif, original):.2f} dB"
        )
        grey = original.mean(2)
        activity = np.abs(np.diff(grey, axis=0))[:, :-1] + np.abs(np.diff(grey, axis=1))[:-1]
        activity = block_means(np.pad(activity, ((0, 1), (0, 1)))[..., None])
        ours_error, avif_error = block_means((ours - original) ** 2), block_means((avif - original) ** 2)
        for part in np.array_split(np.argsort(activity), 4):
            print(
                f"  activity {activity[part].mean():6.2f}: {ours_error[part].sum() / ours_error.sum():6.1%} of our "
                f"error, MSE {ours_error[part].mean():7.2f} against {avif_error[part].mean():7.2f} "
                f"({ours_error[part].mean() / avif_error[part].mean():.2f}x)"
            )
        gain, radius, eps = chroma_guided_gain(ours, original)
        print(f"  chroma guided by luma: {gain:+.3f} dB (radius {radius}, eps {eps:g})", flush=True)


if __name__ == "__main__":
    main()
