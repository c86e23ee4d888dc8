"""Dependent quantization (VVC's 4-state trellis-coded quantization) for the residual layer's coefficients.

Run from the repository root: ``PYTHONPATH=. python research/residual/dependent_quantization.py MODE FACTORS
QUALITIES IMAGE...``. Two quantizers, Q0 = {2k Delta} and Q1 = {(2k - sgn k) Delta}, the one for each coefficient
set by a 4-state machine driven by the parity of the levels before it in the block (KLT order 0..191);
Delta = FACTOR x the level's step. The encoder chooses every block's levels by a Viterbi search over the states
(squared error + lambda x bits, RDOQ's band Lagrangians).

- ``offline``: the residual of the effort-2 file's base, without the second-pass prediction, against scalar RDOQ
  (rounding, one step toward zero or zero). Both with the same entropy model class: a first-order table per
  coefficient index (and, for DQ, per quantizer), refitted three times to the levels chosen; values beyond 15
  cost an escape and an exponential-Golomb code. RD curves over steps 0.6-1.65x the level's, every RDOQ
  Lagrangian of 0.065, 0.09, 0.12 and every factor, their lower envelopes compared by BD-rate (residual bits,
  PSNR before the post-filter).
- ``coded``: real files. The decoder's dequantization is patched to the state machine (second-pass predictions
  included); the trellis takes its bit costs from the rows a scalar RDOQ traversal met, and the product's coder
  codes the levels with the shipped rows (fitted to scalar levels, which know nothing of the quantizer; the
  file's row offsets and slopes refitted). Both files get the product's corrections; bytes and PSNR before and
  after them, BD-rate over the qualities given.
- ``rows``: as ``coded``, but the rows know the quantizer: every context's row moved by an offset per band and
  quantizer fitted to the image (the scalar levels get one per band), exact code lengths under the bank (escapes
  12 bits), and the trellis run twice more with those rows; residual bits and PSNR before the post-filter.
"""

import sys
from collections.abc import Callable

import numpy as np
from PIL import Image

from aecodec.bench.bdrate import bd_rate
from aecodec.bitstream.format import CORRECTION_FIELD, RESIDUAL, WIENER_FILTER, AecFile, pack, unpack
from aecodec.codec.api import Codec
from aecodec.codec.residual_coding import decode_residual, encode_residual
from aecodec.codec.residual_rdo import BAND_TILT, LAGRANGIAN, rdo_chooser
from aecodec.codec.threads import set_threads
from aecodec.models import residual as R

NEXT_STATE = np.array([[0, 2], [2, 0], [1, 3], [3, 1]])  # [state, parity of |k|]; states 2, 3 use Q1
BAND_LAGRANGIANS = LAGRANGIAN * (1 + BAND_TILT * (R.BAND / (R.BANDS - 1) - 0.5))  # per coefficient, in step^2
ESCAPE, LARGEST = 15, 2000  # offline model: symbols -15..15, beyond them an escape; magnitudes kept below LARGEST
Bits = Callable[[int, np.ndarray, int], np.ndarray]  # (coefficient, levels, quantizer) -> bits of each level
_scalar_dequantized = R.ResidualLayer.dequantized
_delta: dict[str, float | None] = {"factor": None}  # None: the product's scalar dequantization


def _dequantized(self: R.ResidualLayer, values: np.ndarray, level: R.ResidualLevel) -> np.ndarray:
    """The product's dequantization, or the 4-state machine's while a DQ file is coded or decoded."""
    factor = _delta["factor"]
    if factor is None:
        return _scalar_dequantized(self, values, level)
    levels = values.astype(np.int64).reshape(-1, R.COEFFICIENTS)
    state, out = np.zeros(len(levels), np.int64), np.empty(levels.shape, np.float32)
    for c in range(R.COEFFICIENTS):
        out[:, c] = reconstruction(levels[:, c], state >> 1) * factor * level.step
        state = NEXT_STATE[state, np.abs(levels[:, c]) & 1]
    return out.reshape(values.shape)


R.ResidualLayer.dequantized = _dequantized


def reconstruction(levels: np.ndarray, quantizer: np.ndarray | int) -> np.ndarray:
    """Value in units of Delta of ``levels`` under Q0 (2k) or Q1 (2k - sgn k)."""
    return 2 * levels - quantizer * np.sign(levels)


