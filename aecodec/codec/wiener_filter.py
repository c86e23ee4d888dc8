"""A Wiener filter fitted to each image: the part of the final decode's error that is linear in the decode.

The post-filter is trained once on photos; in one image, what it leaves is partly a linear function
of the decoded pixels, and largely across channels (where one channel's detail survived the
residual's quantizer and another's did not), the idea of VVC's adaptive loop filter and its
cross-component filter. For each output channel the filter sums integer taps times symmetric
high-passes of that channel over a diamond of radius ``own`` and, for each other channel, its
difference to the centre and its symmetric high-passes over a diamond of radius ``cross``. The
encoder fits the taps by least squares of the decode against the original, quantizes them to
1/2**shift, drops a channel's taps where they do not pay for their bits, and keeps the filter where
it lowers squared error plus lambda times its chunk's bits. The decoder filters in exact integer
arithmetic after the post-filter, before the correction field. Payload (``WIEN``, docs/FORMAT.md):
version byte 1, own radius, cross radius, shift, the code's order, then the taps, channel by channel,
in the signed exponential-Golomb code.
"""

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from aecodec.bitstream.format import CHUNK_OVERHEAD, WIENER_FILTER_PREFIX_SIZE
from aecodec.bitstream.golomb import best_order, code_bits, decode_signed, encode_signed
from aecodec.codec.distortion import squared_error, strips
from aecodec.errors import FormatError

VERSION = 1
OWN_RADII, CROSS_RADII, SHIFTS = range(1, 6), range(4), range(4, 11)  # what the format allows
MAX_TAP = 8  # |tap| <= MAX_TAP << shift: a gain of 8 on a high-pass
SHAPES = ((4, 2), (5, 3))  # (own, cross) radii the encoder tries
SHIFT = 8  # the encoder's tap precision
FIT_PIXELS = 1 << 18  # pixels the least squares sees at most: a strip in every so many


@dataclass(frozen=True)
class WienerFilter:
    """A file's filter: tap ``taps[c, j]`` weighs feature ``j`` of output channel ``c`` (see :func:`_features`)."""

    own: int
    cross: int
    shift: int
    taps: np.ndarray  # (3, taps_per_channel(own, cross)) int64


def half_diamond(radius: int) -> list[tuple[int, int]]:
    """One offset of each symmetric pair within city-block ``radius`` of the centre, (dy, dx) ascending."""
    return [
        (dy, dx)
        for dy in range(radius + 1)
        for dx in range(-radius, radius + 1)
        if abs(dy) + abs(dx) <= radius and (dy, dx) > (0, 0)
    ]


def taps_per_channel(own: int, cross: int) -> int:
    """Features of one output channel: its own pairs, then per other channel a difference and its pairs."""
    return len(half_diamond(own)) + 2 * (1 + len(half_diamond(cross)))


def _planes(channel: int, own: int, cross: int) -> list[tuple[int, list[tuple[int, int]]]]:
    """Tap order of output ``channel``: (plane, its pair offsets), the channel itself first, then the others; each
    other plane's pairs follow one tap for its difference to the channel."""
    return [(channel, half_diamond(own))] + [(other, half_diamond(cross)) for other in range(3) if other != channel]


def _shifted(slab: np.ndarray, margin: int, plane: int, dy: int, dx: int) -> np.ndarray:
    """The view of ``plane`` of a slab padded by ``margin`` whose (0, 0) is the image pixel (dy, dx)."""
    rows, columns = slab.shape[1] - 2 * margin, slab.shape[2] - 2 * margin
    return slab[plane, margin + dy : margin + dy + rows, margin + dx : margin + dx + columns]


def _features(slab: np.ndarray, margin: int, channel: int, own: int, cross: int) -> Iterator[np.ndarray]:
    """The int32 features of output ``channel`` for the rows of ``slab`` ((3, rows, columns), padded by ``margin``,
    edge-replicated), in tap order: each pair's symmetric high-pass ``p(+o) + p(-o) - 2 p(0)`` of its plane,
    and each other plane's difference ``p(0) - c(0)`` to the channel's centre."""

    def at(plane: int, dy: int, dx: int) -> np.ndarray:
        return _shifted(slab, margin, plane, dy, dx)

    for plane, offsets in _planes(channel, own, cross):
        if plane != channel:
            yield at(plane, 0, 0) - at(channel, 0, 0)
        for dy, dx in offsets:
            yield at(plane, dy, dx) + at(plane, -dy, -dx) - 2 * at(plane, 0, 0)


