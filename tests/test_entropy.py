"""Tests of the range-coding layer: exact round trips, robustness to garbage, overhead and speed."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aecodec.bitstream.entropy import (
    MAX_ROW_TOTAL,
    SymbolDecoder,
    SymbolEncoder,
    ideal_bits,
)
from aecodec.errors import FormatError

U64 = (1 << 64) - 1


def random_table(rng: np.random.Generator, n: int, k: int, kind: str) -> np.ndarray:
    """An (n, k) table: uniform noise, one giant among ones, or rows summing to the 2**24 cap."""
    if kind == "random":
        return rng.integers(1, 1000, size=(n, k))
    if kind == "peaked":
        freqs = np.ones((n, k), dtype=np.int64)
        freqs[np.arange(n), rng.integers(0, k, n)] = MAX_ROW_TOTAL - (k - 1)
        return freqs
    freqs = rng.integers(1, MAX_ROW_TOTAL // k + 1, size=(n, k))
    freqs[:, 0] += MAX_ROW_TOTAL - freqs.sum(axis=1)
    return freqs


def sample(rng: np.random.Generator, freqs: np.ndarray) -> np.ndarray:
    """One symbol per row drawn from that row's own frequencies."""
    cdf = np.cumsum(freqs, axis=1)
    return (cdf <= rng.integers(0, cdf[:, -1])[:, None]).sum(axis=1)


