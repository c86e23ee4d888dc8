"""Hostile .aec files: every truncation, bit flips and random bytes end in FormatError, fast."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aecodec.codec.api import Codec
from aecodec.errors import FormatError


@pytest.fixture(scope="module")
def small_file(codec: Codec) -> bytes:
    pixels = np.random.default_rng(5).integers(0, 256, (40, 70, 3), dtype=np.uint8)
    return codec.compress(pixels, 2)


def test_every_truncation_is_a_format_error(codec: Codec, small_file: bytes) -> None:
    for cut in range(len(small_file)):
        with pytest.raises(FormatError):
            codec.decompress(small_file[:cut])


def test_bit_flips_are_caught_or_harmless(codec: Codec, small_file: bytes) -> None:
    reference = np.asarray(codec.decompress(small_file))
    rng = np.random.default_rng(0)
    caught = 0
    for _ in range(300):
        data = bytearray(small_file)
        bit = int(rng.integers(len(data) * 8))
        data[bit // 8] ^= 1 << (bit % 8)
        try:
            image = codec.decompress(bytes(data))
        except FormatError:
            caught += 1
            continue
        # A flip in the padding bits of a stream's last word changes no symbol: same image.
        assert np.array_equal(np.asarray(image), reference)
    assert caught >= 250


def test_appended_bytes_are_rejected(codec: Codec, small_file: bytes) -> None:
    with pytest.raises(FormatError):
        codec.decompress(small_file + b"\0\0\0\0")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200))
def test_random_bytes(codec: Codec, data: bytes) -> None:
    with pytest.raises(FormatError):
        codec.decompress(data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_header_fields(codec: Codec, small_file: bytes, data) -> None:
    offset = data.draw(st.integers(0, 47))
    value = data.draw(st.integers(0, 255))
    mutated = bytearray(small_file)
    if mutated[offset] == value:
        return
    mutated[offset] = value
    with pytest.raises(FormatError):
        codec.decompress(bytes(mutated))
