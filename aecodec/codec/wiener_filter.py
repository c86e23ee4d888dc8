"""A Wiener filter fitted to each image: the part of the final decode's error that is linear in the decode.

The post-filter is trained once on photos; in one image, what it leaves is partly a linear function
of the decoded pixels, and largely across channels (where one channel's detail survived the
residual's quantizer and another's did not), the idea of VVC's adaptive loop filter and its
cross-component filter. For each output channel the filter sums integer taps times symmetric
high-passes of that channel over a diamond of radius ``own`` and, for each other channel, its
difference to the centre and its symmetric high-passes over a diamond of radius ``cross``. A filter
may also read the same channel of earlier stages of the decode, its *guides* (the decode before the
post-filter, the base alone), each as a difference to the centre and high-passes of radius
``cross``: what the post-filter removed, or the residual added, in the right proportion. Pixels
fall in one of four activity bins (a local sum of the Laplacian, as ALF's classes), and contiguous
bins may have filters of their own. The encoder fits the taps by least squares of the decode
against the original, quantizes them to 1/2**shift, drops a channel's taps where they do not pay for
their bits, and keeps the filter where it lowers squared error plus lambda times its chunk's bits.
The decoder filters in exact integer arithmetic after the post-filter, before the correction field.
Payload (``WIEN``, docs/FORMAT.md): version byte 2, own radius, cross radius, shift, guides, the bins'
partition, the code's order, then the taps, filter by filter and channel by channel, in the signed
exponential-Golomb code (version 1: one filter, no guides, no partition byte).
"""

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import product

import numpy as np

from aecodec.bitstream.format import CHUNK_OVERHEAD, WIENER_FILTER_PREFIX_SIZE
from aecodec.bitstream.golomb import best_order, code_bits, decode_signed, encode_signed
from aecodec.codec.distortion import squared_error, strips
from aecodec.errors import FormatError

VERSION = 2  # 1: one filter, no guides (files of earlier releases), still decoded
PREFIX_SIZE = 7  # version 2's: version, own radius, cross radius, shift, guides, partition, order
OWN_RADII, CROSS_RADII, SHIFTS = range(1, 6), range(4), range(4, 11)  # what the format allows
GUIDES = ("unfiltered", "base")  # bit k of a filter's guide mask reads GUIDES[k] (see :class:`Guides`)
BINS = 4  # activity bins: the 5x5 sums of the Laplacian of R + G + B below each threshold, then the rest
THRESHOLDS = (225, 600, 1500)
BIN_MARGIN = 3  # pixels beyond a strip that its bins read
MAX_TAP = 8  # |tap| <= MAX_TAP << shift: a gain of 8 on a high-pass
SHAPES = ((4, 2), (5, 3))  # (own, cross) radii the encoder tries
GUIDED = 3  # the encoder's filters read both guides (where it has them)
SHIFT = 8  # the encoder's tap precision
FIT_PIXELS = 1 << 18  # pixels the least squares sees at most: a column in every so many


@dataclass(frozen=True)
class Guides:
    """Earlier stages of the decode a filter may read beside the image it filters, each (H, W, 3) uint8."""

    unfiltered: np.ndarray  # the base plus the residual, before the post-filter
    base: np.ndarray  # the VQ-VAE-2 base alone (upsampled where it is coded at half resolution)


@dataclass(frozen=True)
class WienerFilter:
    """A file's filter: ``taps[f, c, j]`` weighs feature ``j`` (see :func:`_features`) of output channel ``c`` where
    the pixel's activity bin ``b`` has ``bins[b] == f``."""

    own: int
    cross: int
    shift: int
    taps: np.ndarray  # (filters, 3, taps_per_channel(own, cross, guides)) int64
    guides: int = 0  # bit mask of the guides read (GUIDES)
    bins: tuple[int, ...] = (0,) * BINS  # the filter of each activity bin: 0, then each bin the same or one more


def half_diamond(radius: int) -> list[tuple[int, int]]:
    """One offset of each symmetric pair within city-block ``radius`` of the centre, (dy, dx) ascending."""
    return [
        (dy, dx)
        for dy in range(radius + 1)
        for dx in range(-radius, radius + 1)
        if abs(dy) + abs(dx) <= radius and (dy, dx) > (0, 0)
    ]


def _guide_list(guides: int) -> list[int]:
    return [k for k in range(len(GUIDES)) if guides >> k & 1]


def taps_per_channel(own: int, cross: int, guides: int = 0) -> int:
    """Features of one output channel: its own pairs, then per other channel and per guide a difference and pairs."""
    return len(half_diamond(own)) + (2 + len(_guide_list(guides))) * (1 + len(half_diamond(cross)))


