"""The encoder's distortion: the exact sum of squared differences of two 8-bit images, in which every
D + lambda R choice of the codec (bases, recodings, filter tuning, correction field) is weighed."""

import numpy as np

from aecodec.models.residual import spans

STRIP_PIXELS = 1 << 16  # pixels compared at a time: int32 temporaries however large or wide the image


def strips(height: int, width: int) -> list[slice]:
    """Row spans of about STRIP_PIXELS pixels each (one row at least), however wide the image."""
    return spans(height, max(1, STRIP_PIXELS // width))


def squared_error(a: np.ndarray, b: np.ndarray) -> int:
    """Sum of squared differences of two (H, W, C) uint8 images, exactly, a strip of rows at a time."""
    return int(sum(((a[rows].astype(np.int32) - b[rows]) ** 2).sum(dtype=np.int64) for rows in strips(*a.shape[:2])))
