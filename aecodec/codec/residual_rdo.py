"""Rate-distortion-optimized quantization of the residual layer's coefficients (RDOQ; encoder efforts 2 and up).

The deadzone quantizer rounds every coefficient alone, with one threshold everywhere. Here the
coder's own traversal decides each coefficient when it reaches it, knowing the bank row that will
code it: among plain rounding, one step toward zero and zero, the magnitude with the least squared
error plus lambda times its bits under that row. Every decision thus sees the exact contexts of what
precedes it; its effect on the contexts of later coefficients is not weighed. Lambda grows with the
band: the post-filter partly undoes a high band's error, little of a low band's. The decoder is unchanged.
"""

import numpy as np

from aecodec.models.residual import (
    BAND,
    BANDS,
    COEFFICIENTS,
    ESCAPE,
    ESCAPE_DIGITS,
    MAX_MAGNITUDE,
    STRIP_BLOCK_ROWS,
    ResidualLayer,
    ResidualLevel,
    Visit,
    blocks_shape,
    decoding_passes,
    parity_mask,
    residual_blocks,
    spans,
)

# Lagrange multiplier in squared quantizer steps per bit; the high-rate slope of an entropy-coded
# uniform quantizer is 2 ln 2 / 12 = 0.116. Without post-filter 0.09 was best of 0.06-0.22 on training
# photos (research/residual/rdoq.py); the post-filter, which undoes part of the error of what is kept,
# moves it to 0.06-0.07: 0.065 is 0.83% better than 0.09 (research/residual/lagrangian.py).
LAGRANGIAN = 0.065
# Band b's Lagrangian is LAGRANGIAN * (1 + BAND_TILT * (b / 14 - 0.5)): 0.1x in band 0, 1.9x in band 14.
# Against one Lagrangian for all bands: tilt 0.6 / 1.2 / 1.8 / 2.4 -0.64 / -0.87 / -1.01 / -0.88% on
# training photos 003/013/023/033, 1.2 / 1.8 -1.35 / -1.68% on 007/017/027/037 (research/residual/lagrangian.py).
BAND_TILT = 1.8
_ESCAPE_BITS = 6 * ESCAPE_DIGITS  # two base-64 digits under a uniform row
_CHUNK = 1 << 18  # coefficients decided at a time: the candidate arrays of a 24 MP pass would take ~1 GB


