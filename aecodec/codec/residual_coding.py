"""Entropy coding of the residual layer into the payload of a file's residual chunk (docs/FORMAT.md).

Encoder and decoder run the same traversal (:func:`~aecodec.models.residual.traverse`); each pass
codes its symbols row by row of the integer bank, then the escapes of large values as base-64
digits under a uniform row. The payload starts with a CRC32 of the decoded coefficients and, from
version 2, one row offset per band: the model's rows are fitted to training photos, and moving a
band's rows toward wider or narrower ones fits them to the image (1-2% of a file, for 15 bytes).
"""

import struct
import zlib
from collections.abc import Callable

import numpy as np

from aecodec.bitstream.entropy import SymbolDecoder, SymbolEncoder
from aecodec.errors import FormatError
from aecodec.models.residual import (
    ALPHABET,
    BAND,
    BANDS,
    COEFFICIENTS,
    ESCAPE,
    ESCAPE_BASE,
    ESCAPE_DIGITS,
    ResidualLayer,
    ResidualLevel,
    Visit,
    decoding_passes,
    spans,
    traverse,
)

PAYLOAD_VERSION = 2  # 1: no row offsets (files of earlier releases), still decoded
_PREFIX = struct.Struct("<BI")  # version, CRC32 of the coefficients
_OFFSETS = struct.Struct(f"<{BANDS}b")  # version 2: the row offset of each band
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
    the row offsets (:func:`fit_row_offsets`), the second codes with them.
    """
    offsets = fit_row_offsets(layer, level, choose, blocks_shape)
    encoder = SymbolEncoder()

    def write(index: int, band: int, row: int, where: np.ndarray) -> np.ndarray:
        def code(part: np.ndarray) -> None:
            encoder.encode_iid(np.clip(part, -ESCAPE, ESCAPE) + ESCAPE, layer.bank[row])

        chosen = _chosen_in_parts(choose, index, band, row, where, code)
        excess = np.abs(chosen[np.abs(chosen) >= ESCAPE].astype(np.int64)) - ESCAPE
        digits = np.stack([excess // ESCAPE_BASE**k % ESCAPE_BASE for k in reversed(range(ESCAPE_DIGITS))], 1)
        encoder.encode_iid(digits.ravel(), _UNIFORM)
        return chosen

    coded = traverse(level.with_row_offsets(offsets, len(layer.bank)), blocks_shape, write)
    prefix = _PREFIX.pack(PAYLOAD_VERSION, coefficients_crc(coded)) + _OFFSETS.pack(*offsets.tolist())
    return prefix + encoder.finish()


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


def fit_row_offsets(
    layer: ResidualLayer, level: ResidualLevel, choose: Visit, blocks_shape: tuple[int, int]
) -> np.ndarray:
    """For each band, the shift of its rows that codes what ``choose`` picks at ``level`` in the fewest bits.

    The model's bank is a family of rows from narrow to wide (:func:`aecodec.training.residual.laplace_bank`),
    so a shift says how much busier or quieter than the training photos this image is in that band.
    """
    counts = np.zeros((BANDS, len(layer.bank), ALPHABET), dtype=np.int64)

    def count(index: int, band: int, row: int, where: np.ndarray) -> np.ndarray:
        def add(part: np.ndarray) -> None:
            counts[band, row] += np.bincount(np.clip(part, -ESCAPE, ESCAPE) + ESCAPE, minlength=ALPHABET)

        return _chosen_in_parts(choose, index, band, row, where, add)

    traverse(level, blocks_shape, count)
    rows = np.arange(len(layer.bank))
    shifts = np.arange(max(1 - len(rows), -128), min(len(rows), 128))
    shifts = shifts[np.argsort(np.abs(shifts), kind="stable")]  # among equal costs, the smallest shift
    bits = np.log2(layer.bank.sum(1, keepdims=True)) - np.log2(layer.bank)  # (rows, ALPHABET)
    shifted_bits = bits[np.clip(rows[None] + shifts[:, None], 0, len(rows) - 1)]  # (shifts, rows, ALPHABET)
    cost = np.einsum("bra,sra->bs", counts, shifted_bits)
    return shifts[cost.argmin(1)]


def decode_residual(
    layer: ResidualLayer, level: ResidualLevel, payload: bytes, blocks_shape: tuple[int, int]
) -> np.ndarray:
    """Inverse of :func:`encode_residual`: the (h, w, 192) int16 coefficients, checked against the CRC.

    The work is that of ``blocks_shape`` (from the header's image size), whatever the payload holds.
    """
    if len(payload) < _PREFIX.size:
        raise FormatError("residual chunk is truncated")
    version, crc = _PREFIX.unpack_from(payload)
    if version not in (1, PAYLOAD_VERSION):
        raise FormatError(f"residual chunk version {version} is not supported (written by a newer aecodec?)")
    start = _PREFIX.size
    if version == PAYLOAD_VERSION:
        if len(payload) < start + _OFFSETS.size:
            raise FormatError("residual chunk is truncated")
        level = level.with_row_offsets(np.array(_OFFSETS.unpack_from(payload, start)), len(layer.bank))
        start += _OFFSETS.size
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
