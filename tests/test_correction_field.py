"""The correction field: integer interpolation, its chunk round trip and checks, the encoder's fit, the decoder."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import without_corrections

from aecodec.bitstream.format import CORRECTION_FIELD, RAW_PIXELS, pack, unpack
from aecodec.bitstream.golomb import encode_signed
from aecodec.codec import correction_field
from aecodec.codec.api import Codec
from aecodec.codec.correction_field import (
    MAX_CORRECTION,
    add_field,
    field_shape,
    fit_field,
    pack_field,
    unpack_field,
)
from aecodec.errors import FormatError


def smooth_photo(height: int = 90, width: int = 140, seed: int = 0) -> np.ndarray:
    ramp = np.linspace(40, 200, width)[None, :, None] + np.linspace(0, 30, height)[:, None, None] * [1, 0.5, -1]
    return (ramp + np.random.default_rng(seed).normal(0, 3, (height, width, 3))).clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize(("height", "width", "exponent"), [(100, 77, 5), (64, 64, 6), (300, 130, 7), (1, 1, 5)])
def test_the_field_is_bilinear_interpolation_between_cell_centres(height: int, width: int, exponent: int) -> None:
    values = np.random.default_rng(height).integers(-40, 41, field_shape(width, height, exponent))
    out = add_field(np.full((height, width, 3), 128, np.uint8), values, 3, exponent)
    grid = torch.tensor(values * 3 / 4, dtype=torch.float64)[None]
    expected = F.interpolate(grid, scale_factor=1 << exponent, mode="bilinear", align_corners=False)
    expected = expected[0, :, :height, :width].permute(1, 2, 0).numpy()
    assert np.abs(out.astype(float) - 128 - expected).max() <= 0.5 + 1e-9


def test_strips_add_the_same_field_as_the_whole_image(monkeypatch) -> None:
    pixels, values = smooth_photo(), np.random.default_rng(3).integers(-9, 10, field_shape(140, 90, 5))
    whole = add_field(pixels, values, 5, 5)
    monkeypatch.setattr(correction_field, "STRIP_PIXELS", 1)  # a row at a time
    assert np.array_equal(add_field(pixels, values, 5, 5), whole)


def test_the_field_rounds_halves_up_and_clips() -> None:
    pixels = np.array([[[0, 100, 255]]], np.uint8)
    assert add_field(pixels, np.array([-8, 2, 8]).reshape(3, 1, 1), 1, 5).tolist() == [[[0, 101, 255]]]


def test_a_field_round_trips_through_its_payload() -> None:
    values = np.random.default_rng(1).integers(-30, 31, field_shape(200, 100, 6))
    decoded, step, exponent = unpack_field(pack_field(values, 5, 6), 200, 100)
    assert step == 5 and exponent == 6 and np.array_equal(decoded, values)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\x01\x06\x04", "4-byte prefix"),
        (b"\x02\x06\x04\x00\xff", "version 2"),
        (b"\x01\x04\x04\x00\xff", "cell exponent 4"),
        (b"\x01\x08\x04\x00\xff", "cell exponent 8"),
        (b"\x01\x06\x00\x00\xff", "step 0"),
        (b"\x01\x06\x04\x10\xff", "order 16"),
        (b"\x01\x06\x04\x00", "end early"),  # three values, no code
        (b"\x01\x06\x04\x00\xe0\x00", "after its coded values"),  # three zeros, then a byte more
        (b"\x01\x06\xff\x00" + encode_signed([-8, 0, 0], 0), "beyond 255"),  # step 255: at most 4 steps
        (b"\x01\x06\xff\x00" + encode_signed([9, 0, 0], 0), "value 9 beyond"),  # a difference of over 2 x 4
    ],
)
def test_malformed_fields_raise_format_error(payload: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        unpack_field(payload, 64, 64)  # one 64-pixel cell, three values


def test_differences_that_add_up_beyond_the_limit_raise_format_error() -> None:
    largest = MAX_CORRECTION // 200
    staircase = np.cumsum(np.full(8, largest))[None, None].repeat(3, 0)  # each difference within the limit
    with pytest.raises(FormatError, match="beyond 255"):
        unpack_field(pack_field(staircase, 200, 5), 256, 32)


def test_the_fit_corrects_a_slow_drift_and_leaves_an_exact_decode_alone() -> None:
    original = smooth_photo()
    drift = np.linspace(-6, 6, original.shape[1])[None, :, None] * [1, -1, 0.5]
    decoded = (original + drift).round().clip(0, 255).astype(np.uint8)
    payload = fit_field(decoded, original, lagrangian=0.5)
    assert payload is not None
    corrected = add_field(decoded, *unpack_field(payload, original.shape[1], original.shape[0]))
    before, after = (((d.astype(int) - original) ** 2).sum() for d in (decoded, corrected))
    assert after < 0.5 * before
    assert fit_field(original, original, lagrangian=0.5) is None
    assert fit_field(decoded, original, lagrangian=1e9) is None  # no bits are worth it


def _forged(data: bytes, values: np.ndarray, step: int, exponent: int) -> bytes:
    return pack(unpack(data).with_chunk(CORRECTION_FIELD, pack_field(values, step, exponent)))


def test_the_decoder_adds_the_field_to_what_it_would_show(codec: Codec) -> None:
    plain = without_corrections(unpack(codec.compress(smooth_photo(), 3)))
    values = np.random.default_rng(2).integers(-5, 6, field_shape(140, 90, 5))
    decoded = np.asarray(codec.decompress(_forged(pack(plain), values, 4, 5)))
    assert np.array_equal(decoded, add_field(codec._shown(plain), values, 4, 5))


def test_the_encoder_writes_a_field_only_where_it_pays(codec: Codec) -> None:
    image = smooth_photo(140, 200)
    data = codec.compress(image, 1)
    file = unpack(data)
    assert file.chunk(CORRECTION_FIELD) is not None  # a random model's decode is far off: the field pays
    shown, corrected = codec._shown(file.without_chunk(CORRECTION_FIELD)), np.asarray(codec.decompress(data))
    assert ((corrected.astype(int) - image) ** 2).sum() < ((shown.astype(int) - image) ** 2).sum()
    gray = codec.compress(image[:, :, 0], 1)
    assert unpack(gray).chunk(CORRECTION_FIELD) is None  # colour images only
    assert unpack(codec.compress(image, 1, effort=1)).chunk(CORRECTION_FIELD) is None  # the fastest encoder fits none


def test_a_field_next_to_raw_pixels_is_rejected(codec: Codec) -> None:
    data = codec.compress(smooth_photo(6, 7), 1)
    assert unpack(data).chunk(RAW_PIXELS) is not None
    with pytest.raises(FormatError, match="correction field chunk, but raw pixels"):
        codec.decompress(_forged(data, np.zeros(field_shape(7, 6, 5), np.int64), 4, 5))