def rdo_chooser(
    layer: ResidualLayer,
    level: ResidualLevel,
    pixels: np.ndarray,
    base: np.ndarray,
    lagrangian: float = LAGRANGIAN,
    tilt: float = BAND_TILT,
) -> Visit:
    """The chooser (for :func:`~aecodec.codec.residual_coding.encode_residual`) that codes ``pixels - base`` by RDOQ.

    ``pixels`` (H, W, 3) uint8, or int16 for a target beyond 0-255 (:mod:`aecodec.codec.filter_target`), and
    ``base`` (H, W, 3) uint8. Distortion is measured on the KLT coefficients, which
    the orthonormal basis makes the pixel squared error before rounding; band b's Lagrangian is
    ``lagrangian * (1 + tilt * (b / 14 - 0.5))``.
    """
    shape = blocks_shape(pixels.shape[1], pixels.shape[0])
    residual = residual_blocks(pixels, base).reshape(-1, COEFFICIENTS)
    mask = parity_mask(*shape)
    passes = decoding_passes(level.depth, *shape)
    blocks_of, second_pass = [p.blocks for p in passes], len(passes) - 1  # the last pass is the predicted one
    anchors = np.flatnonzero(mask.ravel() == 0)  # every pass before it, in raster order
    in_anchors = [np.searchsorted(anchors, blocks) for blocks in blocks_of[:second_pass]]
    bits = np.log2(layer.bank.sum(1, keepdims=True)) - np.log2(layer.bank)  # (rows, ALPHABET)
    band_lagrangians = lagrangian * (1 + tilt * (np.arange(BANDS) / (BANDS - 1) - 0.5))
    mean, basis = layer.means[level.basis], layer.bases[level.basis]
    current: dict[tuple[int, int], np.ndarray] = {}  # c / step of the pass being coded
    # With predictors: the anchors this traversal chose (rows in raster order), then, from its first
    # second-pass visit on, the second-pass blocks' float16 predictions: 72 MB each at 24 MP.
    state: dict[str, np.ndarray] = {}

    def choose(index: int, band: int, row: int, where: np.ndarray) -> np.ndarray:
        columns, blocks = np.flatnonzero(band == BAND), blocks_of[index]
        if (index, band) not in current:
            current.clear()
            transform = basis[columns].T / level.step
            scaled = np.empty((len(blocks), len(columns)), dtype=np.float32)
            for part in spans(len(blocks), _CHUNK // 4):  # the float copy of every block would be 150 MB at 24 MP
                scaled[part] = (residual[blocks[part]].astype(np.float32) - mean) @ transform
            if index == second_pass and layer.predictors is not None:
                scaled -= second_pass_predictions()[:, columns] / level.step
            current[(index, band)] = scaled.ravel()
        scaled = current[(index, band)][where]
        chosen = np.concatenate(
            [decide(scaled[part], bits[row], band_lagrangians[band]) for part in spans(len(scaled), _CHUNK)]
        )
        if index < second_pass and layer.predictors is not None:
            if "anchors" not in state:  # a new traversal
                state.clear()
                state["anchors"] = np.zeros((len(anchors), COEFFICIENTS), dtype=np.int16)
            state["anchors"][in_anchors[index][where // len(columns)], columns[where % len(columns)]] = chosen
        return chosen

    def second_pass_predictions() -> np.ndarray:
        """(second-pass blocks, 192) predictions from the anchors of this traversal, computed at its first call."""
        if "anchors" in state:
            chosen, start = state.pop("anchors"), 0
            predicted = np.empty((len(blocks_of[second_pass]), COEFFICIENTS), np.float16)
            width = shape[1]
            for rows in spans(shape[0], STRIP_BLOCK_ROWS):
                # The strip, its neighbouring rows and one more above, so that it starts on an even row (parity).
                first, stop = max(rows.start - 2, 0), min(rows.stop + 1, shape[0])
                low, high = np.searchsorted(anchors, [first * width, stop * width])
                strip = np.zeros((stop - first, width, COEFFICIENTS), dtype=np.int16)
                strip.reshape(-1, COEFFICIENTS)[anchors[low:high] - first * width] = chosen[low:high]
                inner = slice(rows.start - first, rows.stop - first)
                second = layer.predictions(strip, level, inner)[mask[rows] == 1]
                predicted[start : start + len(second)] = second
                start += len(second)
            state["predicted"] = predicted
        return state["predicted"]

    def decide(scaled: np.ndarray, row_bits: np.ndarray, band_lagrangian: float) -> np.ndarray:
        chosen = np.zeros(len(scaled), dtype=np.int64)
        live = np.flatnonzero(np.abs(scaled) >= 0.5)  # the rest round to 0: every candidate is 0
        chosen[live] = decide_live(scaled[live], row_bits, band_lagrangian)
        return chosen

    def decide_live(scaled: np.ndarray, row_bits: np.ndarray, band_lagrangian: float) -> np.ndarray:
        size, sign = np.abs(scaled), np.where(scaled < 0, -1, 1)
        rounded = np.minimum(np.floor(size + 0.5), MAX_MAGNITUDE).astype(np.int64)
        candidates = np.stack([rounded, np.maximum(rounded - 1, 0), np.zeros_like(rounded)])
        value = np.where(candidates > 0, candidates - layer.reconstruction_offset, 0)
        symbols = ESCAPE + sign * np.minimum(candidates, ESCAPE)
        rate = row_bits[symbols] + np.where(candidates >= ESCAPE, _ESCAPE_BITS, 0)
        cost = (size - value) ** 2 + band_lagrangian * rate
        return sign * np.take_along_axis(candidates, cost.argmin(0)[None], 0)[0]

    return choose
