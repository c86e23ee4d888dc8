"""Probes: where a low-rate file's bytes go, and three encoder-side changes aimed at its side information.

Modes (effort-2 files of the default model unless said; J = squared error + lambda x the file's bits, at the
codec's Lagrangian for the quality):

- ``bytes EFFORT``: each part of the file (the base's streams, every chunk, the container), and the residual
  chunk's ideal bits split into zeros of all-zero blocks, zeros after a block's last nonzero band, other zeros,
  and nonzero symbols, in % of the file;
- ``wiener-rd``: the Wiener filter's taps chosen by D + lambda R per tap (D from the normal equations, the taps'
  exponential-Golomb bits) instead of rounded, against the shipped fit;
- ``filter-twice``: the post-filter applied twice at decode (the corrections refitted), against once;
- ``filter-steps``: effort 5's filter tuning (240 bf16 steps on the effort-2 decode) judged at the later offsets'
  steps 2^-4..2^-8 and with the offsets shrunk toward zero by 0.5-1.5 steps before rounding, in % of the file
  against the shipped choice among 2^-6..2^-8.

Usage: ``PYTHONPATH=. python research/residual/low_rate_side.py MODE [EFFORT] QUALITIES IMAGE...``
"""

import sys
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

import aecodec.codec.api as api
import aecodec.codec.filter_tuning as filter_tuning
import aecodec.codec.residual_coding as residual_coding
import aecodec.codec.wiener_filter as wiener_filter
from aecodec.bitstream.format import CHUNK_OVERHEAD, RESIDUAL, WIENER_FILTER, unpack
from aecodec.bitstream.golomb import best_order
from aecodec.codec.distortion import squared_error
from aecodec.models.postfilter import FilterTuning, one_onednn_thread
from aecodec.models.residual import BAND, BANDS, COEFFICIENTS, ESCAPE, blocks_shape, decoding_passes

CODEC = api.Codec()


def load(path: str) -> tuple[Image.Image, np.ndarray]:
    image = Image.open(path).convert("RGB")
    return image, np.asarray(image)


def judged(image: Image.Image, original: np.ndarray, quality: int, effort: int = 2) -> tuple[bytes, float, float]:
    """A file of ``image``, its PSNR and its J."""
    data = CODEC.compress(image, quality=quality, effort=effort)
    error = squared_error(np.asarray(CODEC.decompress(data)), original)
    psnr = 10 * np.log10(255**2 * original.size / error)
    return data, psnr, error + CODEC._lagrangian(quality) * 8 * len(data)


