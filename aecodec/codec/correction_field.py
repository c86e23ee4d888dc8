"""A coarse correction field added to the decoded image: the slow drifts that 8x8 blocks cannot afford.

At a low rate the residual layer's step is so coarse that a block's mean error of a few levels rounds
to zero (a uniform error e in an 8x8 RGB block is a KLT coefficient of about 14e), so smooth areas keep
the base's slow colour drifts, which a large transform (AVIF's 64x64) corrects for a few bits. Here
the encoder measures the final decode's error on a grid of cells of 32, 64 or 128 pixels, each cell's
mean error per channel quantized with a step; the decoder interpolates the grid bilinearly (integer
weights, so every machine adds the same values) and adds it to its output. The encoder keeps the
cell size and step of least squared error plus lambda times the chunk's bits, where that beats no
field (the step of each cell size chosen on an estimate, the three candidates then
weighed on the image). Payload (``CFLD``, docs/FORMAT.md): version byte 1, the cell size's
exponent, the step in quarter levels, the code's order, then each channel's values, predicted from
the left neighbour (the first column from the one above), in the signed exponential-Golomb code.
"""

import numpy as np

from aecodec.bitstream.format import CHUNK_OVERHEAD, CORRECTION_FIELD_PREFIX_SIZE
from aecodec.bitstream.golomb import best_order, code_bits, decode_signed, encode_signed
from aecodec.codec.distortion import squared_error
from aecodec.errors import FormatError
from aecodec.models.residual import spans

VERSION = 1
CELL_EXPONENTS = (5, 6, 7)  # cells of 32, 64 and 128 pixels
STEPS = (2, 3, 4, 6, 8, 12, 16, 24)  # in quarter levels: the steps the encoder tries (the format allows 1..255)
QUARTER = 4  # steps are in quarter levels
MAX_CORRECTION = QUARTER * 255  # |value x step| of a cell, in quarter levels
STRIP_PIXELS = 1 << 16  # pixels corrected at a time: int64 temporaries of 24 bytes per pixel


