"""The Wiener filter: its integer arithmetic against the format's formula, its chunk round trip and checks, the
encoder's fit, the decoder."""

import numpy as np
import pytest
from conftest import without_corrections

from aecodec.bitstream.format import RAW_PIXELS, WIENER_FILTER, pack, unpack
from aecodec.bitstream.golomb import encode_signed
from aecodec.codec import distortion
from aecodec.codec.api import Codec
from aecodec.codec.wiener_filter import (
    WienerFilter,
    apply_filter,
    fit_filter,
    half_diamond,
    pack_filter,
    taps_per_channel,
    unpack_filter,
)
from aecodec.errors import FormatError


def photo(height: int = 70, width: int = 90, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ramp = np.linspace(30, 220, width)[None, :, None] + np.linspace(0, 20, height)[:, None, None] * [1, -1, 0.5]
    stripes = 25 * np.sin(np.arange(width) / 2.3)[None, :, None] * [1, 0.6, 0.3]
    return (ramp + stripes + rng.normal(0, 4, (height, width, 3))).clip(0, 255).astype(np.uint8)


def random_filter(own: int, cross: int, seed: int, spread: int = 60) -> WienerFilter:
    taps = np.random.default_rng(seed).integers(-spread, spread + 1, (3, taps_per_channel(own, cross)))
    return WienerFilter(own, cross, 8, taps)


def formula(pixels: np.ndarray, wiener: WienerFilter) -> np.ndarray:
    """docs/FORMAT.md's definition, pixel by pixel: edge-replicated neighbours, taps in tap order."""
    height, width = pixels.shape[:2]
    p = pixels.astype(np.int64)

    def at(y: int, x: int, plane: int) -> int:
        return int(p[min(max(y, 0), height - 1), min(max(x, 0), width - 1), plane])

    out = np.empty_like(pixels)
    for y in range(height):
        for x in range(width):
            for c in range(3):
                taps, total = iter(wiener.taps[c].tolist()), 0
                for dy, dx in half_diamond(wiener.own):
                    total += next(taps) * (at(y + dy, x + dx, c) + at(y - dy, x - dx, c) - 2 * at(y, x, c))
                for o in (plane for plane in range(3) if plane != c):
                    total += next(taps) * (at(y, x, o) - at(y, x, c))
                    for dy, dx in half_diamond(wiener.cross):
                        total += next(taps) * (at(y + dy, x + dx, o) + at(y - dy, x - dx, o) - 2 * at(y, x, o))
                out[y, x, c] = min(
                    max(at(y, x, c) + (total + (1 << (wiener.shift - 1))) // (1 << wiener.shift), 0), 255
                )
    return out


def test_the_shapes_count_their_taps() -> None:
    assert half_diamond(1) == [(0, 1), (1, 0)]
    assert [len(half_diamond(r)) for r in range(6)] == [0, 2, 6, 12, 20, 30]
    assert taps_per_channel(4, 2) == 20 + 2 * 7 and taps_per_channel(5, 3) == 56


@pytest.mark.parametrize(
    ("own", "cross", "height", "width"), [(1, 0, 9, 11), (4, 2, 12, 17), (5, 3, 7, 5), (2, 1, 1, 1)]
)
def test_the_filter_is_the_formats_formula(own: int, cross: int, height: int, width: int) -> None:
    pixels = photo(height, width, seed=own)
    wiener = random_filter(own, cross, seed=height)
    assert np.array_equal(apply_filter(pixels, wiener), formula(pixels, wiener))


def test_strips_filter_as_the_whole_image_does(monkeypatch) -> None:
    pixels, wiener = photo(), random_filter(4, 2, seed=5)
    whole = apply_filter(pixels, wiener)
    monkeypatch.setattr(distortion, "STRIP_PIXELS", 1)  # a row at a time
    assert np.array_equal(apply_filter(pixels, wiener), whole)


def test_the_largest_taps_stay_within_int32() -> None:
    """Taps at the limit on a checkerboard of 0 and 255, the largest high-passes there are: the int32 sums must
    neither wrap nor differ from the formula."""
    pixels = (np.indices((12, 12)).sum(0) % 2 * 255).astype(np.uint8)[:, :, None].repeat(3, 2)
    pixels[:, :, 1] = 255 - pixels[:, :, 1]
    for sign in (1, -1):
        taps = np.full((3, taps_per_channel(5, 3)), sign * (8 << 10))
        wiener = WienerFilter(5, 3, 10, taps)
        assert np.array_equal(apply_filter(pixels, wiener), formula(pixels, wiener))


def test_zero_taps_leave_the_image_alone() -> None:
    pixels = photo()
    assert np.array_equal(
        apply_filter(pixels, WienerFilter(3, 1, 8, np.zeros((3, taps_per_channel(3, 1)), int))), pixels
    )


def test_a_filter_round_trips_through_its_payload() -> None:
    wiener = random_filter(5, 3, seed=1, spread=2048)
    decoded = unpack_filter(pack_filter(wiener))
    assert (decoded.own, decoded.cross, decoded.shift) == (5, 3, 8) and np.array_equal(decoded.taps, wiener.taps)


ZEROS_1_0 = encode_signed([0] * 3 * taps_per_channel(1, 0), 0)  # radii 1 and 0: 4 taps per channel


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\x01\x01\x00\x08", "5-byte prefix"),
        (b"\x02\x01\x00\x08\x00" + ZEROS_1_0, "version 2"),
        (b"\x01\x00\x00\x08\x00" + ZEROS_1_0, "radii 0, 0"),
        (b"\x01\x06\x00\x08\x00" + ZEROS_1_0, "radii 6, 0"),
        (b"\x01\x01\x04\x08\x00" + ZEROS_1_0, "radii 1, 4"),
        (b"\x01\x01\x00\x03\x00" + ZEROS_1_0, "shift 3"),
        (b"\x01\x01\x00\x0b\x00" + ZEROS_1_0, "shift 11"),
        (b"\x01\x01\x00\x08\x10" + ZEROS_1_0, "order 16"),
        (b"\x01\x01\x00\x08\x00" + ZEROS_1_0[:-1], "end early"),
        (b"\x01\x01\x00\x08\x00" + ZEROS_1_0 + b"\x00", "after its coded values"),
        (b"\x01\x01\x00\x04\x00" + encode_signed([129] + [0] * 11, 0), "value 129 beyond"),  # 8 << 4 = 128
    ],
)
def test_malformed_filters_raise_format_error(payload: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        unpack_filter(payload)


def test_the_fit_undoes_a_blur_and_leaves_an_exact_decode_alone() -> None:
    original = photo(80, 120)
    padded = np.pad(original.astype(float), ((1, 1), (1, 1), (0, 0)), mode="edge")
    blurred = (padded[1:-1, 1:-1] * 4 + padded[:-2, 1:-1] + padded[2:, 1:-1] + padded[1:-1, :-2] + padded[1:-1, 2:]) / 8
    decoded = blurred.round().astype(np.uint8)
    payload = fit_filter(decoded, original, lagrangian=0.5)
    assert payload is not None
    filtered = apply_filter(decoded, unpack_filter(payload))
    before, after = (((d.astype(int) - original) ** 2).sum() for d in (decoded, filtered))
    assert after < 0.5 * before
    assert fit_filter(original, original, lagrangian=0.5) is None
    assert fit_filter(decoded, original, lagrangian=1e9) is None  # no bits are worth it


def test_the_fit_keeps_no_taps_for_a_channel_already_right() -> None:
    original = photo(80, 120)
    decoded = original.copy()
    decoded[:, :, 0] = (original[:, :, 0].astype(int) + original[:, :, 1]) // 2  # the red channel takes green's detail
    payload = fit_filter(decoded, original, lagrangian=0.5)
    assert payload is not None
    taps = unpack_filter(payload).taps
    assert taps[0].any() and not taps[1].any() and not taps[2].any()


def _forged(data: bytes, wiener: WienerFilter) -> bytes:
    return pack(unpack(data).with_chunk(WIENER_FILTER, pack_filter(wiener)))


def test_the_decoder_filters_what_it_would_show_before_the_field(codec: Codec) -> None:
    plain = without_corrections(unpack(codec.compress(photo(), 3)))
    wiener = random_filter(2, 1, seed=3, spread=20)
    assert np.array_equal(
        np.asarray(codec.decompress(_forged(pack(plain), wiener))), apply_filter(codec._shown(plain), wiener)
    )


def test_the_encoder_writes_a_filter_only_where_it_pays(codec: Codec) -> None:
    image = photo(100, 140)
    data = codec.compress(image, 3)
    file = unpack(data)
    assert file.chunk(WIENER_FILTER) is not None  # a random model's decode is far off: a filter pays
    plain = codec._shown(without_corrections(file))
    shown = np.asarray(codec.decompress(data))
    assert ((shown.astype(int) - image) ** 2).sum() < ((plain.astype(int) - image) ** 2).sum()
    assert unpack(codec.compress(image[:, :, 0], 3)).chunk(WIENER_FILTER) is None  # colour images only
    assert unpack(codec.compress(image, 3, effort=1)).chunk(WIENER_FILTER) is None  # the fastest encoder fits none


def test_a_filter_next_to_raw_pixels_is_rejected(codec: Codec) -> None:
    data = codec.compress(photo(6, 7), 1)
    assert unpack(data).chunk(RAW_PIXELS) is not None
    with pytest.raises(FormatError, match="Wiener filter chunk, but raw pixels"):
        codec.decompress(_forged(data, random_filter(1, 0, seed=0)))