def realistic_table(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """Peaked tables like a prior's: softmax of random logits (~5 bits) quantized to 2**16."""
    logits = rng.normal(size=(n, k)) * 2.5
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    return np.maximum(1, np.floor(probs * (1 << 16))).astype(np.int64)


def reference_encode(symbols: np.ndarray, freqs: np.ndarray) -> bytes:
    """Transcription of the encoder pseudo-code in docs/FORMAT.md, to pin the stream format."""
    out: list[int] = []
    lower, rng, pending = 0, U64, None

    def flush(carry: bool) -> None:
        count, first = pending
        out.extend([(first + carry) & 0xFFFFFFFF] + [0 if carry else 0xFFFFFFFF] * (count - 1))

    for symbol, row in zip(symbols.tolist(), freqs.tolist(), strict=True):
        k, scale_f = len(row), float(MAX_ROW_TOTAL - len(row)) / float(sum(row))
        cum = float(sum(row[:symbol]))
        left = math.floor(cum * scale_f) + symbol
        right = MAX_ROW_TOTAL if symbol == k - 1 else math.floor((cum + row[symbol]) * scale_f) + symbol + 1
        scale = rng >> 24
        rng = scale * (right - left)
        new_lower = (lower + scale * left) & U64
        if pending and (new_lower + rng) & U64 > new_lower:
            flush(new_lower < lower)
            pending = None
        lower = new_lower
        if rng < 1 << 32:
            rng <<= 32
            word, lower = lower >> 32, (lower << 32) & U64
            if pending:
                pending = (pending[0] + 1, pending[1])
            elif (lower + rng) & U64 > lower:
                out.append(word)
            else:
                pending = (1, word)
    if rng != U64:
        point = (lower + (1 << 32) - 1) & U64
        if pending:
            flush(point < lower)
        out.append(point >> 32)
        if ((lower + rng) & U64) >> 32 == point >> 32:
            out.append(0)
    return np.array(out, dtype="<u4").tobytes()


def encode_groups(groups: list[tuple[np.ndarray, np.ndarray]]) -> bytes:
    encoder = SymbolEncoder()
    for symbols, freqs in groups:
        encoder.encode(symbols, freqs)
    return encoder.finish()


@pytest.mark.parametrize("kind", ["random", "peaked", "full"])
@pytest.mark.parametrize("k", [2, 3, 256, 512])
@pytest.mark.parametrize("n", [1, 2000])
def test_round_trip(n: int, k: int, kind: str) -> None:
    rng = np.random.default_rng(n * 1000 + k)
    freqs = random_table(rng, n, k, kind)
    symbols = sample(rng, freqs)
    decoder = SymbolDecoder(encode_groups([(symbols, freqs)]))
    decoded = decoder.decode(freqs)
    assert decoded.dtype == np.int64
    np.testing.assert_array_equal(decoded, symbols)
    decoder.check_exhausted()


def test_unlikely_symbols_round_trip() -> None:
    """Symbols of frequency 1 next to a 2**24 - K giant are the hardest case for the coder."""
    rng = np.random.default_rng(7)
    freqs = random_table(rng, 500, 512, "peaked")
    symbols = (np.argmax(freqs, axis=1) + rng.integers(1, 512, 500)) % 512
    np.testing.assert_array_equal(SymbolDecoder(encode_groups([(symbols, freqs)])).decode(freqs), symbols)


def test_groups_decode_in_encoding_order() -> None:
    rng = np.random.default_rng(1)
    groups = []
    for n, k in [(300, 512), (1, 2), (700, 256), (50, 3)]:
        freqs = random_table(rng, n, k, "random")
        groups.append((sample(rng, freqs), freqs))
    decoder = SymbolDecoder(encode_groups(groups))
    for symbols, freqs in groups:
        np.testing.assert_array_equal(decoder.decode(freqs), symbols)
    decoder.check_exhausted()


def test_empty_stream() -> None:
    assert encode_groups([(np.zeros(0, dtype=np.int64), np.ones((0, 4), dtype=np.int64))]) == b""
    decoder = SymbolDecoder(b"")
    assert decoder.decode(np.ones((0, 4), dtype=np.int64)).shape == (0,)
    decoder.check_exhausted()


@pytest.mark.parametrize("seed", range(30))
def test_stream_matches_documented_reference_encoder(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.choice([2, 3, 17, 256, 512]))
    freqs = random_table(rng, int(rng.integers(1, 150)), k, ["random", "peaked", "full"][seed % 3])
    symbols = sample(rng, freqs)
    assert encode_groups([(symbols, freqs)]) == reference_encode(symbols, freqs)


def test_leftover_words_are_detected() -> None:
    rng = np.random.default_rng(3)
    freqs = random_table(rng, 100, 256, "random")
    symbols = sample(rng, freqs)
    decoder = SymbolDecoder(encode_groups([(symbols, freqs)]) + bytes(8))
    np.testing.assert_array_equal(decoder.decode(freqs), symbols)
    with pytest.raises(FormatError, match="left over"):
        decoder.check_exhausted()


def test_partial_word_is_a_format_error() -> None:
    with pytest.raises(FormatError, match="32-bit words"):
        SymbolDecoder(b"\x00" * 7)


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(max_size=256),
    seed=st.integers(0, 2**32 - 1),
    k=st.sampled_from([2, 5, 256, 512]),
)
def test_garbage_never_crashes(data: bytes, seed: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    freqs = random_table(rng, int(rng.integers(1, 300)), k, ["random", "peaked", "full"][seed % 3])
    data = data[: len(data) // 4 * 4]
    try:
        decoder = SymbolDecoder(data)
        decoded = decoder.decode(freqs)
        decoder.check_exhausted()
    except FormatError:
        return
    assert decoded.shape == (len(freqs),)
    assert 0 <= decoded.min() <= decoded.max() < k


def test_truncated_and_corrupted_streams_never_crash() -> None:
    rng = np.random.default_rng(11)
    freqs = random_table(rng, 2000, 256, "random")
    stream = bytearray(encode_groups([(sample(rng, freqs), freqs)]))
    candidates = [bytes(stream[:cut]) for cut in range(0, len(stream), 4)]
    for _ in range(200):
        flipped = bytearray(stream)
        flipped[rng.integers(len(flipped))] ^= 1 << int(rng.integers(8))
        candidates.append(bytes(flipped))
    for data in candidates:
        try:
            decoder = SymbolDecoder(data)
            assert decoder.decode(freqs).shape == (2000,)
            decoder.check_exhausted()
        except FormatError:
            pass


@pytest.mark.parametrize(
    ("symbols", "freqs", "message"),
    [
        ([0], [[1.0, 2.0]], "integer dtype"),
        ([0], [[0, 2]], ">= 1"),
        ([0], [[MAX_ROW_TOTAL, 1]], "2\\*\\*24"),
        ([0], [[2**62, 2**62]], "2\\*\\*24"),
        ([0], [[5]], "shape"),
        ([0, 1], [[1, 2]], "shape"),
        ([2], [[1, 2]], "0..1"),
        ([-1], [[1, 2]], "0..1"),
        ([0.0], [[1, 2]], "integer array"),
    ],
)
def test_invalid_arguments_are_value_errors(symbols: list, freqs: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SymbolEncoder().encode(np.array(symbols), np.array(freqs))
    with pytest.raises(ValueError, match=message):
        ideal_bits(np.array(symbols), np.array(freqs))


def test_ideal_bits_known_value() -> None:
    bits = ideal_bits(np.array([0, 1]), np.array([[1, 3], [1, 3]]))
    assert bits == pytest.approx(2 + math.log2(4 / 3))


def test_overhead_against_ideal_bits() -> None:
    """10**5 symbols from peaked K=256 tables cost less than 0.5% over their cross-entropy."""
    rng = np.random.default_rng(2024)
    groups = []
    for _ in range(10):
        freqs = realistic_table(rng, 10_000, 256)
        groups.append((sample(rng, freqs), freqs))
    stream = encode_groups(groups)
    ideal = sum(ideal_bits(symbols, freqs) for symbols, freqs in groups)
    overhead = len(stream) * 8 / ideal - 1
    print(f"\nrange coder overhead: {100 * overhead:.4f}% ({ideal / 1e5:.2f} bits/symbol ideal)")
    assert 4 < ideal / 1e5 < 6
    assert 0 <= overhead < 0.005
    decoder = SymbolDecoder(stream)
    for symbols, freqs in groups:
        np.testing.assert_array_equal(decoder.decode(freqs), symbols)
    decoder.check_exhausted()


def test_speed_at_k512() -> None:
    """Coding 10**4 symbols at K=512 (argument checks included) takes milliseconds, not seconds."""
    rng = np.random.default_rng(5)
    freqs = realistic_table(rng, 10_000, 512)
    symbols = sample(rng, freqs)
    encode_s = decode_s = math.inf
    for _ in range(3):
        start = time.perf_counter()
        stream = encode_groups([(symbols, freqs)])
        middle = time.perf_counter()
        decoded = SymbolDecoder(stream).decode(freqs)
        encode_s, decode_s = (
            min(encode_s, middle - start),
            min(decode_s, time.perf_counter() - middle),
        )
    np.testing.assert_array_equal(decoded, symbols)
    print(f"\nK=512, 10**4 symbols: encode {1e3 * encode_s:.1f} ms, decode {1e3 * decode_s:.1f} ms")
    assert encode_s < 0.5
    assert decode_s < 0.5