def _planes(channel: int, own: int, cross: int, guides: int) -> list[tuple[int, list[tuple[int, int]]]]:
    """Tap order of output ``channel``: (plane, its pair offsets), the channel itself first, then the other channels,
    then the channel in each guide read (plane 3 + 3 n + channel for the n-th, as :func:`_stacked` stacks them);
    each plane but the first has one tap for its difference to the channel before its pairs."""
    guide_planes = [3 + 3 * n + channel for n in range(len(_guide_list(guides)))]
    others = [other for other in range(3) if other != channel] + guide_planes
    return [(channel, half_diamond(own))] + [(plane, half_diamond(cross)) for plane in others]


def _shifted(slab: np.ndarray, margin: int, plane: int, dy: int, dx: int) -> np.ndarray:
    """The view of ``plane`` of a slab padded by ``margin`` whose (0, 0) is the image pixel (dy, dx)."""
    rows, columns = slab.shape[1] - 2 * margin, slab.shape[2] - 2 * margin
    return slab[plane, margin + dy : margin + dy + rows, margin + dx : margin + dx + columns]


def _features(
    slab: np.ndarray, margin: int, channel: int, own: int, cross: int, guides: int, columns: slice = slice(None)
) -> np.ndarray:
    """The (taps, pixels) float64 features of output ``channel`` for the rows of ``slab`` ((planes, rows, columns),
    padded by ``margin``, edge-replicated), in tap order: each pair's symmetric high-pass ``p(+o) + p(-o) - 2 p(0)``
    of its plane, and each other plane's difference ``p(0) - c(0)`` to the channel's centre: what the least
    squares fits (the decoder sums the same integers in another order, :func:`apply_filter`); of the image's
    ``columns`` only."""

    def at(plane: int, dy: int, dx: int) -> np.ndarray:
        return _shifted(slab, margin, plane, dy, dx)[:, columns]

    planes = _planes(channel, own, cross, guides)
    rows, width = at(channel, 0, 0).shape
    features = np.empty((taps_per_channel(own, cross, guides), rows, width))
    number = 0
    for plane, offsets in planes:
        if plane != channel:
            np.subtract(at(plane, 0, 0), at(channel, 0, 0), out=features[number])
            number += 1
        twice = 2.0 * at(plane, 0, 0)
        for dy, dx in offsets:
            np.add(at(plane, dy, dx), at(plane, -dy, -dx), out=features[number])
            features[number] -= twice
            number += 1
    return features.reshape(number, rows * width)


def _stacked(pixels: np.ndarray, guides: Guides | None, mask: int) -> list[np.ndarray]:
    """The (H, W, 3) images a filter reads: the image, then each guide of ``mask``."""
    if mask:
        assert guides is not None, "a filter with guides needs them"
    return [pixels] + [getattr(guides, GUIDES[k]) for k in _guide_list(mask)]


def _slabs(images: list[np.ndarray], margin: int) -> Iterator[tuple[slice, np.ndarray]]:
    """Row strips of ``images`` (each (H, W, 3) uint8), each with its (3 x images, rows, columns) int32 slab padded
    by ``margin`` (edge-replicated)."""
    height, width = images[0].shape[:2]
    columns = np.clip(np.arange(-margin, width + margin), 0, width - 1)
    for rows in strips(height, width):
        index = np.clip(np.arange(rows.start - margin, rows.stop + margin), 0, height - 1)
        planes = [image[index][:, columns].transpose(2, 0, 1) for image in images]
        yield rows, np.concatenate(planes, axis=0, dtype=np.int32)


def _bins(slab: np.ndarray, margin: int) -> np.ndarray:
    """The activity bin of each pixel of a slab's rows (margin >= BIN_MARGIN): with ``g = R + G + B``, the sum over
    the 5x5 window of ``|2 g(0) - g(up) - g(down)| + |2 g(0) - g(left) - g(right)|``, against THRESHOLDS."""
    g = slab[0] + slab[1] + slab[2]
    inner = g[1:-1, 1:-1]
    laplacian = np.abs(2 * inner - g[:-2, 1:-1] - g[2:, 1:-1]) + np.abs(2 * inner - g[1:-1, :-2] - g[1:-1, 2:])
    summed = np.pad(laplacian, ((1, 0), (1, 0))).cumsum(axis=0, dtype=np.int64).cumsum(axis=1)
    edge = margin - 1 - 2  # the window's first row (column) in ``laplacian``, which starts one pixel in
    rows, columns = slab.shape[1] - 2 * margin, slab.shape[2] - 2 * margin
    top, left = edge, edge
    window = (
        summed[top + 5 : top + 5 + rows, left + 5 : left + 5 + columns]
        - summed[top : top + rows, left + 5 : left + 5 + columns]
        - summed[top + 5 : top + 5 + rows, left : left + columns]
        + summed[top : top + rows, left : left + columns]
    )
    return np.searchsorted(np.array(THRESHOLDS), window, side="right")