def residual_split(data: bytes) -> dict[str, float]:
    """The residual chunk's ideal bits (under the rows that code them) by kind of symbol."""
    file = unpack(data)
    layer, level = CODEC.model.residual, CODEC.model.quality_plan(file.header.quality)[1]
    shape = blocks_shape(file.header.width, file.header.height)
    visits = []
    traverse = residual_coding.traverse

    def spy(level, shape, visit):  # records what the decoder's traversal reads
        def recorded(index, band, row, where):
            values = visit(index, band, row, where)
            visits.append((index, band, row, where, values.copy()))
            return values

        return traverse(level, shape, recorded)

    residual_coding.traverse = spy
    values = residual_coding.decode_residual(layer, level, file.chunk(RESIDUAL), shape).reshape(-1, COEFFICIENTS)
    residual_coding.traverse = traverse
    passes = decoding_passes(level.depth, *shape)
    nonzero_bands = np.stack([(values[:, band == BAND] != 0).any(1) for band in range(BANDS)], 1)
    empty = ~nonzero_bands.any(1)
    last = np.where(empty, -1, BANDS - 1 - np.argmax(nonzero_bands[:, ::-1], 1))
    bits = np.log2(layer.bank.sum(1, keepdims=True)) - np.log2(layer.bank)
    split = dict.fromkeys(("empty blocks' zeros", "trailing zeros", "other zeros", "nonzero"), 0.0)
    for index, band, row, where, coded in visits:
        block = passes[index].blocks[where // np.count_nonzero(band == BAND)]
        cost, zero = bits[row, np.clip(coded, -ESCAPE, ESCAPE) + ESCAPE], coded == 0
        split["nonzero"] += cost[~zero].sum()
        split["empty blocks' zeros"] += cost[zero & empty[block]].sum()
        split["trailing zeros"] += cost[zero & ~empty[block] & (band > last[block])].sum()
        split["other zeros"] += cost[zero & ~empty[block] & (band <= last[block])].sum()
    return split


def file_bytes(effort: int, qualities: list[int], paths: list[str]) -> None:
    for path in paths:
        image, _ = load(path)
        for quality in qualities:
            data = CODEC.compress(image, quality=quality, effort=effort)
            file = unpack(data)
            streams = sum(len(s) for s in file.streams)
            chunks = ", ".join(f"{tag.decode()} {len(payload)}" for tag, payload in file.chunks)
            container = len(data) - streams - sum(len(payload) for _, payload in file.chunks)
            parts = " ".join(f"{k} {v / 8 / len(data):.1%}" for k, v in residual_split(data).items())
            print(
                f"{path} q{quality} {len(data)} B: base {streams}, {chunks}, container {container}; residual: {parts}"
            )


def golomb_bits(values: np.ndarray, order: int) -> np.ndarray:
    zigzagged = np.where(values >= 0, 2 * values, -2 * values - 1)
    return 2 * np.frexp(((zigzagged >> order) + 1).astype(np.float64))[1] - 1 + order


def rd_taps(
    rounded: np.ndarray, gram: np.ndarray, moment: np.ndarray, every: int, lagrangian: float, order: int
) -> np.ndarray:
    """Integer taps (1/2**SHIFT) from the least squares' ``rounded`` ones, each in turn the one of least quadratic
    D (every x the sampled pixels' error) plus lambda x its bits, three sweeps."""
    scale, taps = float(1 << wiener_filter.SHIFT), rounded.copy()
    gradient = gram @ (taps / scale) - moment
    for _ in range(3):
        for i in range(len(taps)):
            candidates = np.unique(np.r_[taps[i] + np.arange(-2, 3), 0])
            delta = (candidates - taps[i]) / scale
            cost = every * (delta**2 * gram[i, i] + 2 * delta * gradient[i])
            best = candidates[np.argmin(cost + lagrangian * golomb_bits(candidates, order))]
            gradient += gram[:, i] * ((best - taps[i]) / scale)
            taps[i] = best
    return taps


def wiener_rd(qualities: list[int], paths: list[str]) -> None:
    least_squares, fit_filter, lagrangians = wiener_filter._least_squares, api.fit_filter, []

    def rd_least_squares(equations, shape, bins):
        taps, saved = least_squares(equations, shape, bins)
        order = best_order(taps.ravel().tolist())
        for channel in range(3):
            keys = wiener_filter._feature_keys(channel, *equations.shape)
            index = [keys.index(key) for key in wiener_filter._feature_keys(channel, *shape)]
            for number in range(bins[-1] + 1):
                members = [b for b in range(wiener_filter.BINS) if bins[b] == number]
                gram = equations.gram[members, channel].sum(0)[np.ix_(index, index)]
                moment = equations.moment[members, channel].sum(0)[index]
                rounded = taps[number, channel]
                taps[number, channel] = rd_taps(rounded, gram, moment, equations.every, lagrangians[-1], order)
                real = taps[number, channel] / (1 << wiener_filter.SHIFT)
                fitted = 2 * real @ moment - real @ gram @ real
                unexplained = equations.energy[members, channel].sum() - fitted
                variance = max(0.0, unexplained) / max(1.0, equations.pixels[members].sum())
                nonzero = np.count_nonzero(real)
                saved[number, channel] = equations.every * (fitted - 2 * variance * nonzero)
        return taps, saved

    def spy(decoded, original, lagrangian, guides=None):
        lagrangians.append(lagrangian)
        return fit_filter(decoded, original, lagrangian, guides)

    api.fit_filter = spy

    def with_rd(image, original, quality):
        wiener_filter._least_squares = rd_least_squares
        try:
            return judged(image, original, quality)
        finally:
            wiener_filter._least_squares = least_squares

    compare(qualities, paths, with_rd, lambda data: f"WIEN {len(unpack(data).chunk(WIENER_FILTER) or b'')} B")


def filter_twice(qualities: list[int], paths: list[str]) -> None:
    once = api.Codec._filtered

    def twice(self, pixels, quality, tuning=None):
        return once(self, once(self, pixels, quality, tuning), quality, tuning)

    def with_twice(image, original, quality):
        api.Codec._filtered = twice
        try:
            return judged(image, original, quality)
        finally:
            api.Codec._filtered = once

    compare(qualities, paths, with_twice, lambda data: "")


def compare(qualities: list[int], paths: list[str], variant: Callable, detail: Callable[[bytes], str]) -> None:
    """Each image and quality's shipped file against ``variant``'s: bytes, PSNR and J."""
    for path in paths:
        image, original = load(path)
        for quality in qualities:
            (before, psnr, cost), (after, psnr2, cost2) = (
                judged(image, original, quality),
                variant(image, original, quality),
            )
            print(
                f"{path} q{quality}: {len(before)} -> {len(after)} B, {psnr:.3f} -> {psnr2:.3f} dB, "
                f"J {cost2 / cost - 1:+.3%}; {detail(before)} -> {detail(after)}"
            )


def filter_steps(qualities: list[int], paths: list[str]) -> None:
    postfilter = CODEC.model.postfilter
    for path in paths:
        image, original = load(path)
        for quality in qualities:
            data = CODEC.compress(image, quality=quality, effort=2)
            decoded, lagrangian = CODEC.decompress_unfiltered(data), CODEC._lagrangian(quality)
            gain, views = float(postfilter.gain[quality - 1]) or 1.0, filter_tuning.training_views(decoded, original)
            offset = torch.zeros(postfilter.quality_bias.shape[1], requires_grad=True)
            layers = tuple(torch.zeros(c.out_channels, requires_grad=True) for c in postfilter.later_convolutions())
            optimizer = torch.optim.Adam(
                [
                    {"params": [offset], "lr": filter_tuning.LEARNING_RATE},
                    {"params": list(layers), "lr": filter_tuning.LAYER_LEARNING_RATE},
                ]
            )
            with one_onednn_thread(), torch.enable_grad():
                for _ in range(240):
                    optimizer.zero_grad()
                    for x, target in views:
                        with torch.autocast("cpu", dtype=torch.bfloat16):
                            correction = postfilter.correction(
                                x, torch.tensor([quality]), FilterTuning(offset, gain, layers)
                            )
                        torch.nn.functional.mse_loss(x + gain * correction.float(), target).backward()
                    optimizer.step()
            bias = torch.round(offset.detach() / filter_tuning.BIAS_STEP).clamp(-128, 127) * filter_tuning.BIAS_STEP
            shared = squared_error(postfilter.apply(decoded, quality), original)
            costs = {}
            with torch.no_grad(), one_onednn_thread():
                for shrink in (0.0, 0.5, 1.0, 1.5):
                    for exponent in range(4, 9):
                        step = 2.0**-exponent
                        moved = tuple(
                            filter_tuning._on_grid(
                                torch.sign(v) * (v.detach().abs() - shrink * step).clamp(min=0), exponent
                            )
                            for v in layers
                        )
                        fitted = postfilter.least_squares_gain(views, quality, FilterTuning(bias, gain, moved))
                        step_gain = float(
                            np.clip(round(fitted / filter_tuning.GAIN_STEP), 0, 255) * filter_tuning.GAIN_STEP
                        )
                        tuning = FilterTuning(bias, step_gain, moved)
                        payload = filter_tuning.pack_tuning(tuning, exponent)
                        error = squared_error(postfilter.apply(decoded, quality, tuning), original)
                        cost = error - shared + lagrangian * 8 * (CHUNK_OVERHEAD + len(payload))
                        costs[shrink, exponent] = (len(payload), cost / (lagrangian * 8 * len(data)))
            shipped = min(costs[0.0, e][1] for e in filter_tuning.LAYER_STEP_EXPONENTS)
            print(f"{path} q{quality} ({len(data)} B): the shipped choice saves {-shipped:.2%} of the file in J")
            for (shrink, exponent), (size, cost) in costs.items():
                print(f"  shrink {shrink} step 2^-{exponent}: {size} B, {cost - shipped:+.2%} against it")


if __name__ == "__main__":
    mode, rest = sys.argv[1], sys.argv[2:]
    if mode == "bytes":
        file_bytes(int(rest[0]), [int(q) for q in rest[1].split(",")], rest[2:])
    else:
        {"wiener-rd": wiener_rd, "filter-twice": filter_twice, "filter-steps": filter_steps}[mode](
            [int(q) for q in rest[0].split(",")], rest[1:]
        )
