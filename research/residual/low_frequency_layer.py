"""Oracle: what a layer coding the final decode's low-frequency error could still save (session 34, not adopted).

    PYTHONPATH=. python research/residual/low_frequency_layer.py IMAGE QUALITIES

On the effort-2 file's decode, in SxS blocks (16, 32), the orthonormal DCT coefficients with u + v <= K of each
channel's error, uniformly quantized (a level kept only where it saves more than 4 bits of lambda), their bits the
empirical entropy of each frequency's levels plus 6 bits a distinct level (an ideal adaptive coder, the side
information nearly free); and the correction field (codec/correction_field.py) at cells of 8 and 16 as well as its
32-128, its bits both as the chunk codes them and as that ideal coder would. Each line: the best step's saving in
D + lambda R, in % of the file's lambda R (lambda the encoder's), where anything saves. First, for the gap it
would close: our error over AVIF's (at the largest quality within our file's size, by_activity.py) in the smoother
half of the image's 16x16 blocks, by the u + v of their DCT coefficients.
"""

import sys

import numpy as np
from PIL import Image
from scipy.fft import dctn

from aecodec.codec import correction_field
from aecodec.codec.api import Codec, decompress
from aecodec.codec.distortion import squared_error
from research.residual.by_activity import avif_at_most

STEPS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)


def entropy_bits(levels: np.ndarray) -> float:
    """Empirical entropy of ``levels`` in bits, plus 6 bits for each distinct value (its frequency)."""
    _, counts = np.unique(levels, return_counts=True)
    return float(-(counts * np.log2(counts / counts.sum())).sum()) + 6 * len(counts)


def blocks(image: np.ndarray, size: int) -> np.ndarray:
    """(rows, columns, 3, size, size) blocks of an (H, W, 3) image, its partial blocks left out."""
    height, width = image.shape[0] // size * size, image.shape[1] // size * size
    return image[:height, :width].reshape(height // size, size, width // size, size, 3).transpose(0, 2, 4, 1, 3)


def dct_layer(error: np.ndarray, size: int, reach: int, lagrangian: float) -> tuple[float, int, float]:
    """(saving in D + lambda R, step, bytes) of the best step for the DCT coefficients with u + v <= ``reach``."""
    low = dctn(blocks(error, size), axes=(-2, -1), norm="ortho")[
        ..., np.add.outer(np.arange(size), np.arange(size)) <= reach
    ]
    best = (0.0, 0, 0.0)
    for step in STEPS:
        levels = np.round(low / step)
        saved = low**2 - (low - levels * step) ** 2
        levels[saved < 4 * lagrangian] = 0
        bits = sum(entropy_bits(levels[..., k]) for k in range(levels.shape[-1]))
        gain = float(saved[levels != 0].sum()) - lagrangian * bits
        best = max(best, (gain, step, bits / 8))
    return best


def field(decoded: np.ndarray, original: np.ndarray, exponent: int, lagrangian: float, ideal: bool) -> tuple:
    """(saving, step, bytes) of the best step of a correction field with cells of 2**exponent."""
    error, plain = original.astype(np.int16) - decoded, squared_error(decoded, original)
    means, _ = correction_field._cell_means(error, exponent)
    best = (0.0, 0, 0.0)
    for step in STEPS:
        limit = correction_field.MAX_CORRECTION // step
        values = np.clip(np.round(means * correction_field.QUARTER / step), -limit, limit).astype(np.int64)
        if not values.any():
            continue
        corrected = correction_field.add_field(decoded, values, step, exponent)
        differences = correction_field._predicted(values).ravel()
        bits = entropy_bits(differences) + 60 if ideal else 8 * correction_field._field_bytes(values)
        best = max(best, (plain - squared_error(corrected, original) - lagrangian * bits, step, bits / 8))
    return best


FREQUENCY_GROUPS = ((0, 0), (1, 1), (2, 2), (3, 4), (5, 7), (8, 11), (12, 30))


def smooth_spectrum(original: np.ndarray, decoded: np.ndarray, size: int = 16) -> np.ndarray:
    """Squared error of ``decoded`` in the smoother half of the ``size`` blocks (by the original's mean absolute
    neighbour difference), summed per :data:`FREQUENCY_GROUPS` of the DCT's u + v."""
    x = blocks(original.astype(np.float64), size).reshape(-1, 3, size, size)
    activity = np.abs(np.diff(x, axis=-1)).mean((1, 2, 3)) + np.abs(np.diff(x, axis=-2)).mean((1, 2, 3))
    error = blocks(decoded - original.astype(np.float64), size).reshape(-1, 3, size, size)[
        activity <= np.median(activity)
    ]
    energy = (dctn(error, axes=(-2, -1), norm="ortho") ** 2).sum((0, 1))
    frequency = np.add.outer(np.arange(size), np.arange(size))
    return np.array([energy[(frequency >= lo) & (frequency <= hi)].sum() for lo, hi in FREQUENCY_GROUPS])


def main(path: str, qualities: str) -> None:
    original = np.asarray(Image.open(path).convert("RGB"))
    codec = Codec("vqvae2-wide-rpl7")
    for quality in map(int, qualities.split(",")):
        data = codec.compress(original, quality)
        decoded = np.asarray(decompress(data))
        lagrangian = codec._lagrangian(quality)
        avif_quality, avif_bytes, avif = avif_at_most(path, len(data))
        ratios = smooth_spectrum(original, decoded.astype(np.float64)) / smooth_spectrum(original, avif)
        groups = " ".join(f"{lo}-{hi}: {ratio:.2f}" for (lo, hi), ratio in zip(FREQUENCY_GROUPS, ratios))
        print(f"{path.split('/')[-1]} q{quality} against AVIF q{avif_quality} ({avif_bytes} B), smooth half: {groups}")
        scale = lagrangian * 8 * len(data) / 100
        found = {
            f"dct{size} u+v<={reach}": dct_layer(original - decoded.astype(float), size, reach, lagrangian)
            for size in (16, 32)
            for reach in (1, 2, 3)
        }
        for exponent in (3, 4, 5, 6):
            for ideal in (False, True):
                found[f"field{1 << exponent}{' ideal' if ideal else ''}"] = field(
                    decoded, original, exponent, lagrangian, ideal
                )
        parts = [
            f"{name} {gain / scale:.2f}% (step {step}, {size:.0f} B)"
            for name, (gain, step, size) in found.items()
            if gain > 0
        ]
        print(f"{path.split('/')[-1]} q{quality} {len(data)} B: " + ("; ".join(parts) or "nothing saves"), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:3])
