"""Range coding of symbol groups with exact integer frequency tables, over constriction.

Tables are integers so that encoder and decoder feed constriction bit-identical numbers on
every machine; constriction quantizes each row to its 24-bit precision deterministically.
"""

from __future__ import annotations

from collections.abc import Callable

import constriction
import numpy as np

from aecodec.errors import FormatError

PRECISION_BITS = 24
MAX_ROW_TOTAL = 1 << PRECISION_BITS
MIN_ALPHABET = 2
MAX_ALPHABET = 1 << 16
WORD_DTYPE = np.dtype("<u4")

_CATEGORICAL = constriction.stream.model.Categorical(perfect=False)


def _checked_probabilities(freqs: np.ndarray) -> np.ndarray:
    """Validate an (n, K) integer frequency table; return it as exact float64 for constriction."""
    freqs = np.asarray(freqs)
    if not np.issubdtype(freqs.dtype, np.integer):
        raise ValueError(f"frequency tables must have an integer dtype, got {freqs.dtype}")
    if freqs.ndim != 2 or not MIN_ALPHABET <= freqs.shape[1] <= MAX_ALPHABET:
        raise ValueError(
            f"frequency table must have shape (n, K) with K in {MIN_ALPHABET}..{MAX_ALPHABET}, got {freqs.shape}"
        )
    probabilities = np.ascontiguousarray(freqs, dtype=np.float64)
    # Summing in float64 cannot wrap, so an absurd entry is caught rather than hidden by overflow.
    if len(probabilities) and (probabilities.min() < 1 or probabilities.sum(axis=1).max() > MAX_ROW_TOTAL):
        raise ValueError(f"frequencies must be >= 1 with every row summing to at most 2**{PRECISION_BITS}")
    return probabilities


def _checked_symbols(symbols: np.ndarray, count: int | None, alphabet: int) -> np.ndarray:
    """Validate integer symbols (n,) in 0..alphabet-1 (and n == ``count`` unless None); return them as int32."""
    symbols = np.asarray(symbols)
    if not np.issubdtype(symbols.dtype, np.integer) or symbols.ndim != 1 or count not in (None, symbols.size):
        raise ValueError(
            f"symbols must be an integer array of shape ({count or 'n'},), got {symbols.dtype} {symbols.shape}"
        )
    if symbols.size and (symbols.min() < 0 or symbols.max() >= alphabet):
        raise ValueError(f"symbols must lie in 0..{alphabet - 1}")
    return symbols.astype(np.int32)


def _checked_group(symbols: np.ndarray, freqs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate symbols (n,) against their table (n, K); return int32 symbols, float64 table."""
    probabilities = _checked_probabilities(freqs)
    return _checked_symbols(symbols, len(probabilities), probabilities.shape[1]), probabilities


class SymbolEncoder:
    """Range-codes groups of symbols, in order, into one tile stream."""

    def __init__(self) -> None:
        self._encoder = constriction.stream.queue.RangeEncoder()

    def encode(self, symbols: np.ndarray, freqs: np.ndarray) -> None:
        """Append symbols[i] coded with frequency row freqs[i] (shape (n,) and (n, K))."""
        symbols, probabilities = _checked_group(symbols, freqs)
        if symbols.size:
            self._encoder.encode(symbols, _CATEGORICAL, probabilities)

    def encode_iid(self, symbols: np.ndarray, row: np.ndarray) -> None:
        """Append symbols (n,) all coded with the one frequency row ``row`` (K,)."""
        probabilities = _checked_probabilities(np.asarray(row)[None])
        symbols = _checked_symbols(symbols, None, probabilities.shape[1])
        if symbols.size:
            self._encoder.encode(symbols, constriction.stream.model.Categorical(probabilities[0], perfect=False))

    def finish(self) -> bytes:
        """The stream so far as little-endian 32-bit words (empty if nothing was encoded)."""
        return self._encoder.get_compressed().astype(WORD_DTYPE).tobytes()


class SymbolDecoder:
    """Decodes the groups of one tile stream, in the order they were encoded."""

    def __init__(self, data: bytes) -> None:
        if len(data) % WORD_DTYPE.itemsize:
            raise FormatError(f"tile stream of {len(data)} bytes is not a whole number of 32-bit words")
        self._decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(data, dtype=WORD_DTYPE).astype(np.uint32))

    def decode(self, freqs: np.ndarray) -> np.ndarray:
        """Decode one symbol per row of the (n, K) table; past the end the coder reads zeros."""
        probabilities = _checked_probabilities(freqs)
        if not len(probabilities):
            return np.zeros(0, dtype=np.int64)
        return self._decoded(lambda: self._decoder.decode(_CATEGORICAL, probabilities))

    @staticmethod
    def _decoded(decode: Callable[[], np.ndarray]) -> np.ndarray:
        """Run one constriction decode call; its failures become FormatError."""
        try:
            symbols = decode()
        except (KeyboardInterrupt, SystemExit):
            raise
        # constriction reports invalid data as AssertionError; a Rust panic would surface as
        # pyo3's PanicException, which derives from BaseException only.
        except BaseException as exc:
            raise FormatError("tile stream is corrupted (range decoding failed)") from exc
        return symbols.astype(np.int64)

    def decode_iid(self, row: np.ndarray, count: int) -> np.ndarray:
        """Decode ``count`` symbols all coded with the frequency row ``row`` (K,)."""
        probabilities = _checked_probabilities(np.asarray(row)[None])
        if not count:
            return np.zeros(0, dtype=np.int64)
        model = constriction.stream.model.Categorical(probabilities[0], perfect=False)
        return self._decoded(lambda: self._decoder.decode(model, count))

    def check_exhausted(self) -> None:
        """Raise FormatError if the stream surely holds data beyond the symbols decoded so far.

        constriction only knows "maybe exhausted": one stray trailing word usually goes unnoticed,
        two or more are always caught; the tile's index CRC is the real integrity check.
        """
        if not self._decoder.maybe_exhausted():
            raise FormatError("tile stream has data left over after its last symbol (file corrupted)")


def ideal_bits(symbols: np.ndarray, freqs: np.ndarray) -> float:
    """Cross-entropy -sum log2(f[sym] / row total) in bits: the size an ideal coder would reach."""
    symbols, probabilities = _checked_group(symbols, freqs)
    chosen = probabilities[np.arange(symbols.size), symbols]
    return float(np.sum(np.log2(probabilities.sum(axis=1)) - np.log2(chosen)))
