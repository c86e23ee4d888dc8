"""Probe: transform_16.py's 16x16 class scored through the product's contexts, and two cheaper area classes.

    [RDOQ=1] [SHARED_ROWS=1] [ZERO_FREE=1] [KINDS=16x16,hadamard,pairs] PYTHONPATH=. \
        python research/residual/transform_16_contexts.py QUALITIES IMAGE...

Per quality: effort-2 residuals of twelve training photos (001, 005, ..., 045; 768x512 crops). An area of 16x16
pixels is coded either as its four 8x8 blocks (the shipped KLT, second-pass blocks less the shipped prediction, as
the product codes) or by an area transform, its 768 levels as four pseudo-blocks at its blocks' places:
- 16x16: a 768-coefficient KLT fitted on the training areas, coefficient 4j + k as coefficient j of pseudo-block k;
- hadamard: the 8x8 KLT of each block, then a 4-point Hadamard across the four blocks (it compacts only what
  neighbouring blocks share, so it shows what choosing between two transforms buys whatever they compact);
- pairs: the sum and difference over root 2 of the two anchors' KLT coefficients ((0, 0), (1, 1)) at their places,
  and of the two second-pass blocks' (less their prediction) at theirs: the anchors decode before the second pass.
Both 16x16 and hadamard mix anchors with second-pass blocks, so a second-pass block next to such an area loses its
prediction (its anchors decode only with the whole area).

Every block goes through the product's contexts (depth 2) with a row table per class (``best_rows``, the bank's
rows; SHARED_ROWS: one table fitted on both classes); an area's cost in each class is its blocks' bits and squared
error in a map all of that class, J = D + 0.1 step^2 R with the flag's bits. On the training photos four rounds
alternate the choice with refitting the rows and the flag's prior; the reference's rows (every area 8x8) are fitted
the same way. The evaluated image's areas choose by the same J; the classes cost their bits under a (left, upper)
context fitted on the training maps, or with ZERO_FREE iid and only for areas with a nonzero level (which a decoder
could read after the area's levels when the rows are shared). Levels: the deadzone quantizer, or with RDOQ=1 the
product's RDOQ (its Lagrangians, three candidates) decided through the contexts as the coder reaches them.
Printed: bits, distortion (as bits at the lambda) and J in % of the all-8x8 bits, and the share of areas chosen.
"""

import os
import sys

import numpy as np

from aecodec.codec.api import Codec
from aecodec.codec.residual_rdo import BAND_TILT, LAGRANGIAN
from aecodec.models.residual import (
    ALPHABET,
    BAND,
    BANDS,
    COEFFICIENTS,
    DEPTH,
    EDGE,
    ESCAPE,
    band_sums,
    context_count,
    contexts,
    decoding_passes,
    neighbour_sum,
)
from aecodec.training.residual import best_rows
from research.crops import load
from research.residual.transform_set import (
    LAM,
    TRAIN,
    contexted_class_bits,
    quantize,
    residual_and_step,
)

ROUNDS = 4
RDOQ = os.environ.get("RDOQ") == "1"  # the product's RDOQ through the contexts, else the deadzone quantizer
SHARED_ROWS = os.environ.get("SHARED_ROWS") == "1"  # both classes coded with one row table, fitted on both
# The class is coded only for areas with a nonzero level, iid (with SHARED_ROWS the contexts do not read the class,
# so a decoder could read it after the area's levels); else every area's, under a (left, upper) context.
ZERO_FREE = os.environ.get("ZERO_FREE") == "1"
OFFSET = 0.05  # reconstruction offset of transform_set.quantize
HADAMARD = np.array([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]]) / 2
# The anchors ((0, 0) and (1, 1)) mixed at their places, the second-pass blocks at theirs: the anchors decode before
# the second pass (the second-pass blocks are mixed less their prediction).
PAIRS = np.array([[1, 0, 0, 1], [0, 1, 1, 0], [0, 1, -1, 0], [1, 0, 0, -1]]) / np.sqrt(2)


