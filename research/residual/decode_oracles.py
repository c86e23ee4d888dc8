"""Is there low-frequency error left in the final decode that a decoder-side tool could take? Four oracles.

Run from the repository root: ``PYTHONPATH=. python research/residual/decode_oracles.py IMAGE:Q ...``. Each point
is coded at effort 2 (corrections included) and the final decode is compared with the original:

- ``upsampler``: the half-resolution base upsampled by least-squares filters fitted to this image (one per output
  phase and channel, taps on a (2r)^2 neighbourhood of the half image, own channel or all three), against the
  product's exact bicubic;
- ``block means``: a least-squares filter of the decode's 8x8 (16x16) block-mean field (symmetric high-pass pairs
  within r blocks, own channel or all three), its correction interpolated bilinearly onto the pixels;
- ``smoothing``: each 16x16 (32x32) block of the decode replaced, where that lowers its squared error, by a Gaussian
  blur of the decode (sigma 0.7-2.5), the choice an oracle with free flags;
- ``second field``: a second correction field on top of the product's (cells of 8, 16, 32 px, in YCbCr, chroma
  only or all channels), its bytes as the product's field codes them, judged in squared error + lambda x bits.

Every gain is before the side information it would need, except the second field's.
"""

import sys

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

import aecodec.codec.api as api
from aecodec.bitstream.format import unpack
from aecodec.codec import correction_field as field
from aecodec.codec.api import Codec

YCBCR = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
_halves: list[np.ndarray] = []
_upsample2x = api.upsample2x


def _capturing_upsample(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """The product's upsampling, keeping the half-resolution base it upsamples."""
    _halves.append(pixels.copy())
    return _upsample2x(pixels, width, height)


api.upsample2x = _capturing_upsample


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / np.mean((a.astype(float) - b.astype(float)) ** 2)))