def _margin(wiener: WienerFilter) -> int:
    return max(wiener.own, wiener.cross, BIN_MARGIN if any(wiener.bins) else 0)


def _times(values: np.ndarray, tap: np.ndarray, which: np.ndarray | None, scratch: np.ndarray) -> None:
    """``values *= tap[which]`` in place: ``tap`` holds one value per filter, ``which`` each pixel's filter (None:
    one filter)."""
    if which is None:
        values *= int(tap[0])
    else:
        np.take(tap, which, out=scratch)
        values *= scratch


def apply_filter(pixels: np.ndarray, wiener: WienerFilter, guides: Guides | None = None) -> np.ndarray:
    """``pixels`` (H, W, 3) uint8 filtered: each value plus floor((sum of taps x features + 2**(shift - 1)) /
    2**shift), clipped to 8 bits, with the taps of the filter of the pixel's activity bin, in exact integer
    arithmetic.

    The sum is gathered as taps times pair sums plus one weight per plane's centre (the same integers as the
    features' sum; int32 is enough by the tap limit), without a temporary per feature.
    """
    margin, out = _margin(wiener), np.empty_like(pixels)
    for rows, slab in _slabs(_stacked(pixels, guides, wiener.guides), margin):
        height, width = slab.shape[1] - 2 * margin, slab.shape[2] - 2 * margin
        which = np.array(wiener.bins)[_bins(slab, margin)] if wiener.taps.shape[0] > 1 else None
        pair, weights = np.empty((height, width), np.int32), np.empty((height, width), np.int32)
        for channel in range(3):
            taps, centre = wiener.taps[:, channel, :].astype(np.int32), {}
            total = np.full((height, width), 1 << (wiener.shift - 1), np.int32)
            column = iter(range(taps.shape[1]))
            for plane, offsets in _planes(channel, wiener.own, wiener.cross, wiener.guides):
                if plane != channel:
                    tap = taps[:, next(column)]
                    centre[plane], centre[channel] = centre.get(plane, 0) + tap, centre.get(channel, 0) - tap
                for dy, dx in offsets:
                    tap = taps[:, next(column)]
                    if tap.any():
                        np.add(_shifted(slab, margin, plane, dy, dx), _shifted(slab, margin, plane, -dy, -dx), out=pair)
                        _times(pair, tap, which, weights)
                        total += pair
                        centre[plane] = centre.get(plane, 0) - 2 * tap
            for plane, tap in centre.items():
                if np.any(tap):
                    np.copyto(pair, _shifted(slab, margin, plane, 0, 0))
                    _times(pair, tap, which, weights)
                    total += pair
            out[rows, :, channel] = np.clip(pixels[rows, :, channel] + (total >> wiener.shift), 0, 255)
    return out


def _partition_byte(bins: tuple[int, ...]) -> int:
    """Bit k set where bins k and k + 1 have different filters."""
    return sum(1 << k for k in range(BINS - 1) if bins[k + 1] != bins[k])


def _partition(byte: int) -> tuple[int, ...]:
    return tuple(sum(byte >> j & 1 for j in range(k)) for k in range(BINS))


def pack_filter(wiener: WienerFilter) -> bytes:
    """The ``WIEN`` payload of ``wiener``."""
    values = wiener.taps.ravel().tolist()
    order = best_order(values)
    prefix = [VERSION, wiener.own, wiener.cross, wiener.shift, wiener.guides, _partition_byte(wiener.bins), order]
    return bytes(prefix) + encode_signed(values, order)


