"""Probe: a set of K learned 8x8x3 KLTs, one chosen per block, against K context classes of the shipped KLT.

Session 19's control showed that choosing between transforms under a first-order model mostly buys a split
of the blocks into classes (a context, which the coder already has). Here the set is learned: blocks are
split by the orientation of their luma gradients, then alternately reassigned by J = D + LAM step^2 R and
each class's KLT refitted on its blocks (Sezer-style); the control runs the same loop with every class
keeping the shipped KLT, so learned minus control is what the transforms themselves compact. Histograms,
transforms and class frequencies are fitted on training photos, then held fixed on the evaluated images.

Both are scored twice on each evaluated image: under first-order histograms per coefficient index (and class),
and under the product's contexts (depth 2, rows fitted on the training levels, shared by all classes; the
class of each block coded first-order, and under a (left, upper) class context for comparison).

Usage: ``[PREDICT=1] [ZERO_FREE=1] [SOT=N] PYTHONPATH=. python research/residual/transform_set.py QUALITIES K... --
IMAGE...``: PREDICT subtracts the shipped second-pass prediction first (as the product codes), ZERO_FREE codes
no class for an all-zero block, SOT refines every learned transform for the quantizer (N Procrustes steps).
"""

import os
import sys

import numpy as np

from aecodec.bitstream.format import unpack
from aecodec.codec.api import Codec
from aecodec.models.residual import DEPTH, context_symbol_counts, residual_blocks
from aecodec.training.residual import best_rows
from research.crops import load

LAM = 0.1
TRAIN = [f"../shared/data/photos/{i:03d}.png" for i in (1, 5, 9, 13, 17, 21, 25, 29, 33, 37, 41, 45)]
ITERATIONS = 6
ZERO_FREE = os.environ.get("ZERO_FREE") == "1"  # no class coded for a block whose levels are all zero
PREDICT = os.environ.get("PREDICT") == "1"  # with the shipped second-pass prediction
SOT_ITERATIONS = int(os.environ.get("SOT", "0"))  # sparse-orthonormal refinements of each learned transform
SYMBOLS = 40  # histogram half-width; larger magnitudes cost 8 bits more than the edge bin


def residual_and_step(
    codec: Codec, path: str, quality: int, predict: bool = PREDICT
) -> tuple[np.ndarray, float, np.ndarray, np.ndarray, np.ndarray]:
    """The (h, w, 192) residual blocks a level codes on its effort-2 base (less the shipped second-pass prediction
    with ``predict``), its step, the shipped mean and KLT, and the (H, W, 3) base."""
    image = load(path)
    base, _ = codec._decoded(unpack(bytes(codec.compress(image, quality, effort=2))))
    level = codec.model.quality_plan(quality)[1]
    layer = codec.model.residual
    pixels = np.asarray(image)
    blocks = residual_blocks(pixels, base).astype(np.float64)
    mean, basis = layer.means[level.basis].astype(np.float64), layer.bases[level.basis].astype(np.float64)
    if predict:  # second-pass blocks less their prediction from the shipped layer's anchors, in pixels
        predicted = layer.predictions(layer.analyze(pixels, base, level), level, slice(0, len(blocks)))
        blocks -= predicted.astype(np.float64) @ basis
    return blocks, level.step, mean, basis, base


def orientation_classes(blocks: np.ndarray, k: int) -> np.ndarray:
    """Initial classes: the angle of each block's summed luma structure tensor, in ``k`` equal sectors."""
    luma = blocks.reshape(-1, 8, 8, 3).mean(3)
    gx, gy = np.diff(luma, axis=2)[:, :-1], np.diff(luma, axis=1)[:, :, :-1]
    angle = 0.5 * np.arctan2(2 * (gx * gy).sum((1, 2)), (gx * gx - gy * gy).sum((1, 2)))
    return np.minimum(((angle + np.pi / 2) / np.pi * k).astype(int), k - 1)