def least_squares(features: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The least-squares fit of ``target`` (n,) on ``features`` (n, k)."""
    return features @ np.linalg.lstsq(features, target, rcond=None)[0]


def upsampler(half: np.ndarray, x: np.ndarray, radius: int, cross: bool) -> np.ndarray:
    """``half`` upsampled to ``x``'s size by a least-squares filter per output phase and channel."""
    height, width = x.shape[:2]
    padded = np.pad(half.astype(float), ((radius, radius + 1), (radius, radius + 1), (0, 0)), mode="edge")
    out = np.zeros(x.shape)
    for py in range(2):
        for px in range(2):
            ys, xs = np.arange(py, height, 2), np.arange(px, width, 2)
            taps = [
                padded[ys[:, None] // 2 + radius + dy, xs[None, :] // 2 + radius + dx]
                for dy in range(py - radius, py + radius)
                for dx in range(px - radius, px + radius)
            ]
            inputs = np.stack(taps, -2)  # (rows, columns, taps, 3)
            for c in range(3):
                chosen = inputs.reshape(-1, len(taps) * 3) if cross else inputs[..., c].reshape(-1, len(taps))
                chosen = np.concatenate([chosen, np.ones((len(chosen), 1))], 1)
                fitted = least_squares(chosen, x[ys][:, xs, c].reshape(-1).astype(float))
                out[np.ix_(ys, xs, [c])] = fitted.reshape(len(ys), len(xs), 1)
    return np.clip(np.round(out), 0, 255)


def block_means(image: np.ndarray, size: int) -> np.ndarray:
    rows, columns = image.shape[0] // size, image.shape[1] // size
    return image[: rows * size, : columns * size].reshape(rows, size, columns, size, -1).mean((1, 3))


def bilinear(field_: np.ndarray, size: int, shape: tuple[int, ...]) -> np.ndarray:
    """A per-block field (rows, columns, 3) interpolated between block centres onto an image of ``shape``."""
    rows, columns = field_.shape[:2]

    def axis(count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        position = (np.arange(count * size) + 0.5) / size - 0.5
        first = np.clip(np.floor(position).astype(int), 0, count - 1)
        return first, np.clip(first + 1, 0, count - 1), np.clip(position - first, 0, 1)

    top, bottom, down = axis(rows)
    left, right, across = axis(columns)
    across = across[None, :, None]
    upper = field_[top][:, left] * (1 - across) + field_[top][:, right] * across
    lower = field_[bottom][:, left] * (1 - across) + field_[bottom][:, right] * across
    out = np.zeros(shape)
    out[: rows * size, : columns * size] = upper * (1 - down[:, None, None]) + lower * down[:, None, None]
    return out


def block_mean_filter(decoded: np.ndarray, x: np.ndarray, size: int, radius: int, cross: bool) -> np.ndarray:
    """The decode plus a least-squares filter of its block-mean field, fitted to the original's block means."""
    means, goal = block_means(decoded.astype(float), size), block_means(x.astype(float), size)
    padded = np.pad(means, ((radius, radius), (radius, radius), (0, 0)), mode="edge")
    rows, columns = means.shape[:2]
    pairs = [(dy, dx) for dy in range(radius + 1) for dx in range(-radius, radius + 1) if (dy, dx) > (0, 0)]
    inputs = np.stack(
        [
            padded[radius + dy : radius + dy + rows, radius + dx : radius + dx + columns]
            + padded[radius - dy : radius - dy + rows, radius - dx : radius - dx + columns]
            - 2 * means
            for dy, dx in pairs
        ],
        -2,
    )
    correction = np.zeros_like(means)
    for c in range(3):
        chosen = inputs.reshape(-1, len(pairs) * 3) if cross else inputs[..., c].reshape(-1, len(pairs))
        correction[..., c] = least_squares(chosen, (goal - means)[..., c].reshape(-1)).reshape(rows, columns)
    return np.clip(np.round(decoded + bilinear(correction, size, decoded.shape)), 0, 255)


def smoothing_gain(decoded: np.ndarray, x: np.ndarray, size: int) -> float:
    """dB gained by the best of the decode and its blurs in every block (free flags)."""
    candidates = [decoded.astype(float)] + [
        np.round(gaussian_filter(decoded.astype(float), (s, s, 0))) for s in (0.7, 1.0, 1.5, 2.5)
    ]
    rows, columns = x.shape[0] // size, x.shape[1] // size
    errors = np.stack(
        [
            ((c - x) ** 2)[: rows * size, : columns * size].reshape(rows, size, columns, size, 3).sum((1, 3, 4))
            for c in candidates
        ]
    )
    plain = float(((decoded.astype(float) - x) ** 2).sum())
    best = plain - errors[0].sum() + errors.min(0).sum()
    return float(10 * np.log10(plain / best))


def second_field_saving(decoded: np.ndarray, x: np.ndarray, lagrangian: float, file_bits: int, exponent: int) -> float:
    """Best saving in % of D + lambda R by a second correction field in YCbCr (chroma only or all channels)."""
    error = (x.astype(float) - decoded) @ YCBCR.T
    plain = float(((x.astype(float) - decoded) ** 2).sum())
    means, _ = field._cell_means(error, exponent)
    best = 0.0
    for step in (2, 3, 4, 6, 8, 12, 16):
        for channels in ((1, 2), (0, 1, 2)):
            values = np.round(means * field.QUARTER / step).astype(np.int64)
            values[[c for c in range(3) if c not in channels]] = 0
            if not values.any():
                continue
            added = field.add_field(np.full(x.shape, 128, np.uint8), values, step, exponent).astype(float) - 128
            fixed = np.clip(np.round(decoded + added @ np.linalg.inv(YCBCR).T), 0, 255)
            cost = float(((x - fixed) ** 2).sum()) + lagrangian * 8 * field._field_bytes(values[list(channels)])
            best = max(best, (plain - cost) / (plain + lagrangian * file_bits))
    return 100 * best


def main() -> None:
    codec = Codec()
    for point in sys.argv[1:]:
        path, quality = point.rsplit(":", 1)
        x = np.asarray(Image.open(path).convert("RGB"))
        _halves.clear()
        data = codec.compress(x, int(quality), effort=2)
        decoded = np.asarray(codec.decompress(data))
        base, _ = codec._decoded(unpack(data))
        name, plain = f"{path.split('/')[-1]} q{quality} ({len(data)} B)", psnr(decoded, x)
        if unpack(data).header.half_base:
            fits = ", ".join(
                f"r{r}{'x' if c else ''} {psnr(upsampler(_halves[-1], x, r, c), x) - psnr(base, x):+.3f}"
                for r, c in ((2, False), (3, False), (3, True))
            )
            print(f"{name} upsampler: base {psnr(base, x):.2f} dB; least squares {fits} dB", flush=True)
        for size in (8, 16):
            fits = ", ".join(
                f"r{r}{'x' if c else ''} {psnr(block_mean_filter(decoded, x, size, r, c), x) - plain:+.3f}"
                for r, c in ((1, False), (2, False), (2, True))
            )
            print(f"{name} block means {size}: {fits} dB", flush=True)
        smooth = [f"{size} px {smoothing_gain(decoded, x, size):+.3f} dB" for size in (16, 32)]
        print(f"{name} smoothing: {', '.join(smooth)}", flush=True)
        savings = ", ".join(
            f"{1 << e} px {second_field_saving(decoded, x, codec._lagrangian(int(quality)), 8 * len(data), e):+.2f}%"
            for e in (3, 4, 5)
        )
        print(f"{name} second field: {savings} of D + lambda R", flush=True)


if __name__ == "__main__":
    main()