def trellis(scaled: np.ndarray, lagrangians: np.ndarray, bits: Bits) -> tuple[np.ndarray, np.ndarray]:
    """Levels (N, C) and their quantizers minimising squared error (``scaled`` in Delta) + lambda x bits."""
    count, coefficients = scaled.shape
    cost = np.full((count, 4), np.inf)
    cost[:, 0] = 0
    back_state = np.zeros((coefficients, count, 4), np.int8)
    back_level = np.zeros((coefficients, count, 4), np.int32)
    rows = np.arange(count)
    for c in range(coefficients):
        size, sign = np.abs(scaled[:, c]), np.where(scaled[:, c] < 0, -1, 1)
        new = np.full((count, 4), np.inf)
        came_from, chosen = np.zeros((count, 4), np.int8), np.zeros((count, 4), np.int32)
        for state in range(4):
            quantizer = state >> 1
            nearest = np.floor((size + quantizer) / 2).astype(np.int64)
            for magnitude in (np.zeros_like(nearest), np.maximum(nearest, quantizer), nearest + 1):
                level = sign * np.minimum(magnitude, LARGEST)
                error = (scaled[:, c] - reconstruction(level, quantizer)) ** 2
                total = cost[:, state] + error + lagrangians[c] * bits(c, level, quantizer)
                to = NEXT_STATE[state][np.abs(level) & 1]
                better = np.flatnonzero(total < new[rows, to])
                new[better, to[better]] = total[better]
                came_from[better, to[better]], chosen[better, to[better]] = state, level[better]
        cost, back_state[c], back_level[c] = new, came_from, chosen
    state = cost.argmin(1)
    levels, quantizers = np.zeros((count, coefficients), np.int64), np.zeros((count, coefficients), np.int64)
    for c in reversed(range(coefficients)):
        levels[:, c] = back_level[c][rows, state]
        state = back_state[c][rows, state]
        quantizers[:, c] = state >> 1
    return levels, quantizers


def first_order(levels: np.ndarray, groups: np.ndarray, count: int) -> tuple[np.ndarray, float]:
    """Bits table (count, 2 LARGEST + 1) fitted to ``levels`` in ``groups``, and their total bits under it."""
    symbols = np.clip(levels, -ESCAPE - 1, ESCAPE + 1) + ESCAPE + 1  # 0 and the last: the escape's two signs
    counts = np.zeros((count, 2 * ESCAPE + 3)) + 0.05
    np.add.at(counts, (groups, symbols), 1)
    counts[:, 0] = counts[:, -1] = (counts[:, 0] + counts[:, -1]) / 2
    small = np.log2(counts.sum(1, keepdims=True)) - np.log2(counts)
    values = np.arange(-LARGEST, LARGEST + 1)
    excess = np.maximum(np.abs(values) - ESCAPE, 1)
    table = small[:, np.clip(values, -ESCAPE - 1, ESCAPE + 1) + ESCAPE + 1]
    table = table + np.where(np.abs(values) > ESCAPE, 2 * np.floor(np.log2(excess)) + 1, 0)
    return table, float(table[groups, np.clip(levels, -LARGEST, LARGEST) + LARGEST].sum())


def scalar_rdoq(scaled: np.ndarray, lagrangian: float, table: np.ndarray) -> np.ndarray:
    """Each coefficient rounded, one step toward zero or zero, by squared error + lambda x its bits."""
    size, sign = np.abs(scaled), np.where(scaled < 0, -1, 1)
    rounded = np.minimum(np.floor(size + 0.5), LARGEST).astype(np.int64)
    candidates = np.stack([rounded, np.maximum(rounded - 1, 0), np.zeros_like(rounded)])
    index = np.broadcast_to(np.arange(scaled.shape[1]), scaled.shape)[None]
    cost = (size[None] - candidates) ** 2 + lagrangian * table[index, candidates * sign[None] + LARGEST]
    return sign * np.take_along_axis(candidates, cost.argmin(0)[None], 0)[0]


