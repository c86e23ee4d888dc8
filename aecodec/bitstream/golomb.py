"""Signed exponential-Golomb codes: a few hundred small integers (a file's filter offsets,
its correction field) in few bytes.

Each value v is zigzagged to u = 2v (v >= 0) or -2v - 1 (v < 0), then written as the order-k
exponential-Golomb code of u: with m = (u >> k) + 1 of n + 1 bits, n zero bits, m's n + 1 bits and
u's k low bits, most significant bit first. The last byte is padded with zero bits. No tables and
no probabilities: exact by construction, and the decoder's work is bounded by the payload's length.
"""

from collections.abc import Sequence

import numpy as np

from aecodec.errors import FormatError

MAX_ORDER = 15


def _zigzag(value: int) -> int:
    return 2 * value if value >= 0 else -2 * value - 1


def _zigzagged(values: Sequence[int]) -> np.ndarray:
    v = np.asarray(values, dtype=np.int64)
    return np.where(v >= 0, 2 * v, -2 * v - 1)


def _bits(zigzagged: np.ndarray, order: int) -> int:
    """Bits of zigzagged values (below 2**52) in the order-``order`` code: frexp's exponent is the bit length."""
    lengths = np.frexp(((zigzagged >> order) + 1).astype(np.float64))[1]
    return int((2 * lengths - 1 + order).sum())


def code_bits(values: Sequence[int], order: int) -> int:
    """Bits of ``values`` in the order-``order`` code, before padding."""
    return _bits(_zigzagged(values), order)


def best_order(values: Sequence[int]) -> int:
    """The order in 0..MAX_ORDER that codes ``values`` in the fewest bits (the lowest of equals)."""
    zigzagged = _zigzagged(values)
    return min(range(MAX_ORDER + 1), key=lambda order: _bits(zigzagged, order))


def encode_signed(values: Sequence[int], order: int) -> bytes:
    """``values`` in the order-``order`` signed exponential-Golomb code, padded to whole bytes."""
    if not 0 <= order <= MAX_ORDER:
        raise ValueError(f"order must be in 0..{MAX_ORDER}, got {order}")
    bits = []
    for value in values:
        u = _zigzag(int(value))
        m = (u >> order) + 1
        bits.append(
            "0" * (m.bit_length() - 1)
            + format(m, "b")
            + (format(u & ((1 << order) - 1), f"0{order}b") if order else "")
        )
    text = "".join(bits)
    text += "0" * (-len(text) % 8)
    return int(text, 2).to_bytes(len(text) // 8, "big") if text else b""


def decode_signed(data: bytes, count: int, order: int, limit: int, what: str = "filter chunk") -> list[int]:
    """``count`` values of magnitude at most ``limit`` from ``data``, coded by :func:`encode_signed`; FormatError
    naming the chunk (``what``) if ``data`` ends early, holds more than their padding, a value exceeds ``limit``
    or ``order`` is out of range."""
    values, end = read_signed(data, count, order, limit, what)
    if padded_length(data, end, what) != len(data):
        raise FormatError(f"invalid {what}: bytes after its coded values")
    return values


def read_signed(data: bytes, count: int, order: int, limit: int, what: str, start: int = 0) -> tuple[list[int], int]:
    """``count`` values as :func:`decode_signed` reads them, from bit ``start`` of ``data`` (which may go on after
    them), and the bit after the last."""
    if not 0 <= order <= MAX_ORDER:
        raise FormatError(f"invalid exponential-Golomb order {order} (at most {MAX_ORDER})")
    text, position, values = format(int.from_bytes(data, "big"), f"0{8 * len(data)}b") if data else "", start, []
    longest = (2 * limit + 1).bit_length()  # zeros before the largest valid m, plus one
    for _ in range(count):
        zeros = 0
        while position + zeros < len(text) and text[position + zeros] == "0" and zeros <= longest:
            zeros += 1
        end = position + 2 * zeros + 1 + order
        if zeros > longest or end > len(text):
            raise FormatError(f"invalid {what}: its coded values end early or are out of range")
        m = int(text[position + zeros : position + 2 * zeros + 1], 2)
        u = ((m - 1) << order) | (int(text[position + 2 * zeros + 1 : end], 2) if order else 0)
        value = u // 2 if u % 2 == 0 else -(u + 1) // 2
        if abs(value) > limit:
            raise FormatError(f"invalid {what}: value {value} beyond +-{limit}")
        values.append(value)
        position = end
    return values, position


def padded_length(data: bytes, end: int, what: str) -> int:
    """The bytes of ``data`` that codes end at bit ``end`` fill (their last byte padded); FormatError unless the
    padding bits are zero."""
    length = -(-end // 8)
    if end % 8 and data[length - 1] & ((1 << (8 - end % 8)) - 1):
        raise FormatError(f"invalid {what}: bytes after its coded values")
    return length