def unpack_filter(payload: bytes) -> WienerFilter:
    """The filter of a ``WIEN`` payload; FormatError if it is not one. The work is bounded by the payload's length."""
    if len(payload) < WIENER_FILTER_PREFIX_SIZE:  # as check_chunk has found, for a parsed file
        raise FormatError(f"invalid Wiener filter chunk: shorter than its {WIENER_FILTER_PREFIX_SIZE}-byte prefix")
    version = payload[0]
    if version not in (1, VERSION):
        raise FormatError(f"Wiener filter chunk version {version} is not supported (written by a newer aecodec?)")
    prefix = WIENER_FILTER_PREFIX_SIZE if version == 1 else PREFIX_SIZE
    if len(payload) < prefix:
        raise FormatError(f"invalid Wiener filter chunk: shorter than its {prefix}-byte prefix")
    own, cross, shift = payload[1:4]
    guides, partition = (0, 0) if version == 1 else payload[4:6]
    order = payload[prefix - 1]
    if own not in OWN_RADII or cross not in CROSS_RADII or shift not in SHIFTS:
        raise FormatError(f"invalid Wiener filter chunk: radii {own}, {cross} or shift {shift} out of range")
    if guides >> len(GUIDES) or partition >> (BINS - 1):
        raise FormatError(f"invalid Wiener filter chunk: guides {guides} or partition {partition} out of range")
    bins = _partition(partition)
    shape = (bins[-1] + 1, 3, taps_per_channel(own, cross, guides))
    values = decode_signed(payload[prefix:], int(np.prod(shape)), order, MAX_TAP << shift, "Wiener filter chunk")
    return WienerFilter(own, cross, shift, np.array(values, dtype=np.int64).reshape(shape), guides, bins)


def _chunk_bytes(wiener: WienerFilter) -> int:
    return CHUNK_OVERHEAD + len(pack_filter(wiener))


def _feature_keys(channel: int, own: int, cross: int, guides: int) -> list[tuple[int, ...]]:
    """A name for each of ``channel``'s features in tap order: (plane,) for a difference, (plane, dy, dx) for a pair."""
    keys: list[tuple[int, ...]] = []
    for plane, offsets in _planes(channel, own, cross, guides):
        keys += [(plane,)] * (plane != channel) + [(plane, dy, dx) for dy, dx in offsets]
    return keys


@dataclass(frozen=True)
class _NormalEquations:
    """Per activity bin and channel, the largest shape's features' Gram matrix, their products with the error, the
    error's energy and the pixels' count, over a column in every ``every``."""

    gram: np.ndarray  # (BINS, 3, n, n)
    moment: np.ndarray  # (BINS, 3, n)
    energy: np.ndarray  # (BINS, 3)
    pixels: np.ndarray  # (BINS,)
    every: int
    shape: tuple[int, int, int]  # (own, cross, guides) of the features