def offline(codec: Codec, x: np.ndarray, quality: int, factors: list[float]) -> str:
    """BD-rate of DQ against scalar RDOQ under first-order models (see the module's docstring)."""
    file = unpack(codec.compress(x, quality, effort=2))
    base, _ = codec._decoded(file)
    level, layer = codec.model.quality_plan(quality, file.header.half_base)[1], codec.model.residual
    residual = R.residual_blocks(x, base).reshape(-1, R.COEFFICIENTS) - layer.means[level.basis]
    coefficients = residual @ layer.bases[level.basis].T
    index = np.broadcast_to(np.arange(R.COEFFICIENTS), coefficients.shape)
    points: dict[str, list[tuple[float, float]]] = {"scalar": [], "dq": []}
    for scale in (0.6, 0.75, 0.9, 1.1, 1.35, 1.65):
        step = level.step * scale
        scaled = coefficients / step
        for lagrangian in (0.065, 0.09, 0.12):
            table, _ = first_order(np.round(scaled).astype(np.int64), index, R.COEFFICIENTS)
            for _ in range(3):
                levels = scalar_rdoq(scaled, lagrangian, table)
                table, bits = first_order(levels, index, R.COEFFICIENTS)
            points["scalar"].append((bits, float(((scaled - levels) ** 2).sum()) * step**2))
        for factor in factors:
            tables = [table, table]
            for _ in range(3):
                levels, quantizers = trellis(
                    coefficients / (factor * step),
                    np.full(R.COEFFICIENTS, 0.09 / factor**2),
                    lambda c, lv, q, tables=tables: tables[q][c, np.clip(lv, -LARGEST, LARGEST) + LARGEST],
                )
                fitted = [first_order(levels[quantizers == q], index[quantizers == q], R.COEFFICIENTS) for q in (0, 1)]
                tables, bits = [t for t, _ in fitted], sum(b for _, b in fitted)
            error = coefficients / (factor * step) - reconstruction(levels, quantizers)
            points["dq"].append((bits, float((error**2).sum()) * (factor * step) ** 2))
    curves = {}
    for name, found in points.items():
        envelope, least = [], np.inf
        for bits, error in sorted(found):
            if error < least:
                envelope.append((bits / 8, 10 * np.log10(255**2 * coefficients.size / error)))
                least = error
        curves[name] = [list(v) for v in zip(*envelope)]
    (rate, psnr), (dq_rate, dq_psnr) = curves["scalar"], curves["dq"]
    low, high = max(min(psnr), min(dq_psnr)), min(max(psnr), max(dq_psnr))
    return f"DQ against scalar RDOQ {bd_rate(rate, psnr, dq_rate, dq_psnr):+.2f}% over {low:.2f}-{high:.2f} dB"