def to_areas(blocks: np.ndarray) -> np.ndarray:
    """(areas, 4, n): the four blocks of each 16x16 area of (h, w, n) blocks (an odd last row or column left out)."""
    h, w, size = blocks.shape[0] // 2 * 2, blocks.shape[1] // 2 * 2, blocks.shape[2]
    return blocks[:h, :w].reshape(h // 2, 2, w // 2, 2, size).transpose(0, 2, 1, 3, 4).reshape(-1, 4, size)


def area_blocks(shape: tuple[int, int]) -> np.ndarray:
    """(areas, 4) flat indices of each 16x16 area's four blocks among (h, w) blocks, in :func:`to_areas` order."""
    return to_areas(np.arange(shape[0] * shape[1]).reshape(*shape, 1))[..., 0]


def from_areas(areas: np.ndarray, into: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """``into`` (h, w, 192) with the chosen areas' four (pseudo-)blocks ``areas`` (n, 4, 192) put in place."""
    out = into.copy()
    out.reshape(-1, COEFFICIENTS)[area_blocks(into.shape[:2])[chosen]] = areas[chosen]
    return out


def class_map(chosen: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(h, w) class of each block: 1 inside a chosen area, else 0."""
    out = np.zeros(shape, dtype=np.int64)
    out.ravel()[area_blocks(shape)[chosen]] = 1
    return out


class Transforms:
    """One image's blocks at a step in both classes: the product's 8x8 KLT coefficients (second-pass blocks less
    the prediction) and the area transform's, as pseudo-blocks, in steps."""

    def __init__(self, raw, predicted, step, mean8, basis8, area_transform, keeps_anchors: bool = False) -> None:
        self.shape, self.step, self.keeps_anchors = raw.shape[:2], step, keeps_anchors
        self.scaled8 = ((predicted.reshape(-1, 192) - mean8) @ basis8.T).reshape(raw.shape) / step
        self.unpredicted8 = ((raw.reshape(-1, 192) - mean8) @ basis8.T).reshape(raw.shape) / step
        self.area_scaled = area_transform(to_areas(predicted if keeps_anchors else raw)) / step
        self.areas = len(self.area_scaled)

    def code(self, chosen: np.ndarray, tables: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        """The (h, w, 192) levels of a choice of areas, its class map, and per block the squared error and the bits
        under ``tables`` (2, contexts, ALPHABET; none: no bits): deadzone levels, with RDOQ the product's decisions."""
        classes = class_map(chosen, self.shape)
        # a second-pass block next to an area transform is not predicted: its anchors decode only with that area,
        # unless the transform keeps the anchors apart from the second-pass blocks
        unpredicted = (neighbour_sum(classes, EDGE) > 0) & (not self.keeps_anchors)
        blocks8 = np.where(unpredicted[..., None], self.unpredicted8, self.scaled8)
        scaled = from_areas(self.area_scaled, blocks8, chosen)
        if RDOQ and tables is not None:
            levels, bits, error = rdoq_walk(scaled, classes, tables)
        else:
            levels, error = quantize(scaled.reshape(-1, 192), 1.0)
            levels = levels.reshape(scaled.shape).astype(np.int64)
            bits = np.zeros(self.shape) if tables is None else block_bits(levels, classes, tables)
        return levels, classes, error.reshape(self.shape) * self.step**2, bits.reshape(self.shape)

    def costs(self, tables: np.ndarray, prior: float, unit: float) -> np.ndarray:
        """(areas, 2) J of each area in each class, its bits through the contexts of a map all of that class,
        the class's flag included."""
        out = []
        for kind, flag in ((0, 1 - prior), (1, prior)):
            levels, _, error, bits = self.code(np.full(self.areas, bool(kind)), tables)
            out.append(
                to_areas((error + unit * bits)[..., None]).sum((1, 2)) - unit * np.log2(flag) * signalled(levels)
            )
        return np.stack(out, 1)


def signalled(levels: np.ndarray) -> np.ndarray:
    """(areas,) whether each area codes its class: every area, or with ZERO_FREE those with a nonzero level."""
    nonzero = to_areas(levels).any((1, 2))
    return nonzero if ZERO_FREE else np.ones_like(nonzero)


def klt_areas(train_raw: list[np.ndarray]):
    """The area transform of a 768-coefficient KLT fitted on the training areas: coefficient 4j + k as coefficient j
    of pseudo-block k."""
    areas = np.concatenate([to_areas(r).reshape(-1, 768) for r in train_raw])
    mean = areas.mean(0)
    _, vectors = np.linalg.eigh(np.cov((areas - mean).T))
    basis = vectors[:, ::-1].T
    return lambda raw_areas: ((raw_areas.reshape(-1, 768) - mean) @ basis.T).reshape(-1, 192, 4).transpose(0, 2, 1)


def mixed_areas(mixing: np.ndarray, mean8: np.ndarray, basis8: np.ndarray):
    """An area transform: the 8x8 KLT of each block, then the orthonormal ``mixing`` (4, 4) across the four blocks."""
    return lambda areas: np.einsum("ki,nij->nkj", mixing, (areas - mean8) @ basis8.T)


def rdoq_walk(scaled: np.ndarray, classes: np.ndarray, tables: np.ndarray) -> tuple[np.ndarray, ...]:
    """The product's RDOQ (aecodec.codec.residual_rdo) of coefficients ``scaled`` (h, w, 192, in steps) through the
    contexts with ``tables``: the levels (h, w, 192), and per block its bits and squared error in squared steps."""
    size, flat_tables = context_count(DEPTH), tables.reshape(-1, ALPHABET)
    h, w = scaled.shape[:2]
    values, sums = np.zeros((h * w, COEFFICIENTS), np.int64), np.zeros((h, w, BANDS), np.int64)
    bits, error = np.zeros(h * w), np.zeros(h * w)
    flat, cls = scaled.reshape(-1, COEFFICIENTS), classes.ravel()
    lagrangians = LAGRANGIAN * (1 + BAND_TILT * (np.arange(BANDS) / (BANDS - 1) - 0.5))
    passes = decoding_passes(DEPTH, h, w)
    for index, current in enumerate(passes):
        blocks = current.blocks
        for band in range(BANDS):
            columns = np.flatnonzero(band == BAND)
            row_bits = flat_tables[contexts(sums, passes, index, band) + size * cls[blocks]]  # (n, ALPHABET)
            x = flat[blocks[:, None], columns]
            magnitude, sign = np.abs(x), np.where(x < 0, -1, 1)
            rounded = np.floor(magnitude + 0.5).astype(np.int64)
            candidates = np.stack([rounded, np.maximum(rounded - 1, 0), np.zeros_like(rounded)])
            squared = (magnitude - np.where(candidates > 0, candidates - OFFSET, 0)) ** 2
            rate = np.take_along_axis(row_bits[None], ESCAPE + sign * np.minimum(candidates, ESCAPE), 2)
            pick = (squared + lagrangians[band] * rate).argmin(0)[None]
            chosen = sign * np.take_along_axis(candidates, pick, 0)[0]
            values[blocks[:, None], columns] = chosen
            sums.reshape(-1, BANDS)[blocks, band] = np.abs(chosen).sum(1)
            bits[blocks] += np.take_along_axis(rate, pick, 0)[0].sum(1)
            error[blocks] += np.take_along_axis(squared, pick, 0)[0].sum(1)
    return values.reshape(scaled.shape), bits, error


def walk(values: np.ndarray, classes: np.ndarray, score) -> np.ndarray:
    """(h, w) sums per block of ``score(context, symbols)`` over the product's traversal (depth 2) of ``values``
    (h, w, 192), the context of a class-1 block offset by one table's size."""
    size = context_count(DEPTH)
    out = np.zeros(values.shape[0] * values.shape[1])
    sums, flat, cls = band_sums(values), values.reshape(-1, COEFFICIENTS), classes.ravel()
    passes = decoding_passes(DEPTH, *values.shape[:2])
    for index, current in enumerate(passes):
        for band in range(BANDS):
            columns = np.flatnonzero(band == BAND)
            ctx = contexts(sums, passes, index, band) + size * cls[current.blocks]
            symbols = np.clip(flat[current.blocks[:, None], columns], -ESCAPE, ESCAPE) + ESCAPE
            out[current.blocks] += score(ctx, symbols).sum(1)
    return out.reshape(values.shape[:2])


def block_bits(values: np.ndarray, classes: np.ndarray, tables: np.ndarray) -> np.ndarray:
    """(h, w) bits of each block of ``values`` under ``tables`` (2, contexts, ALPHABET), bits per symbol per class."""
    flat = tables.reshape(-1, ALPHABET)
    return walk(values, classes, lambda ctx, symbols: flat[ctx[:, None], symbols])


def class_counts(values: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """(2, contexts, ALPHABET) symbol counts of ``values`` (h, w, 192) per block class in the product's contexts."""
    size = context_count(DEPTH)
    counts = np.zeros((2 * size, ALPHABET), dtype=np.int64)

    def count(ctx: np.ndarray, symbols: np.ndarray) -> np.ndarray:
        np.add.at(counts, (np.broadcast_to(ctx[:, None], symbols.shape), symbols), 1)
        return np.zeros(symbols.shape)

    walk(values, classes, count)
    return counts.reshape(2, size, ALPHABET)


def row_tables(counts: np.ndarray, bank: np.ndarray) -> np.ndarray:
    """(2, contexts, ALPHABET) bits per symbol of the rows fitted on ``counts`` (2, contexts, ALPHABET) per class
    (with SHARED_ROWS, on both classes' counts together)."""
    log = -np.log2(bank / bank.sum(1, keepdims=True))
    return np.stack([log[best_rows(counts.sum(0) if SHARED_ROWS else c, bank)] for c in counts])


def fit_choice(
    train: list[Transforms], unit: float, bank: np.ndarray, choose: bool = True
) -> tuple[np.ndarray, float, list]:
    """Row tables per class and the class prior, alternated with the training areas' choice by J through the
    contexts (or, not ``choose``, every area 8x8: the reference's rows, fitted the same way); the training choices."""
    # start: each class's rows fitted on every area's deadzone levels
    counts = np.stack([sum(class_counts(*t.code(np.full(t.areas, bool(k)))[:2])[k] for t in train) for k in (0, 1)])
    prior = 0.5
    for _ in range(ROUNDS):
        tables = row_tables(counts, bank)
        chosen = [t.costs(tables, prior, unit).argmin(1) == 1 if choose else np.zeros(t.areas, bool) for t in train]
        coded = [t.code(c, tables)[:2] for t, c in zip(train, chosen)]
        flagged = np.concatenate([c[signalled(levels)] for c, (levels, _) in zip(chosen, coded)])
        prior = float(np.clip(flagged.mean(), 1e-3, 1 - 1e-3))
        counts = sum(class_counts(*k) for k in coded)
    return row_tables(counts, bank), prior, chosen


def residuals(codec: Codec, path: str, quality: int) -> tuple:
    """The (h, w, 192) residual blocks of one effort-2 file, the same less the shipped second-pass prediction, the
    step and the shipped mean and KLT (transform_set.residual_and_step, from one encode)."""
    raw, step, mean, basis, base = residual_and_step(codec, path, quality, predict=False)
    layer, level = codec.model.residual, codec.model.quality_plan(quality)[1]
    pixels = np.asarray(load(path))
    predicted = layer.predictions(layer.analyze(pixels, base, level), level, slice(0, len(raw)))
    return raw, raw - predicted.astype(np.float64) @ basis, step, mean, basis


def main() -> None:
    qualities, images = [int(q) for q in sys.argv[1].split(",")], sys.argv[2:]
    codec = Codec()
    bank = codec.model.residual.bank
    for quality in qualities:
        prepared = [residuals(codec, p, quality) for p in TRAIN]
        step, mean8, basis8 = prepared[0][2:5]
        unit = LAM * step * step
        kinds = {
            "16x16": klt_areas([p[0] for p in prepared]),
            "hadamard": mixed_areas(HADAMARD, mean8, basis8),
            "pairs": mixed_areas(PAIRS, mean8, basis8),
        }
        kinds = {name: kinds[name] for name in os.environ.get("KINDS", "16x16,hadamard,pairs").split(",")}
        fitted = {}
        for name, transform in kinds.items():
            train = [Transforms(p[0], p[1], step, mean8, basis8, transform, name == "pairs") for p in prepared]
            tables, prior, chosen = fit_choice(train, unit, bank)
            area_maps = [c.reshape(t.shape[0] // 2, t.shape[1] // 2).astype(int) for t, c in zip(train, chosen)]
            fitted[name] = (transform, tables, prior, area_maps)
        reference_tables = fit_choice(train, unit, bank, choose=False)[0]
        for path in images:
            raw, predicted = residuals(codec, path, quality)[:2]
            parts = []
            for name, (transform, tables, prior, area_maps) in fitted.items():
                test = Transforms(raw, predicted, step, mean8, basis8, transform, name == "pairs")
                none = np.zeros(test.areas, bool)
                _, _, reference_error, reference = test.code(none, reference_tables)
                chosen = test.costs(tables, prior, unit).argmin(1) == 1
                levels, _, error, bits = test.code(chosen, tables)
                if ZERO_FREE:  # iid, the training prior, only where the area has a nonzero level
                    flags = -np.log2(np.where(chosen, prior, 1 - prior))[signalled(levels)].sum()
                else:
                    flags = contexted_class_bits(area_maps, chosen.reshape(test.shape[0] // 2, -1).astype(int), 2)
                total, reference = bits.sum() + flags, reference.sum()
                d_bits = (error.sum() - reference_error.sum()) / unit / reference
                parts.append(
                    f"{name} {chosen.mean():.0%} areas: bits {total / reference - 1:+.2%} D {d_bits:+.2%} "
                    f"J {total / reference - 1 + d_bits:+.2%} (flags {flags / reference:.2%})"
                )
            rate = reference / raw.shape[0] / raw.shape[1] / 64
            print(f"q{quality} {path.split('/')[-1]} ({rate:.3f} bpp): " + "; ".join(parts), flush=True)


if __name__ == "__main__":
    main()