def field_shape(width: int, height: int, exponent: int) -> tuple[int, int, int]:
    """(channels, rows, columns) of the field of a ``width`` x ``height`` image with cells of 2**exponent."""
    cell = 1 << exponent
    return 3, -(-height // cell), -(-width // cell)


def _axis_weights(size: int, cell: int, cells: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each of ``size`` pixel positions, the two cells it lies between and the second's weight in
    ``2 * cell``-ths: bilinear interpolation between cell centres, constant beyond the outer ones."""
    position = 2 * np.arange(size, dtype=np.int64) + 1 - cell  # 2 cell x (its position in cells, from a centre)
    first = np.floor_divide(position, 2 * cell)
    weight = position - first * 2 * cell
    return np.clip(first, 0, cells - 1), np.clip(first + 1, 0, cells - 1), weight


def add_field(pixels: np.ndarray, values: np.ndarray, step: int, exponent: int) -> np.ndarray:
    """``pixels`` (H, W, 3) uint8 plus the field of integer ``values`` (3, rows, columns) times ``step`` quarter
    levels, interpolated, each pixel's sum rounded (halves up) and clipped: in exact integer arithmetic."""
    height, width = pixels.shape[:2]
    cell = 1 << exponent
    top, bottom, down = _axis_weights(height, cell, values.shape[1])
    left, right, across = _axis_weights(width, cell, values.shape[2])
    scaled = values.astype(np.int64) * step
    denominator = QUARTER * (2 * cell) ** 2
    out = np.empty_like(pixels)
    for rows in spans(height, max(1, STRIP_PIXELS // width)):
        along = scaled[:, top[rows]] * (2 * cell - down[rows, None]) + scaled[:, bottom[rows]] * down[rows, None]
        field = along[:, :, left] * (2 * cell - across) + along[:, :, right] * across
        delta = np.floor_divide(2 * field + denominator, 2 * denominator).transpose(1, 2, 0)
        out[rows] = np.clip(pixels[rows] + delta, 0, 255)
    return out


def _predicted(values: np.ndarray) -> np.ndarray:
    """What the payload codes of ``values`` (3, rows, columns): each less its left neighbour, the first column
    less the one above."""
    differences = values.astype(np.int64)
    differences[:, :, 1:] -= values[:, :, :-1]
    differences[:, 1:, 0] -= values[:, :-1, 0]
    return differences


def _reconstructed(differences: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_predicted`."""
    values = differences.copy()
    values[:, :, 0] = np.cumsum(values[:, :, 0], axis=1)
    return np.cumsum(values, axis=2)


def pack_field(values: np.ndarray, step: int, exponent: int) -> bytes:
    """The ``CFLD`` payload of integer ``values`` (3, rows, columns) in steps of ``step`` quarter levels."""
    differences = _predicted(values).ravel().tolist()
    order = best_order(differences)
    return bytes([VERSION, exponent, step, order]) + encode_signed(differences, order)


def unpack_field(payload: bytes, width: int, height: int) -> tuple[np.ndarray, int, int]:
    """(values, step, exponent) of a ``CFLD`` payload for a ``width`` x ``height`` image; FormatError if it is not
    one. The work is bounded by the payload's length and the image's size."""
    if len(payload) < CORRECTION_FIELD_PREFIX_SIZE:  # as check_chunk has found, for a parsed file
        raise FormatError("invalid correction field chunk: shorter than its 4-byte prefix")
    version, exponent, step, order = payload[:CORRECTION_FIELD_PREFIX_SIZE]
    if version != VERSION:
        raise FormatError(f"correction field chunk version {version} is not supported (written by a newer aecodec?)")
    if exponent not in CELL_EXPONENTS or step == 0:
        raise FormatError(f"invalid correction field chunk: cell exponent {exponent} or step {step} out of range")
    shape, largest = field_shape(width, height, exponent), MAX_CORRECTION // step
    coded = payload[CORRECTION_FIELD_PREFIX_SIZE:]
    differences = decode_signed(coded, int(np.prod(shape)), order, 2 * largest, "correction field chunk")
    values = _reconstructed(np.array(differences, dtype=np.int64).reshape(shape))
    if np.abs(values).max(initial=0) > largest:
        raise FormatError(f"invalid correction field chunk: a correction beyond {MAX_CORRECTION / QUARTER} levels")
    return values, step, exponent


def _cell_means(error: np.ndarray, exponent: int) -> tuple[np.ndarray, np.ndarray]:
    """(3, rows, columns) float64 mean of ``error`` (H, W, 3) int16 over each cell, and each cell's pixel count
    (rows, columns), a row of cells at a time."""
    height, width = error.shape[:2]
    cell, shape = 1 << exponent, field_shape(width, height, exponent)
    sums = np.zeros(shape)
    counts = np.zeros(shape[1:])
    columns = np.arange(width) >> exponent
    for row in range(shape[1]):
        lines = error[row * cell : (row + 1) * cell]
        np.add.at(sums[:, row].T, columns, lines.sum(0, dtype=np.float64))
        counts[row] = np.bincount(columns, minlength=shape[2]) * len(lines)
    return sums / counts, counts


def _field_bytes(values: np.ndarray) -> int:
    """The ``CFLD`` chunk's size, its overhead included, for integer ``values``."""
    differences = _predicted(values).ravel().tolist()
    return CHUNK_OVERHEAD + CORRECTION_FIELD_PREFIX_SIZE + (code_bits(differences, best_order(differences)) + 7) // 8


def fit_field(decoded: np.ndarray, original: np.ndarray, lagrangian: float) -> bytes | None:
    """The ``CFLD`` payload bringing a final decode ``decoded`` closest to ``original`` (both (H, W, 3) uint8) in
    squared error (8-bit units) plus ``lagrangian`` times its chunk's bits; None where no field pays for itself.

    For each cell size, the step is chosen on an estimate (each cell's pixels moved by its value alone,
    as if the field were piecewise constant); the three candidates are then weighed on the image.
    """
    error = original.astype(np.int16) - decoded
    plain, best, least = squared_error(decoded, original), None, 0.0
    for exponent in CELL_EXPONENTS:
        means, counts = _cell_means(error, exponent)
        candidates = []
        for step in STEPS:
            limit = MAX_CORRECTION // step
            values = np.clip(np.round(means * QUARTER / step), -limit, limit).astype(np.int64)
            shift = values * step / QUARTER
            saved = float((counts * (means**2 - (means - shift) ** 2)).sum())
            candidates.append((lagrangian * 8 * _field_bytes(values) - saved, step, values))
        estimate, step, values = min(candidates, key=lambda candidate: candidate[0])
        if estimate >= 0 or not values.any():
            continue
        corrected = add_field(decoded, values, step, exponent)
        cost = squared_error(corrected, original) - plain + lagrangian * 8 * _field_bytes(values)
        if cost < least:
            best, least = pack_field(values, step, exponent), cost
    return best