def quantize(coefficients: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Deadzone levels (rounding offset 0.4) and per-block squared error with reconstruction offset 0.05."""
    magnitude = np.floor(np.abs(coefficients) / step + 0.4)
    error = (np.sign(coefficients) * np.maximum(magnitude - 0.05, 0) * step - coefficients) ** 2
    return (np.sign(coefficients) * magnitude).astype(int), error.sum(1)


def histograms(levels: np.ndarray) -> np.ndarray:
    """(192, 2 SYMBOLS + 1) -log2 probabilities per coefficient index, lightly smoothed."""
    clipped = np.clip(levels, -SYMBOLS, SYMBOLS) + SYMBOLS
    counts = np.stack([np.bincount(clipped[:, j], minlength=2 * SYMBOLS + 1) for j in range(192)]) + 0.2
    return -np.log2(counts / counts.sum(1, keepdims=True))


def bits(levels: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Per-block first-order bits of ``levels`` under ``table``."""
    clipped = np.clip(levels, -SYMBOLS, SYMBOLS) + SYMBOLS
    return table[np.arange(192), clipped].sum(1) + 8 * (np.abs(levels) > SYMBOLS).sum(1)


def klt(blocks: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Rows: eigenvectors of the blocks' second moment about ``mean``, by decreasing variance."""
    centred = blocks - mean
    _, vectors = np.linalg.eigh(centred.T @ centred)
    return vectors[:, ::-1].T


def sparse_orthonormal(blocks: np.ndarray, mean: np.ndarray, basis: np.ndarray, step: float) -> np.ndarray:
    """The basis refined for the deadzone quantizer (Sezer's sparse orthonormal transform): alternately quantize,
    then the orthonormal basis closest to mapping each block onto its dequantized levels (Procrustes), rows
    finally sorted by variance."""
    centred = blocks - mean
    for _ in range(SOT_ITERATIONS):
        levels = quantize(centred @ basis.T, step)[0]
        dequantized = np.sign(levels) * np.maximum(np.abs(levels) - 0.05, 0) * step
        u, _, vt = np.linalg.svd(dequantized.T @ centred)
        basis = u @ vt
    return basis[np.argsort((centred @ basis.T).var(0))[::-1]]


def costs(blocks, step, mean, transforms, tables, priors) -> np.ndarray:
    """(n, K) J of every block under every class, class signalling included, in squared steps' units."""
    out = []
    for basis, table, prior in zip(transforms, tables, priors):
        levels, error = quantize((blocks - mean) @ basis.T, step)
        signalled = levels.any(1) if ZERO_FREE else 1
        out.append(error + LAM * step * step * (bits(levels, table) - np.log2(prior) * signalled))
    return np.stack(out, 1)


def nonzero_blocks(blocks, step, mean, transforms, classes) -> np.ndarray:
    """Whether each block has a nonzero level in its class's transform."""
    out = np.zeros(len(blocks), bool)
    for c, basis in enumerate(transforms):
        members = classes == c
        out[members] = quantize((blocks[members] - mean) @ basis.T, step)[0].any(1)
    return out


def fit_set(blocks, step, mean, basis, k, learn) -> tuple[list, list, np.ndarray]:
    """K transforms (learned, or the shipped one K times), their tables and class frequencies, on training blocks."""
    classes = orientation_classes(blocks, k)
    for _ in range(ITERATIONS):
        members = [blocks[classes == c] for c in range(k)]
        transforms = [klt(m, mean) if learn and len(m) > 400 else basis for m in members]
        if SOT_ITERATIONS and learn:
            transforms = [sparse_orthonormal(m, mean, t, step) for m, t in zip(members, transforms)]
        tables = [histograms(quantize((m - mean) @ t.T, step)[0]) for m, t in zip(members, transforms)]
        counted = classes[nonzero_blocks(blocks, step, mean, transforms, classes)] if ZERO_FREE else classes
        priors = np.maximum(np.bincount(counted, minlength=k), 1) / max(len(counted), 1)
        classes = costs(blocks, step, mean, transforms, tables, priors).argmin(1)
    return transforms, tables, priors


def chosen_levels(blocks, step, mean, fitted) -> tuple[np.ndarray, float, float]:
    """(h, w, 192) levels of each block in its class's transform (chosen by first-order J), their squared error and
    the classes' first-order bits."""
    transforms, _, priors = fitted
    flat = blocks.reshape(-1, 192)
    classes = costs(flat, step, mean, *fitted).argmin(1)
    levels, error = np.zeros(flat.shape, int), np.zeros(len(flat))
    for c, basis in enumerate(transforms):
        members = classes == c
        levels[members], error[members] = quantize((flat[members] - mean) @ basis.T, step)
    signalled = levels.any(1) if ZERO_FREE else np.ones(len(flat), bool)
    class_bits = -np.log2(priors[classes])[signalled].sum() if len(transforms) > 1 else 0.0
    class_map = np.where(signalled, classes, len(transforms)).reshape(blocks.shape[:2])
    return levels.reshape(blocks.shape), error.sum(), class_bits, class_map


def class_contexts(class_map: np.ndarray, k: int) -> np.ndarray:
    """(h, w) context of each block's class: its left and upper neighbours' classes (k: no class, or outside)."""
    padded = np.pad(class_map, 1, constant_values=k)
    return padded[1:-1, :-2] * (k + 1) + padded[:-2, 1:-1]


def contexted_class_bits(train_maps: list, test_map: np.ndarray, k: int) -> float:
    """Bits of the test blocks' classes under a table per (left, upper) class context fitted on ``train_maps``."""
    counts = np.full(((k + 1) ** 2, k), 0.5)
    for m in train_maps:
        signalled = m < k
        np.add.at(counts, (class_contexts(m, k)[signalled], m[signalled]), 1)
    table = -np.log2(counts / counts.sum(1, keepdims=True))
    signalled = test_map < k
    return float(table[class_contexts(test_map, k)[signalled], test_map[signalled]].sum())


def context_coded(train: list, test: np.ndarray, bank: np.ndarray) -> float:
    """Bits of ``test`` levels under the product's contexts (depth 2) with rows fitted on the ``train`` levels."""
    counts = sum(context_symbol_counts(t, DEPTH) for t in train)
    rows = bank[best_rows(counts, bank)]
    return float(-(context_symbol_counts(test, DEPTH) * np.log2(rows / rows.sum(1, keepdims=True))).sum())


def contexts_report(codec, train, test, step, mean, single, sets, name) -> None:
    """Print what each learned set changes under the product's context rows (shared by the classes), in % of bits."""
    bank, parts = codec.model.residual.bank, []
    for key, fitted in [((1, False), single)] + [(k, f) for k, f in sets.items() if k[1]]:
        train_chosen = [chosen_levels(t[0], step, mean, fitted) for t in train]
        levels, error, class_bits, class_map = chosen_levels(test, step, mean, fitted)
        contexted = contexted_class_bits([c[3] for c in train_chosen], class_map, key[0]) if key[0] > 1 else 0.0
        coded = context_coded([c[0] for c in train_chosen], levels, bank)
        parts.append((key[0], coded + class_bits, error, class_bits, contexted))
    _, reference, reference_error, _, _ = parts[0]
    for k, total, error, class_bits, contexted in parts[1:]:
        d_bits = (error - reference_error) / (LAM * step * step)
        print(
            f"{name} contexts K={k} learned: bits {(total - reference) / reference:+.2%}"
            f" (classes {class_bits / reference:.2%}, with neighbour contexts {contexted / reference:.2%}),"
            f" D {d_bits / reference:+.2%}, J {(total + d_bits - reference) / reference:+.2%}",
            flush=True,
        )


def main() -> None:
    split = sys.argv.index("--")
    qualities = [int(q) for q in sys.argv[1].split(",")]
    sizes, images = [int(k) for k in sys.argv[2:split]], sys.argv[split + 1 :]
    codec = Codec()
    for quality in qualities:
        train = [residual_and_step(codec, p, quality) for p in TRAIN]
        step, mean, basis = train[0][1:4]
        blocks = np.concatenate([t[0].reshape(-1, 192) for t in train])
        single = fit_set(blocks, step, mean, basis, 1, False)
        sets = {(k, learn): fit_set(blocks, step, mean, basis, k, learn) for k in sizes for learn in (False, True)}
        for path in images:
            test = residual_and_step(codec, path, quality)[0]
            contexts_report(codec, train, test, step, mean, single, sets, f"q{quality} {path.split('/')[-1]}")
            test = test.reshape(-1, 192)
            reference = costs(test, step, mean, *single)[:, 0].sum()
            levels = quantize((test - mean) @ single[0][0].T, step)[0]
            unit = LAM * step * step * bits(levels, single[1][0]).sum() / 100  # J in % of the single KLT's bits
            parts = []
            for (k, learn), fitted in sets.items():
                j = costs(test, step, mean, *fitted)
                parts.append(f"K={k} {'learned' if learn else 'control'} {(j.min(1).sum() - reference) / unit:+.2f}%")
            print(f"q{quality} {path.split('/')[-1]}: " + ", ".join(parts), flush=True)


if __name__ == "__main__":
    main()