def _normal_equations(
    images: list[np.ndarray], original: np.ndarray, own: int, cross: int, guides: int
) -> _NormalEquations:
    """The normal equations of every bin and channel, over about FIT_PIXELS pixels at most: a column in every so
    many, starting one column further in each strip (whole strips would fit a part of the image)."""
    count, margin = taps_per_channel(own, cross, guides), max(own, cross, BIN_MARGIN)
    gram, moment = np.zeros((BINS, 3, count, count)), np.zeros((BINS, 3, count))
    energy, pixels = np.zeros((BINS, 3)), np.zeros(BINS)
    decoded = images[0]
    every = -(-decoded.shape[0] * decoded.shape[1] // FIT_PIXELS)
    for number, (rows, slab) in enumerate(_slabs(images, margin)):
        columns = slice(number % every, None, every)
        bins = _bins(slab, margin)[:, columns].ravel()
        order = np.argsort(bins, kind="stable")
        starts = np.searchsorted(bins[order], np.arange(BINS + 1))
        pixels += np.diff(starts)
        for channel in range(3):
            features = _features(slab, margin, channel, own, cross, guides, columns)[:, order]
            error = original[rows, columns, channel].astype(np.float64) - decoded[rows, columns, channel]
            error = error.ravel()[order]
            for activity in range(BINS):
                chosen = slice(starts[activity], starts[activity + 1])
                gram[activity, channel] += features[:, chosen] @ features[:, chosen].T
                moment[activity, channel] += features[:, chosen] @ error[chosen]
                energy[activity, channel] += error[chosen] @ error[chosen]
    return _NormalEquations(gram, moment, energy, pixels, every, (own, cross, guides))


def _least_squares(
    equations: _NormalEquations, shape: tuple[int, int, int], bins: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """(filters, 3, taps) integer taps in 1/2**SHIFT of the ``shape`` (own, cross, guides) filters of least squared
    error for the partition ``bins``, and the estimated fall of squared error per filter and channel over the image.

    The fall on the pixels fitted flatters a filter by about the residual's variance per tap, and the pixels it
    was not fitted on lose as much (Mallows' Cp): both are taken off before scaling to the image.
    """
    taps = np.zeros((bins[-1] + 1, 3, taps_per_channel(*shape)), np.int64)
    saved = np.zeros(taps.shape[:2])
    for channel in range(3):
        keys = _feature_keys(channel, *equations.shape)
        index = [keys.index(key) for key in _feature_keys(channel, *shape)]
        for number in range(bins[-1] + 1):
            members = [activity for activity in range(BINS) if bins[activity] == number]
            gram = equations.gram[members, channel].sum(0)[np.ix_(index, index)]
            moment = equations.moment[members, channel].sum(0)[index]
            system = gram + (1e-6 * np.trace(gram) + 1e-3) * np.eye(len(index))  # a tap without data stays 0
            solution = np.linalg.solve(system, moment) * (1 << SHIFT)
            taps[number, channel] = np.clip(np.round(solution), -(MAX_TAP << SHIFT), MAX_TAP << SHIFT)
            real = taps[number, channel] / (1 << SHIFT)
            fitted = 2 * real @ moment - real @ gram @ real
            count = max(1.0, equations.pixels[members].sum())
            variance = max(0.0, equations.energy[members, channel].sum() - fitted) / count
            saved[number, channel] = equations.every * (fitted - 2 * variance * len(index))
    return taps, saved


def _partitions() -> Iterator[tuple[int, ...]]:
    """Every partition of the activity bins into runs of contiguous bins."""
    for cuts in product((0, 1), repeat=BINS - 1):
        yield tuple(sum(cuts[:k]) for k in range(BINS))


def _channel_error(a: np.ndarray, b: np.ndarray, channel: int) -> int:
    return squared_error(a[:, :, channel : channel + 1], b[:, :, channel : channel + 1])


def _estimated(
    equations: _NormalEquations, shape: tuple[int, int, int], lagrangian: float
) -> tuple[WienerFilter, float]:
    """Of every partition of the activity bins, the ``shape`` filter of least estimated squared error plus
    ``lagrangian`` times its chunk's bits (a channel without taps where they are estimated not to pay), and that
    estimate. The estimate flatters more taps: the output's rounding takes back part of what they fit."""
    best, least = None, np.inf
    for bins in _partitions():
        taps, saved = _least_squares(equations, shape, bins)
        order = best_order(taps.ravel().tolist())
        bits = np.array([[code_bits(row.tolist(), order) for row in rows] for rows in taps])
        kept = saved.sum(0) > lagrangian * bits.sum(0)  # per channel, over the filters
        cost = (
            lagrangian * (8 * (CHUNK_OVERHEAD + PREFIX_SIZE) + bits.sum() - bits[:, ~kept].sum()) - saved[:, kept].sum()
        )
        if cost < least:
            taps[:, ~kept] = 0
            best, least = WienerFilter(shape[0], shape[1], SHIFT, taps, shape[2], bins), cost
    assert best is not None
    return best, least


def fit_filter(
    decoded: np.ndarray, original: np.ndarray, lagrangian: float, guides: Guides | None = None
) -> tuple[bytes, np.ndarray] | None:
    """The ``WIEN`` payload bringing a final decode ``decoded`` closest to ``original`` (both (H, W, 3) uint8) in
    squared error (8-bit units) plus ``lagrangian`` times its chunk's bits, and the decode it filters to; None
    where no filter pays for itself.

    For each of :data:`SHAPES`, reading both ``guides`` (none without them), the partition of the activity bins
    that the least squares' own estimate favours is applied; a channel whose error falls by less than its taps'
    bits are worth keeps no taps; the least real squared error plus lambda times the chunk's bits wins.
    """
    mask = GUIDED if guides is not None else 0
    largest = (max(own for own, _ in SHAPES), max(cross for _, cross in SHAPES), mask)
    equations = _normal_equations(_stacked(decoded, guides, mask), original, *largest)
    plain = [_channel_error(decoded, original, channel) for channel in range(3)]
    best, least = None, 0.0
    for own, cross in SHAPES:
        candidate, estimate = _estimated(equations, (own, cross, mask), lagrangian)
        if estimate >= 0:
            continue
        filtered = apply_filter(decoded, candidate, guides)
        saved = [plain[channel] - _channel_error(filtered, original, channel) for channel in range(3)]
        taps = candidate.taps.copy()
        order = best_order(taps.ravel().tolist())
        for channel in range(3):
            if saved[channel] < lagrangian * code_bits(taps[:, channel].ravel().tolist(), order):
                taps[:, channel], saved[channel] = 0, 0
                filtered[:, :, channel] = decoded[:, :, channel]  # what zero taps make of it
        if not taps.any():
            continue
        wiener = WienerFilter(own, cross, SHIFT, taps, mask, candidate.bins)
        cost = lagrangian * 8 * _chunk_bytes(wiener) - sum(saved)
        if cost < least:
            best, least = (pack_filter(wiener), filtered), cost
    return best
