"""Entropy coding of the residual layer into the payload of a file's residual chunk (docs/FORMAT.md).

Encoder and decoder run the same traversal (:func:`~aecodec.models.residual.traverse`); each pass
codes its symbols row by row of the integer bank, then the escapes of large values as base-64
digits under a uniform row. The payload starts with a CRC32 of the decoded coefficients and, from
version 2, one row offset per band: the model's rows are fitted to training photos, and moving a
band's rows toward wider or narrower ones fits them to the image (1-2% of a file). Version 3 also tilts
each band's rows along its contexts' bins (three slopes per band), for images whose contexts say more or
less than the training photos' did. Version 4, what the encoder writes, codes both in one
exponential-Golomb field (7-21 bytes where versions 2 and 3 took 15-30), the slopes only where they pay
for their bits.
"""

import struct
import zlib
from collections.abc import Callable

import numpy as np

from aecodec.bitstream.entropy import SymbolDecoder, SymbolEncoder
from aecodec.bitstream.golomb import code_bits, decode_signed, encode_signed, padded_length, read_signed
from aecodec.errors import FormatError
from aecodec.models.residual import (
    BAND,
    BANDS,
    COEFFICIENTS,
    ESCAPE,
    ESCAPE_BASE,
    ESCAPE_DIGITS,
    MAX_SLOPE,
    ResidualLayer,
    ResidualLevel,
    Visit,
    context_features,
    context_symbol_counts,
    decoding_passes,
    spans,
    tilted_shift,
    traverse,
)

PAYLOAD_VERSION = 4  # 3: offsets as bytes, slopes after a byte count; 2: no slopes; 1: no row offsets either
_PREFIX = struct.Struct("<BI")  # version, CRC32 of the coefficients
_OFFSETS = struct.Struct(f"<{BANDS}b")  # versions 2 and 3: the row offset of each band
_SLOPES = 3 * BANDS  # version 3: after the offsets, a byte n and n bytes of order-0 exponential-Golomb slopes
MAX_OFFSET = 128  # version 4: a row offset's magnitude (the encoder's are those of an i8 within the bank)
# Version 4's shifts field at its longest: a flag, the offsets and the slopes in the order-0 code.
_MAX_SHIFTS_BYTES = (code_bits([1, *[MAX_OFFSET] * BANDS, *[MAX_SLOPE] * _SLOPES], 0) + 7) // 8
_UNIFORM = np.ones(ESCAPE_BASE, dtype=np.int64)
# Symbols of a row coded per call: a queue coder codes consecutive calls as one, and the work
# arrays of a 24 MP image's large passes stay small.
_CODED_AT_ONCE = 1 << 20


def coefficients_crc(values: np.ndarray) -> int:
    """CRC32 of the quantized coefficients as little-endian int16 in (block row, block, coefficient) order."""
    return zlib.crc32(np.ascontiguousarray(values, dtype="<i2").tobytes())


def given(values: np.ndarray, level: ResidualLevel) -> Visit:
    """The chooser that codes fixed coefficients ``values`` (h, w, 192) at ``level``, e.g. the deadzone quantizer's."""
    passes = decoding_passes(level.depth, *values.shape[:2])
    current: dict[tuple[int, int], np.ndarray] = {}  # the pass being coded (only one: large images)

    def choose(index: int, band: int, row: int, where: np.ndarray) -> np.ndarray:
        if (index, band) not in current:
            current.clear()
            flat = values.reshape(-1, COEFFICIENTS)
            current[(index, band)] = flat[passes[index].blocks[:, None], np.flatnonzero(band == BAND)].ravel()
        return current[(index, band)][where]

    return choose


