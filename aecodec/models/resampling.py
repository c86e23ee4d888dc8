"""Exact 2x upsampling of a half-resolution base: separable 4-tap bicubic in integer arithmetic.

A file may code its VQ-VAE-2 base at half resolution (docs/FORMAT.md, ``flags``): on smooth images
the base then costs a quarter of the indices, and the residual layer restores the detail. The
decoder upsamples the base before adding the residual; doing it in integers makes those pixels
the same on every machine and thread count, so the residual is added to exactly what the encoder
subtracted it from.
"""

import numpy as np
from PIL import Image

# Keys' cubic (a = -0.5) at the two phases of a half-pixel-centred 2x grid, in 128ths: output pixel
# 2i sits at input position i - 1/4 (taps i-2..i+1), output 2i+1 at i + 1/4 (taps i-1..i+2).
_EVEN_TAPS = np.array([-3, 29, 111, -9], dtype=np.int32)
_ODD_TAPS = _EVEN_TAPS[::-1].copy()
_SHIFT = 14  # two passes of 128ths
_STRIP_ROWS = 256  # input rows upsampled at a time: the int32 work arrays of a 24 MP image stay small


def _double_rows(padded: np.ndarray, count: int) -> np.ndarray:
    """(2 count, ...) int32 rows from ``padded``, the input rows i-2..i+count+1 (edge-replicated), times 128."""
    out = np.empty((2 * count, *padded.shape[1:]), dtype=np.int32)
    out[0::2] = sum(int(t) * padded[k : k + count] for k, t in enumerate(_EVEN_TAPS))
    out[1::2] = sum(int(t) * padded[k + 1 : k + 1 + count] for k, t in enumerate(_ODD_TAPS))
    return out


def upsample2x(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """The (height, width, 3) uint8 upsampling of (ceil(height/2), ceil(width/2), 3) uint8 ``pixels``."""
    rows, cols = pixels.shape[:2]
    if (rows, cols) != (-(-height // 2), -(-width // 2)):
        raise ValueError(f"a {cols}x{rows} base does not upsample to {width}x{height}")
    out = np.empty((height, width, 3), dtype=np.uint8)
    column_taps = np.clip(np.arange(-2, cols + 2), 0, cols - 1)
    for start in range(0, rows, _STRIP_ROWS):
        count = min(_STRIP_ROWS, rows - start)
        row_taps = np.clip(np.arange(start - 2, start + count + 2), 0, rows - 1)
        tall = _double_rows(pixels[row_taps].astype(np.int32), count)  # (2 count, cols, 3)
        wide = _double_rows(tall.transpose(1, 0, 2)[column_taps], cols).transpose(1, 0, 2)  # (2 count, 2 cols, 3)
        strip = (wide + (1 << (_SHIFT - 1))) >> _SHIFT
        stop = min(2 * (start + count), height)
        out[2 * start : stop] = np.clip(strip[: stop - 2 * start, :width], 0, 255)
    return out


def downsample2x(pixels: np.ndarray) -> np.ndarray:
    """The encoder's half-resolution (ceil(H/2), ceil(W/2), 3) uint8 image of (H, W, 3+) uint8 ``pixels``.

    Lanczos over the image padded to even sides by repeating its last row and column, so that each
    output pixel is centred between the two input pixels :func:`upsample2x` places around it.
    """
    height, width = pixels.shape[:2]
    even = np.pad(pixels[:, :, :3], ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
    half = (even.shape[1] // 2, even.shape[0] // 2)
    return np.asarray(Image.fromarray(even).resize(half, Image.Resampling.LANCZOS))
