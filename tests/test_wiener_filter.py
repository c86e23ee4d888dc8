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
    BIN_MARGIN,
    Guides,
    WienerFilter,
    _bins,
    _slabs,
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


def mixed_photo(height: int, width: int, seed: int) -> np.ndarray:
    """A flat third, a third of :func:`photo`'s stripes and a third of noise: every activity bin occurs."""
    pixels = photo(height, width, seed)
    third = max(1, width // 3)
    pixels[:, :third] = 120 + np.arange(height)[:, None, None] // 4
    pixels[:, 2 * third :] = np.random.default_rng(seed).integers(0, 256, pixels[:, 2 * third :].shape)
    return pixels


def random_filter(
    own: int, cross: int, seed: int, spread: int = 60, guides: int = 0, bins: tuple[int, ...] = (0, 0, 0, 0)
) -> WienerFilter:
    shape = (bins[-1] + 1, 3, taps_per_channel(own, cross, guides))
    return WienerFilter(own, cross, 8, np.random.default_rng(seed).integers(-spread, spread + 1, shape), guides, bins)


def random_guides(pixels: np.ndarray, seed: int) -> Guides:
    """Two earlier 'stages' of a decode: the pixels plus noise, and a coarser copy."""
    rng = np.random.default_rng(seed)
    noisy = (pixels + rng.normal(0, 6, pixels.shape)).clip(0, 255).astype(np.uint8)
    return Guides(noisy, (pixels // 8 * 8).astype(np.uint8))


def formula(pixels: np.ndarray, wiener: WienerFilter, guides: Guides | None = None) -> np.ndarray:
    """docs/FORMAT.md's definition, pixel by pixel: edge-replicated neighbours, each pixel's activity bin, taps in
    tap order."""
    height, width = pixels.shape[:2]
    planes = [pixels] + [[guides.unfiltered, guides.base][k] for k in range(2) if wiener.guides >> k & 1]
    p = np.concatenate(planes, axis=2).astype(np.int64)

    def at(y: int, x: int, plane: int) -> int:
        return int(p[min(max(y, 0), height - 1), min(max(x, 0), width - 1), plane])

    def laplacian(y: int, x: int) -> int:
        def g(y: int, x: int) -> int:
            return sum(at(y, x, c) for c in range(3))

        return abs(2 * g(y, x) - g(y - 1, x) - g(y + 1, x)) + abs(2 * g(y, x) - g(y, x - 1) - g(y, x + 1))

    out = np.empty_like(pixels)
    for y in range(height):
        for x in range(width):
            activity = sum(laplacian(y + dy, x + dx) for dy in range(-2, 3) for dx in range(-2, 3))
            number = wiener.bins[sum(activity >= threshold for threshold in (225, 600, 1500))]
            for c in range(3):
                taps, total = iter(wiener.taps[number, c].tolist()), 0
                for dy, dx in half_diamond(wiener.own):
                    total += next(taps) * (at(y + dy, x + dx, c) + at(y - dy, x - dx, c) - 2 * at(y, x, c))
                guide_planes = [3 + 3 * k + c for k in range(len(planes) - 1)]
                for o in [plane for plane in range(3) if plane != c] + guide_planes:
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
    assert taps_per_channel(4, 2, guides=1) == 20 + 3 * 7 and taps_per_channel(5, 3, guides=3) == 82


@pytest.mark.parametrize(
    ("own", "cross", "guides", "bins", "height", "width"),
    [
        (1, 0, 0, (0, 0, 0, 0), 9, 11),
        (4, 2, 0, (0, 0, 0, 0), 12, 17),
        (5, 3, 0, (0, 0, 0, 0), 7, 5),
        (2, 1, 0, (0, 0, 0, 0), 1, 1),
        (2, 1, 1, (0, 0, 1, 1), 10, 13),
        (3, 2, 2, (0, 1, 2, 3), 9, 12),
        (4, 2, 3, (0, 1, 1, 2), 8, 15),
    ],
)
def test_the_filter_is_the_formats_formula(
    own: int, cross: int, guides: int, bins: tuple[int, ...], height: int, width: int
) -> None:
    pixels = mixed_photo(height, width, seed=own)
    wiener, stages = random_filter(own, cross, seed=height, guides=guides, bins=bins), random_guides(pixels, seed=1)
    assert np.array_equal(apply_filter(pixels, wiener, stages), formula(pixels, wiener, stages))


def test_every_activity_bin_occurs_in_the_mixed_photos() -> None:
    """The formula tests above see every bin (else a wrong bin could pass them)."""
    for height, width, seed in ((10, 13, 2), (9, 12, 3), (8, 15, 4)):
        pixels = mixed_photo(height, width, seed)
        ((_, slab),) = list(_slabs([pixels], BIN_MARGIN))
        assert set(np.unique(_bins(slab, BIN_MARGIN))) == {0, 1, 2, 3}


def test_strips_filter_as_the_whole_image_does(monkeypatch) -> None:
    pixels = photo()
    for wiener in (random_filter(4, 2, seed=5), random_filter(3, 1, seed=6, guides=3, bins=(0, 1, 1, 2))):
        stages = random_guides(pixels, seed=2)
        whole = apply_filter(pixels, wiener, stages)
        monkeypatch.setattr(distortion, "STRIP_PIXELS", 1)  # a row at a time
        assert np.array_equal(apply_filter(pixels, wiener, stages), whole)
        monkeypatch.undo()


def test_the_largest_taps_stay_within_int32() -> None:
    """Taps at the limit on a checkerboard of 0 and 255, the largest high-passes there are, with both guides and
    four filters: the int32 sums must neither wrap nor differ from the formula."""
    pixels = (np.indices((12, 12)).sum(0) % 2 * 255).astype(np.uint8)[:, :, None].repeat(3, 2)
    pixels[:, :, 1] = 255 - pixels[:, :, 1]
    stages = Guides(255 - pixels, pixels.copy())
    for sign in (1, -1):
        taps = np.full((4, 3, taps_per_channel(5, 3, 3)), sign * (8 << 10))
        wiener = WienerFilter(5, 3, 10, taps, 3, (0, 1, 2, 3))
        assert np.array_equal(apply_filter(pixels, wiener, stages), formula(pixels, wiener, stages))


def test_zero_taps_leave_the_image_alone() -> None:
    pixels = photo()
    assert np.array_equal(
        apply_filter(pixels, WienerFilter(3, 1, 8, np.zeros((1, 3, taps_per_channel(3, 1)), int))), pixels
    )


def test_a_filter_round_trips_through_its_payload() -> None:
    for wiener in (random_filter(5, 3, seed=1, spread=2048), random_filter(4, 2, 2, 2048, 3, (0, 0, 1, 2))):
        decoded = unpack_filter(pack_filter(wiener))
        assert (decoded.own, decoded.cross, decoded.shift, decoded.guides, decoded.bins) == (
            wiener.own,
            wiener.cross,
            8,
            wiener.guides,
            wiener.bins,
        )
        assert np.array_equal(decoded.taps, wiener.taps)


def test_a_version_1_filter_still_decodes() -> None:
    """Files of the previous release: one filter, no guides, no partition byte."""
    taps = np.arange(3 * taps_per_channel(2, 1)) - 20
    decoded = unpack_filter(bytes([1, 2, 1, 8, 3]) + encode_signed(taps.tolist(), 3))
    assert (decoded.own, decoded.cross, decoded.shift, decoded.guides, decoded.bins) == (2, 1, 8, 0, (0, 0, 0, 0))
    assert np.array_equal(decoded.taps, taps.reshape(1, 3, -1))


ZEROS_1_0 = encode_signed([0] * 3 * taps_per_channel(1, 0), 0)  # radii 1 and 0: 4 taps per channel


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\x01\x01\x00\x08", "5-byte prefix"),
        (b"\x03\x01\x00\x08\x00\x00\x00" + ZEROS_1_0, "version 3"),
        (b"\x02\x01\x00\x08\x00\x00", "7-byte prefix"),
        (b"\x01\x00\x00\x08\x00" + ZEROS_1_0, "radii 0, 0"),
        (b"\x01\x06\x00\x08\x00" + ZEROS_1_0, "radii 6, 0"),
        (b"\x01\x01\x04\x08\x00" + ZEROS_1_0, "radii 1, 4"),
        (b"\x01\x01\x00\x03\x00" + ZEROS_1_0, "shift 3"),
        (b"\x01\x01\x00\x0b\x00" + ZEROS_1_0, "shift 11"),
        (b"\x01\x01\x00\x08\x10" + ZEROS_1_0, "order 16"),
        (b"\x01\x01\x00\x08\x00" + ZEROS_1_0[:-1], "end early"),
        (b"\x01\x01\x00\x08\x00" + ZEROS_1_0 + b"\x00", "after its coded values"),
        (b"\x01\x01\x00\x04\x00" + encode_signed([129] + [0] * 11, 0), "value 129 beyond"),  # 8 << 4 = 128
        (b"\x02\x01\x00\x08\x04\x00\x00" + ZEROS_1_0, "guides 4"),
        (b"\x02\x01\x00\x08\x00\x08\x00" + ZEROS_1_0, "partition 8"),
        (b"\x02\x01\x00\x08\x00\x01\x00" + ZEROS_1_0, "end early"),  # two filters, one filter's taps
        (b"\x02\x01\x00\x08\x01\x00\x00" + ZEROS_1_0, "end early"),  # a guide's taps missing
        (b"\x02\x01\x00\x08\x00\x00\x00" + ZEROS_1_0, None),  # well formed
    ],
)
def test_malformed_filters_raise_format_error(payload: bytes, message: str | None) -> None:
    if message is None:
        assert not unpack_filter(payload).taps.any()
        return
    with pytest.raises(FormatError, match=message):
        unpack_filter(payload)


def blurred(pixels: np.ndarray) -> np.ndarray:
    padded = np.pad(pixels.astype(float), ((1, 1), (1, 1), (0, 0)), mode="edge")
    mean = (padded[1:-1, 1:-1] * 4 + padded[:-2, 1:-1] + padded[2:, 1:-1] + padded[1:-1, :-2] + padded[1:-1, 2:]) / 8
    return mean.round().astype(np.uint8)


def test_the_fit_undoes_a_blur_and_leaves_an_exact_decode_alone() -> None:
    original = photo(80, 120)
    decoded = blurred(original)
    fitted = fit_filter(decoded, original, lagrangian=0.5)
    assert fitted is not None
    payload, filtered = fitted
    assert np.array_equal(filtered, apply_filter(decoded, unpack_filter(payload)))
    before, after = (((d.astype(int) - original) ** 2).sum() for d in (decoded, filtered))
    assert after < 0.5 * before
    assert fit_filter(original, original, lagrangian=0.5) is None
    assert fit_filter(decoded, original, lagrangian=1e9) is None  # no bits are worth it


def test_the_fit_reads_a_guide_that_holds_what_the_decode_lost() -> None:
    """A decode blurred twice, beside a guide blurred once: the filter reads the guide, and comes closer than one
    without guides."""
    original = photo(80, 120, seed=3)
    decoded, guide = blurred(blurred(original)), blurred(original)
    stages = Guides(guide, decoded)
    wiener = unpack_filter(fit_filter(decoded, original, 0.5, stages)[0])
    plain = unpack_filter(fit_filter(decoded, original, 0.5)[0])
    assert wiener.guides & 1 and plain.guides == 0
    error = [((apply_filter(decoded, f, stages).astype(int) - original) ** 2).sum() for f in (wiener, plain)]
    assert error[0] < 0.8 * error[1]


def test_the_fit_keeps_no_taps_for_a_channel_already_right() -> None:
    original = photo(80, 120)
    decoded = original.copy()
    decoded[:, :, 0] = (original[:, :, 0].astype(int) + original[:, :, 1]) // 2  # the red channel takes green's detail
    fitted = fit_filter(decoded, original, lagrangian=0.5)
    assert fitted is not None
    taps = unpack_filter(fitted[0]).taps
    assert np.array_equal(fitted[1], apply_filter(decoded, unpack_filter(fitted[0])))  # the dropped taps' values
    assert taps[:, 0].any() and not taps[:, 1].any() and not taps[:, 2].any()


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