def _slabs(pixels: np.ndarray, margin: int) -> Iterator[tuple[slice, np.ndarray]]:
    """Row strips of ``pixels`` (H, W, 3) uint8, each with its (3, rows, columns) int32 slab padded by ``margin``
    (edge-replicated)."""
    height, width = pixels.shape[:2]
    columns = np.clip(np.arange(-margin, width + margin), 0, width - 1)
    for rows in strips(height, width):
        index = np.clip(np.arange(rows.start - margin, rows.stop + margin), 0, height - 1)
        yield rows, np.ascontiguousarray(pixels[index][:, columns].transpose(2, 0, 1), dtype=np.int32)


def apply_filter(pixels: np.ndarray, wiener: WienerFilter) -> np.ndarray:
    """``pixels`` (H, W, 3) uint8 filtered: each value plus floor((sum of taps x features + 2**(shift - 1)) /
    2**shift), clipped to 8 bits, in exact integer arithmetic.

    The sum is gathered as taps times pair sums plus one weight per plane's centre (the same integers as the
    features' sum; int32 is enough by the tap limit), without a temporary per feature.
    """
    margin, out = max(wiener.own, wiener.cross), np.empty_like(pixels)
    for rows, slab in _slabs(pixels, margin):
        height, width = slab.shape[1] - 2 * margin, slab.shape[2] - 2 * margin
        pair = np.empty((height, width), np.int32)
        for channel in range(3):
            taps, centre = iter(wiener.taps[channel].tolist()), [0, 0, 0]
            total = np.full((height, width), 1 << (wiener.shift - 1), np.int32)
            for plane, offsets in _planes(channel, wiener.own, wiener.cross):
                if plane != channel:
                    tap = next(taps)
                    centre[plane], centre[channel] = centre[plane] + tap, centre[channel] - tap
                for dy, dx in offsets:
                    tap = next(taps)
                    if tap:
                        np.add(_shifted(slab, margin, plane, dy, dx), _shifted(slab, margin, plane, -dy, -dx), out=pair)
                        pair *= tap
                        total += pair
                        centre[plane] -= 2 * tap
            for plane, weight in enumerate(centre):
                if weight:
                    np.multiply(_shifted(slab, margin, plane, 0, 0), weight, out=pair)
                    total += pair
            out[rows, :, channel] = np.clip(pixels[rows, :, channel] + (total >> wiener.shift), 0, 255)
    return out


def pack_filter(wiener: WienerFilter) -> bytes:
    """The ``WIEN`` payload of ``wiener``."""
    values = wiener.taps.ravel().tolist()
    order = best_order(values)
    return bytes([VERSION, wiener.own, wiener.cross, wiener.shift, order]) + encode_signed(values, order)


def unpack_filter(payload: bytes) -> WienerFilter:
    """The filter of a ``WIEN`` payload; FormatError if it is not one. The work is bounded by the payload's length."""
    if len(payload) < WIENER_FILTER_PREFIX_SIZE:  # as check_chunk has found, for a parsed file
        raise FormatError(f"invalid Wiener filter chunk: shorter than its {WIENER_FILTER_PREFIX_SIZE}-byte prefix")
    version, own, cross, shift, order = payload[:WIENER_FILTER_PREFIX_SIZE]
    if version != VERSION:
        raise FormatError(f"Wiener filter chunk version {version} is not supported (written by a newer aecodec?)")
    if own not in OWN_RADII or cross not in CROSS_RADII or shift not in SHIFTS:
        raise FormatError(f"invalid Wiener filter chunk: radii {own}, {cross} or shift {shift} out of range")
    count = 3 * taps_per_channel(own, cross)
    values = decode_signed(payload[WIENER_FILTER_PREFIX_SIZE:], count, order, MAX_TAP << shift, "Wiener filter chunk")
    return WienerFilter(own, cross, shift, np.array(values, dtype=np.int64).reshape(3, -1))