def encode_residual(layer: ResidualLayer, level: ResidualLevel, choose: Visit, blocks_shape: tuple[int, int]) -> bytes:
    """The chunk payload coding, at ``level``, the coefficients that ``choose`` picks as the traversal reaches them.

    ``choose`` sees each pass's bank rows before it decides, so an encoder may weigh their costs
    (:mod:`aecodec.codec.residual_rdo`); :func:`given` codes fixed values. A first traversal finds
    the row offsets and slopes (:func:`fit_row_shifts`), the second codes with them.
    """
    offsets, slopes = fit_row_shifts(layer, level, choose, blocks_shape)
    encoder = SymbolEncoder()

    def write(index: int, band: int, row: int, where: np.ndarray) -> np.ndarray:
        def code(part: np.ndarray) -> None:
            encoder.encode_iid(np.clip(part, -ESCAPE, ESCAPE) + ESCAPE, layer.bank[row])

        chosen = _chosen_in_parts(choose, index, band, row, where, code)
        excess = np.abs(chosen[np.abs(chosen) >= ESCAPE].astype(np.int64)) - ESCAPE
        digits = np.stack([excess // ESCAPE_BASE**k % ESCAPE_BASE for k in reversed(range(ESCAPE_DIGITS))], 1)
        encoder.encode_iid(digits.ravel(), _UNIFORM)
        return chosen

    coded = traverse(level.with_row_shifts(offsets, len(layer.bank), slopes), blocks_shape, write)
    return _PREFIX.pack(PAYLOAD_VERSION, coefficients_crc(coded)) + shifts_field(offsets, slopes) + encoder.finish()


def shifts_field(offsets: np.ndarray, slopes: np.ndarray) -> bytes:
    """Version 4's row offsets and slopes: in the order-0 signed exponential-Golomb code, a flag (1: slopes
    follow), the BANDS offsets, then the slopes where any is not zero; padded to a whole byte."""
    tilt = slopes.ravel().tolist() if slopes.any() else []
    return encode_signed([int(bool(tilt)), *offsets.tolist(), *tilt], 0)


def _chosen_in_parts(
    choose: Visit, index: int, band: int, row: int, where: np.ndarray, use: Callable[[np.ndarray], None]
) -> np.ndarray:
    """What ``choose`` picks at ``where``, as int16, a part at a time, each part handed to ``use`` (coded,
    counted): a 24 MP image's largest pass would otherwise make int64 temporaries of hundreds of MB."""
    chosen = np.empty(len(where), dtype=np.int16)
    for part in spans(len(where), _CODED_AT_ONCE):
        chosen[part] = choose(index, band, row, where[part])
        use(chosen[part])
    return chosen


def fit_row_shifts(
    layer: ResidualLayer, level: ResidualLevel, choose: Visit, blocks_shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Each band's row offset (BANDS,) and slopes (BANDS, 3) (:func:`~aecodec.models.residual.row_shifts`)
    that code what ``choose`` picks at ``level`` in the fewest bits, the slopes' own bits counted; the
    slopes all zero (a version 2 payload) where they do not pay for their bytes.

    The model's bank is a family of rows from narrow to wide (:func:`aecodec.training.residual.laplace_bank`),
    so an offset says how much busier or quieter than the training photos this image is in a band, and
    a slope how much more or less its contexts tell its symbols apart.
    """
    counts = context_symbol_counts(traverse(level, blocks_shape, choose), level.depth)
    bits = np.log2(layer.bank.sum(1, keepdims=True)) - np.log2(layer.bank)  # (rows, ALPHABET)
    last_row, per_band = len(layer.bank) - 1, len(level.rows) // BANDS
    shifts = np.arange(max(-last_row, -128), min(last_row, 127) + 1)  # i8 offsets; beyond the bank, rows clamp alike
    shifts = shifts[np.argsort(np.abs(shifts), kind="stable")]  # among equal costs, the smallest shift
    features = context_features(len(level.rows))
    offsets, tilted = np.zeros(BANDS, dtype=np.int64), np.zeros((BANDS, 4), dtype=np.int64)
    plain_bits = tilted_bits = 0.0
    for band in range(BANDS):
        used = band * per_band + np.flatnonzero(counts[band * per_band : (band + 1) * per_band].any(1))
        # cost[c, s]: the bits of context used[c] with its row moved by shifts[s]
        cost = np.stack([(counts[used] * bits[np.clip(level.rows[used] + s, 0, last_row)]).sum(1) for s in shifts], 1)
        by_offset = cost.sum(0) + [code_bits([int(s)], 0) for s in shifts]  # with the offset's own bits
        offsets[band] = tilted[band, 0] = shifts[by_offset.argmin()]
        plain_bits += by_offset.min()
        tilted[band], band_bits = _fit_slopes(cost, shifts, features[used], tilted[band])
        tilted_bits += band_bits
    slopes = tilted[:, 1:]
    if not slopes.any() or tilted_bits + code_bits([1], 0) - code_bits([0], 0) >= plain_bits:  # the flag's bits
        return offsets, np.zeros_like(slopes)
    return tilted[:, 0], slopes


def _fit_slopes(
    cost: np.ndarray, shifts: np.ndarray, features: np.ndarray, start: np.ndarray
) -> tuple[np.ndarray, float]:
    """The (offset, three slopes) of least bits for one band, and those bits (the slopes' code included):
    from ``start`` (the best offset alone), each parameter in turn over its range (the offset within 8 of
    where it is), three rounds. ``cost`` (contexts, shifts) is the band's bits per context and shift,
    ``features`` (contexts, 3) their bins."""
    contexts, position = np.arange(len(cost)), np.argsort(shifts)  # shift value -> column of cost
    low, high = int(shifts.min()), int(shifts.max())
    slope_values = np.arange(-MAX_SLOPE, MAX_SLOPE + 1)
    value_bits = {v: code_bits([v], 0) for v in range(min(low, -MAX_SLOPE), max(high, MAX_SLOPE) + 1)}

    def bits_with(params: np.ndarray) -> float:
        moved = tilted_shift(params[0], params[1:], features)
        columns = position[np.clip(moved - low, 0, high - low)]
        return float(cost[contexts, columns].sum()) + sum(value_bits[int(v)] for v in params)

    best, best_bits = start.copy(), bits_with(start)
    for _ in range(3):
        offsets = np.arange(max(best[0] - 8, low), min(best[0] + 8, high) + 1)
        for j, choices in enumerate([offsets, slope_values, slope_values, slope_values]):
            for value in choices:
                trial = best.copy()
                trial[j] = value
                trial_bits = bits_with(trial)
                if trial_bits < best_bits:
                    best, best_bits = trial, trial_bits
    return best, best_bits


def _read_shifts_field(payload: bytes, start: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Version 4's offsets (BANDS,) and slopes (BANDS, 3) from ``payload[start:]``, and where its stream starts."""
    what = "residual chunk's row shifts"
    field = payload[start : start + _MAX_SHIFTS_BYTES]
    (tilted, *offsets), end = read_signed(field, 1 + BANDS, 0, MAX_OFFSET, what)
    slopes = np.zeros(_SLOPES, dtype=np.int64)
    if tilted not in (0, 1):
        raise FormatError(f"invalid {what}: flag {tilted}")
    if tilted:
        coded, end = read_signed(field, _SLOPES, 0, MAX_SLOPE, what, end)
        slopes = np.array(coded, dtype=np.int64)
    return np.array(offsets, dtype=np.int64), slopes.reshape(BANDS, 3), start + padded_length(field, end, what)


def decode_residual(
    layer: ResidualLayer, level: ResidualLevel, payload: bytes, blocks_shape: tuple[int, int]
) -> np.ndarray:
    """Inverse of :func:`encode_residual`: the (h, w, 192) int16 coefficients, checked against the CRC.

    The work is that of ``blocks_shape`` (from the header's image size), whatever the payload holds.
    """
    if len(payload) < _PREFIX.size:
        raise FormatError("residual chunk is truncated")
    version, crc = _PREFIX.unpack_from(payload)
    if version not in (1, 2, 3, PAYLOAD_VERSION):
        raise FormatError(f"residual chunk version {version} is not supported (written by a newer aecodec?)")
    start = _PREFIX.size
    if version == PAYLOAD_VERSION:
        offsets, slopes, start = _read_shifts_field(payload, start)
        level = level.with_row_shifts(offsets, len(layer.bank), slopes)
    elif version >= 2:
        if len(payload) < start + _OFFSETS.size + (version == 3):
            raise FormatError("residual chunk is truncated")
        offsets, slopes = np.array(_OFFSETS.unpack_from(payload, start)), np.zeros((BANDS, 3), dtype=np.int64)
        start += _OFFSETS.size
        if version == 3:
            end = start + 1 + payload[start]
            if len(payload) < end:
                raise FormatError("residual chunk is truncated")
            coded = decode_signed(payload[start + 1 : end], _SLOPES, 0, MAX_SLOPE, "residual chunk's slopes")
            slopes, start = np.array(coded, dtype=np.int64).reshape(BANDS, 3), end
        level = level.with_row_shifts(offsets, len(layer.bank), slopes)
    decoder = SymbolDecoder(payload[start:])

    def read(index: int, band: int, row: int, where: np.ndarray) -> np.ndarray:
        values = np.empty(len(where), dtype=np.int16)
        for part in spans(len(where), _CODED_AT_ONCE):
            values[part] = decoder.decode_iid(layer.bank[row], part.stop - part.start) - ESCAPE
        escaped = np.flatnonzero(np.abs(values) == ESCAPE)
        digits = decoder.decode_iid(_UNIFORM, ESCAPE_DIGITS * len(escaped)).reshape(-1, ESCAPE_DIGITS)
        excess = digits @ (ESCAPE_BASE ** np.arange(ESCAPE_DIGITS - 1, -1, -1))
        values[escaped] += (np.sign(values[escaped]) * excess).astype(np.int16)
        return values

    values = traverse(level, blocks_shape, read)
    decoder.check_exhausted()
    if coefficients_crc(values) != crc:
        raise FormatError("residual layer: coefficient checksum mismatch (corrupted file, or a decoder that differs)")
    return values
