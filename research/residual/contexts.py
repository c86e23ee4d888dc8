"""How many residual bits would richer contexts save? Fit rows on half the training photos, count on the other half.

Candidates added to the coder's context: (a) the base decode's activity in the block (float pixels:
an upper bound, not usable as is since the decoder's synthesis is float), (b) a class of the block's
bottom base index (exact: a table lookup), (c) both with the top index's class.
Usage: ``python research/residual/contexts.py`` (from the repository root; ~10 min on 2 cores).
"""

import numpy as np
from PIL import Image

from aecodec.codec.api import Codec
from aecodec.codec.images import list_images
from aecodec.models.residual import (
    ALPHABET,
    BAND,
    BANDS,
    ESCAPE,
    band_sums,
    context_count,
    contexts,
    decoding_passes,
    parity_mask,
    to_blocks,
)
from aecodec.training.data import split_files
from aecodec.training.residual import VALIDATION_FRACTION, center_crop

CLASSES = 6
QUALITIES = (6, 10, 14, 20)


def features(codec: Codec, pixels: np.ndarray, quality: int) -> dict:
    """Per-block base features and the level's quantized coefficients (deadzone quantizer)."""
    base_quality, level = codec.model.quality_plan(quality)
    tile = codec.analyze(pixels, base_quality)[0]
    base = np.asarray(codec.decompress(codec.compress(pixels, base_quality)).convert("RGB")).astype(np.int32)
    values = codec.model.residual.analyze(pixels, base.astype(np.uint8), level).astype(np.int64)
    h, w = values.shape[:2]
    gradient = np.abs(np.diff(base, axis=0, append=base[-1:])) + np.abs(np.diff(base, axis=1, append=base[:, -1:]))
    activity = to_blocks(gradient).sum(-1)
    bottom = tile.bottom[0].numpy()[:h, :w]
    top = np.repeat(np.repeat(tile.top[0].numpy(), 2, 0), 2, 1)[:h, :w]
    energy = np.log2(1 + (values.astype(np.float64) ** 2).sum(-1))
    return {"values": values, "activity": activity, "bottom": bottom, "top": top, "energy": energy}


def symbol_cells(values: np.ndarray, extra: np.ndarray, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(context, symbol) of every coded coefficient, context extended by ``extra`` (h, w) in 0..classes-1."""
    sums = band_sums(np.abs(values))
    h, w = values.shape[:2]
    ctx_all, sym_all = [], []
    for parity in (0, 1):
        select = parity_mask(h, w) == parity
        for band in range(BANDS):
            ctx = contexts(sums, decoding_passes(0, h, w), parity, band) * classes + extra[select]
            symbols = np.clip(values[select][:, band == BAND], -ESCAPE, ESCAPE) + ESCAPE
            ctx_all.append(np.repeat(ctx, symbols.shape[1]))
            sym_all.append(symbols.ravel())
    return np.concatenate(ctx_all), np.concatenate(sym_all)


def bits(train: list[tuple], test: list[tuple], bank: np.ndarray, classes: int) -> float:
    """Bits on ``test`` with each extended context's best row on ``train`` (rare ones: the plain context's row)."""
    logp = np.log2(bank / bank.sum(1, keepdims=True))
    size = context_count(0) * classes
    counts = np.zeros((size, ALPHABET))
    for ctx, sym in train:
        counts += np.bincount(ctx * ALPHABET + sym, minlength=size * ALPHABET).reshape(size, ALPHABET)
    plain = counts.reshape(context_count(0), classes, ALPHABET).sum(1)
    plain_rows = (-plain @ logp.T).argmin(1)
    rows = np.where(counts.sum(1) >= 64, (-counts @ logp.T).argmin(1), np.repeat(plain_rows, classes))
    return float(sum(-logp[rows[ctx], sym].sum() for ctx, sym in test))


def quantile_classes(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    edges = np.quantile(reference, np.linspace(0, 1, CLASSES + 1)[1:-1])
    return np.searchsorted(edges, values)


def main() -> None:
    codec = Codec()
    files = split_files(list_images("../shared/data/photos"), VALIDATION_FRACTION)[0]
    images = [center_crop(Image.open(f), 768, 512) for f in files[::2]]
    half = len(images) // 2
    bank = codec.model.residual.bank
    for quality in QUALITIES:
        feats = [features(codec, x, quality) for x in images]
        fit, test = feats[:half], feats[half:]
        # codeword classes by the mean residual energy of the blocks that used each codeword (fit half)
        tables = {}
        for key, size in (("bottom", 1 << 16), ("top", 1 << 16)):
            idx = np.concatenate([f[key].ravel() for f in fit])
            energy = np.concatenate([f["energy"].ravel() for f in fit])
            total, count = np.bincount(idx, energy, size), np.bincount(idx, minlength=size)
            mean = np.where(count > 0, total / np.maximum(count, 1), energy.mean())
            tables[key] = quantile_classes(mean, mean[idx])
        activity_ref = np.concatenate([f["activity"].ravel() for f in fit])
        zeros = [np.zeros(f["values"].shape[:2], dtype=np.int64) for f in feats]
        candidates = {
            "none": (1, zeros),
            "base activity (float)": (CLASSES, [quantile_classes(f["activity"], activity_ref) for f in feats]),
            "bottom index class": (CLASSES, [tables["bottom"][f["bottom"]] for f in feats]),
            "top index class": (CLASSES, [tables["top"][f["top"]] for f in feats]),
        }
        pixels = sum(f["values"].shape[0] * f["values"].shape[1] * 64 for f in test)
        report = []
        for name, (classes, extras) in candidates.items():
            cells = [symbol_cells(f["values"], extra, classes) for f, extra in zip(feats, extras)]
            report.append((name, bits(cells[:half], cells[half:], bank, classes) / pixels))
        reference = report[0][1]
        print(
            f"quality {quality}: "
            + "; ".join(f"{n} {b:.4f} bpp ({100 * (b / reference - 1):+.1f}%)" for n, b in report)
        )


if __name__ == "__main__":
    main()