def _chunk_bytes(wiener: WienerFilter) -> int:
    return CHUNK_OVERHEAD + len(pack_filter(wiener))


def _feature_keys(channel: int, own: int, cross: int) -> list[tuple[int, ...]]:
    """A name for each of ``channel``'s features in tap order: (plane,) for a difference, (plane, dy, dx) for a pair."""
    keys: list[tuple[int, ...]] = []
    for plane, offsets in _planes(channel, own, cross):
        keys += [(plane,)] * (plane != channel) + [(plane, dy, dx) for dy, dx in offsets]
    return keys


def _normal_equations(decoded: np.ndarray, original: np.ndarray, own: int, cross: int) -> tuple[np.ndarray, np.ndarray]:
    """Per channel, the (own, cross) features' Gram matrix and their products with the decode's error, over a
    strip in every so many (about FIT_PIXELS pixels at most)."""
    count, margin = taps_per_channel(own, cross), max(own, cross)
    gram, moment = np.zeros((3, count, count)), np.zeros((3, count))
    every = -(-decoded.shape[0] * decoded.shape[1] // FIT_PIXELS)
    for number, (rows, slab) in enumerate(_slabs(decoded, margin)):
        if number % every:
            continue
        for channel in range(3):
            features = np.stack(list(_features(slab, margin, channel, own, cross)), -1).reshape(-1, count)
            features = features.astype(np.float64)
            error = original[rows, :, channel].astype(np.float64) - decoded[rows, :, channel]
            gram[channel] += features.T @ features
            moment[channel] += features.T @ error.ravel()
    return gram, moment


def _least_squares_taps(
    gram: np.ndarray, moment: np.ndarray, largest: tuple[int, int], shape: tuple[int, int]
) -> np.ndarray:
    """(3, taps) integer taps in 1/2**SHIFT of the ``shape`` (own, cross) filter of least squared error, from the
    normal equations of the ``largest`` shape (whose features include its own)."""
    taps = []
    for channel in range(3):
        keys = _feature_keys(channel, *largest)
        index = [keys.index(key) for key in _feature_keys(channel, *shape)]
        system = gram[channel][np.ix_(index, index)]
        system = system + (1e-6 * np.trace(system) + 1e-3) * np.eye(len(index))  # a tap without data stays 0
        taps.append(np.linalg.solve(system, moment[channel][index]) * (1 << SHIFT))
    return np.clip(np.round(np.array(taps)), -(MAX_TAP << SHIFT), MAX_TAP << SHIFT).astype(np.int64)


def _channel_error(a: np.ndarray, b: np.ndarray, channel: int) -> int:
    return squared_error(a[:, :, channel : channel + 1], b[:, :, channel : channel + 1])


def fit_filter(decoded: np.ndarray, original: np.ndarray, lagrangian: float) -> bytes | None:
    """The ``WIEN`` payload bringing a final decode ``decoded`` closest to ``original`` (both (H, W, 3) uint8) in
    squared error (8-bit units) plus ``lagrangian`` times its chunk's bits; None where no filter pays for itself.

    Each of :data:`SHAPES` is fitted and applied; a channel whose error falls by less than its taps' bits are
    worth keeps no taps.
    """
    plain = [_channel_error(decoded, original, channel) for channel in range(3)]
    largest = (max(own for own, _ in SHAPES), max(cross for _, cross in SHAPES))  # its features hold every shape's
    gram, moment = _normal_equations(decoded, original, *largest)
    best, least = None, 0.0
    for own, cross in SHAPES:
        taps = _least_squares_taps(gram, moment, largest, (own, cross))
        filtered = apply_filter(decoded, WienerFilter(own, cross, SHIFT, taps))
        saved = [plain[channel] - _channel_error(filtered, original, channel) for channel in range(3)]
        order = best_order(taps.ravel().tolist())
        for channel in range(3):
            if saved[channel] < lagrangian * code_bits(taps[channel].tolist(), order):
                taps[channel], saved[channel] = 0, 0
        if not taps.any():
            continue
        wiener = WienerFilter(own, cross, SHIFT, taps)
        cost = lagrangian * 8 * _chunk_bytes(wiener) - sum(saved)
        if cost < least:
            best, least = wiener, cost
    return None if best is None else pack_filter(best)