def dq_payload(codec: Codec, level: R.ResidualLevel, x: np.ndarray, base: np.ndarray, factor: float) -> bytes:
    """The residual chunk of ``x`` over ``base`` by DQ, coded with the product's rows (see ``coded``)."""
    layer = codec.model.residual
    shape = R.blocks_shape(x.shape[1], x.shape[0])
    passes = R.decoding_passes(level.depth, *shape)
    rows_met = np.zeros((shape[0] * shape[1], R.COEFFICIENTS), np.int64)
    _delta["factor"] = None
    scalar = rdo_chooser(layer, level, x, base)

    def recording(index: int, band: int, row: int, where: np.ndarray) -> np.ndarray:
        columns = np.flatnonzero(band == R.BAND)
        rows_met[passes[index].blocks[where // len(columns)], columns[where % len(columns)]] = row
        return scalar(index, band, row, where)

    encode_residual(layer, level, recording, shape)  # its last traversal is the coding one: its rows stay
    _delta["factor"] = factor
    levels = dq_levels(codec, level, x, base, factor, lambda blocks, c, quantizer: rows_met[blocks, c])

    def choose(index: int, band: int, row: int, where: np.ndarray) -> np.ndarray:
        return levels[passes[index].blocks][:, np.flatnonzero(band == R.BAND)].ravel()[where]

    return encode_residual(layer, level, choose, shape)


def judged(codec: Codec, file: AecFile, x: np.ndarray, quality: int) -> tuple[int, float, int, float]:
    """Bytes and PSNR of ``file`` without corrections, then with the product's corrections fitted to it."""
    file = file.without_chunk(WIENER_FILTER).without_chunk(CORRECTION_FIELD)
    shown, guides = codec._stages(file)
    corrected, pixels = codec._corrected(file, shown, guides, x, codec._lagrangian(quality))

    def psnr(image: np.ndarray) -> float:
        return round(float(10 * np.log10(255**2 / np.mean((image.astype(float) - x) ** 2))), 3)

    return len(pack(file)), psnr(shown), len(pack(corrected)), psnr(pixels)


def coded(codec: Codec, x: np.ndarray, qualities: list[int], factors: list[float], name: str) -> None:
    """Real DQ files against the effort-2 files (see the module's docstring)."""
    curves: dict[float | None, list[tuple[int, float, int, float]]] = {f: [] for f in [None, *factors]}
    for quality in qualities:
        _delta["factor"] = None
        file = unpack(codec.compress(x, quality, effort=2))
        base, _ = codec._decoded(file)
        level = codec.model.quality_plan(quality, file.header.half_base)[1]
        curves[None].append(judged(codec, file, x, quality))
        for factor in factors:
            payload = dq_payload(codec, level, x, base, factor)
            curves[factor].append(judged(codec, file.with_chunk(RESIDUAL, payload), x, quality))
        _delta["factor"] = None
        print(f"{name} q{quality}: " + " | ".join(f"{f or 'scalar'} {curves[f][-1]}" for f in curves), flush=True)
    for factor in factors:
        for at, stage in ((0, "before the corrections"), (2, "with them")):
            anchor, test = curves[None], curves[factor]
            saving = bd_rate(
                [p[at] for p in anchor], [p[at + 1] for p in anchor], [p[at] for p in test], [p[at + 1] for p in test]
            )
            print(f"{name} DQ {factor} against scalar RDOQ, {stage}: {saving:+.2f}%", flush=True)


def context_ids(values: np.ndarray, depth: int) -> np.ndarray:
    """(blocks, 192) the product's context of every coefficient of ``values`` (h, w, 192)."""
    sums, passes = R.band_sums(values), R.decoding_passes(depth, *values.shape[:2])
    ids = np.zeros((values.shape[0] * values.shape[1], R.COEFFICIENTS), np.int64)
    for index, current in enumerate(passes):
        for band in range(R.BANDS):
            columns = np.flatnonzero(band == R.BAND)
            ids[current.blocks[:, None], columns[None]] = R.contexts(sums, passes, index, band)[:, None]
    return ids


def quantizers_of(levels: np.ndarray) -> np.ndarray:
    """(blocks, 192) the quantizer the state machine gives each coefficient of ``levels``."""
    state, out = np.zeros(len(levels), np.int64), np.zeros(levels.shape, np.int64)
    for c in range(R.COEFFICIENTS):
        out[:, c] = state >> 1
        state = NEXT_STATE[state, np.abs(levels[:, c]) & 1]
    return out


def row_offsets(
    layer: R.ResidualLayer, rows: np.ndarray, levels: np.ndarray, groups: np.ndarray, count: int
) -> tuple[np.ndarray, float]:
    """The offset in -8..8 of every band's and group's rows (``rows`` per coefficient) coding ``levels`` in the
    fewest bits, and those bits (escapes 12 bits each)."""
    bits_of_row = np.log2(layer.bank.sum(1, keepdims=True)) - np.log2(layer.bank)
    symbols = np.clip(levels, -R.ESCAPE, R.ESCAPE) + R.ESCAPE
    bands = np.broadcast_to(R.BAND, levels.shape)
    offsets, total = np.zeros((R.BANDS, count), np.int64), 12.0 * (np.abs(levels) >= R.ESCAPE).sum()
    for band in range(R.BANDS):
        for group in range(count):
            chosen = (bands == band) & (groups == group)
            if chosen.any():
                costs = [
                    bits_of_row[np.clip(rows[chosen] + o, 0, len(layer.bank) - 1), symbols[chosen]].sum()
                    for o in range(-8, 9)
                ]
                offsets[band, group], total = int(np.argmin(costs)) - 8, total + min(costs)
    return offsets, total


def decoded_psnr(codec: Codec, level: R.ResidualLevel, x: np.ndarray, base: np.ndarray, levels: np.ndarray) -> float:
    """PSNR of ``base`` plus the residual ``levels`` decode to (under the current dequantization), unfiltered."""
    pixels = base.copy()
    shape = R.blocks_shape(x.shape[1], x.shape[0])
    codec.model.residual.add_to(pixels, levels.reshape(*shape, -1).astype(np.int16), level)
    return float(10 * np.log10(255**2 / np.mean((pixels.astype(float) - x) ** 2)))


def dq_levels(
    codec: Codec, level: R.ResidualLevel, x: np.ndarray, base: np.ndarray, factor: float, rows_of: Callable
) -> np.ndarray:
    """(blocks, 192) DQ levels of ``x`` over ``base``, the trellis's bits from ``rows_of(blocks, c, quantizer)``."""
    layer = codec.model.residual
    shape = R.blocks_shape(x.shape[1], x.shape[0])
    passes = R.decoding_passes(level.depth, *shape)
    bits_of_row = np.log2(layer.bank.sum(1, keepdims=True)) - np.log2(layer.bank)
    residual = R.residual_blocks(x, base).reshape(-1, R.COEFFICIENTS).astype(np.float64)
    levels = np.zeros((shape[0] * shape[1], R.COEFFICIENTS), np.int64)
    for index, current in enumerate(passes):
        target = (residual[current.blocks] - layer.means[level.basis]) @ layer.bases[level.basis].T
        if index == len(passes) - 1 and layer.predictors is not None:
            anchors = levels.reshape(*shape, -1).astype(np.int16)
            target -= layer.predictions(anchors, level, slice(0, shape[0])).reshape(-1, R.COEFFICIENTS)[current.blocks]

        def bits(c: int, level_: np.ndarray, quantizer: int, blocks: np.ndarray = current.blocks) -> np.ndarray:
            symbols = np.clip(level_, -R.ESCAPE, R.ESCAPE) + R.ESCAPE
            escapes = np.where(np.abs(level_) >= R.ESCAPE, 12, 0)
            return bits_of_row[rows_of(blocks, c, quantizer), symbols] + escapes

        scaled = target / (factor * level.step)
        levels[current.blocks] = trellis(scaled, BAND_LAGRANGIANS / factor**2, bits)[0]
    return levels


def with_rows(codec: Codec, x: np.ndarray, qualities: list[int], factor: float, name: str) -> None:
    """DQ under quantizer-aware rows against the effort-2 levels (see the module's docstring)."""
    layer, curves = codec.model.residual, {"scalar": [], "dq": []}
    for quality in qualities:
        _delta["factor"] = None
        file = unpack(codec.compress(x, quality, effort=2))
        base, _ = codec._decoded(file)
        level = codec.model.quality_plan(quality, file.header.half_base)[1]
        shape = R.blocks_shape(x.shape[1], x.shape[0])
        scalar = decode_residual(layer, level, file.chunk(RESIDUAL), shape).reshape(-1, R.COEFFICIENTS).astype(np.int64)
        rows = level.rows[context_ids(scalar.reshape(*shape, -1), level.depth)]
        bits = row_offsets(layer, rows, scalar, np.zeros_like(scalar), 1)[1]
        curves["scalar"].append((bits / 8, decoded_psnr(codec, level, x, base, scalar)))
        _delta["factor"] = factor
        levels = decode_residual(layer, level, dq_payload(codec, level, x, base, factor), shape)
        levels = levels.reshape(-1, R.COEFFICIENTS).astype(np.int64)
        for last in (False, False, True):
            rows = level.rows[context_ids(levels.reshape(*shape, -1), level.depth)]
            offsets, bits = row_offsets(layer, rows, levels, quantizers_of(levels), 2)
            if last:
                break

            def rows_of(blocks: np.ndarray, c: int, quantizer: int, rows: np.ndarray = rows, offsets=offsets):
                return np.clip(rows[blocks, c] + offsets[R.BAND[c], quantizer], 0, len(layer.bank) - 1)

            levels = dq_levels(codec, level, x, base, factor, rows_of)
        curves["dq"].append((bits / 8, decoded_psnr(codec, level, x, base, levels)))
        _delta["factor"] = None
        points = {k: (round(v[-1][0]), round(v[-1][1], 3)) for k, v in curves.items()}
        print(f"{name} q{quality}: residual bytes, dB {points}; offsets per quantizer {offsets[:5].tolist()}")
    (rate, psnr), (dq_rate, dq_psnr) = ([list(v) for v in zip(*curves[k])] for k in ("scalar", "dq"))
    print(f"{name} DQ {factor} against scalar RDOQ: {bd_rate(rate, psnr, dq_rate, dq_psnr):+.2f}%", flush=True)


def main() -> None:
    set_threads(1)
    mode, factors, qualities = (
        sys.argv[1],
        [float(f) for f in sys.argv[2].split(",")],
        [int(q) for q in sys.argv[3].split(",")],
    )
    codec = Codec()
    for path in sys.argv[4:]:
        x, name = np.asarray(Image.open(path).convert("RGB")), path.split("/")[-1]
        if mode == "coded":
            coded(codec, x, qualities, factors, name)
        elif mode == "rows":
            for factor in factors:
                with_rows(codec, x, qualities, factor, name)
        else:
            for quality in qualities:
                print(f"{name} q{quality}: {offline(codec, x, quality, factors)}", flush=True)


if __name__ == "__main__":
    main()
