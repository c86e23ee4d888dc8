"""The residual layer: what the VQ-VAE-2 base leaves, coded as scalar-quantized 8x8 KLT coefficients.

A residual VQ stage spends 8 bits on a 32-value latent and, at high rates, buys ~0.4 dB; scalar
quantization with entropy coding keeps gaining ~6 dB per bit per coefficient. So above the rates
where the base saturates, the image minus its decoded base is cut into 8x8 RGB blocks, projected on
a KLT (192x192, fitted on training residuals of one base quality), deadzone-quantized with a step,
and each integer is coded with one of a fixed bank of integer frequency rows. Which row is an exact
integer function of what the decoder already has: the coefficient's band, the magnitudes decoded
in lower bands of the same block and, after the first pass, in four neighbouring blocks decoded in
earlier passes (:func:`decoding_passes`: a checkerboard, or a hierarchy of grids that leaves fewer
blocks without neighbours). Everything that picks a row is integer; only the inverse transform is float.

A layer may also predict each second-pass block (odd row + column, always coded last) from its four
decoded anchors (the blocks of even row + column): a linear map (fitted
on training residuals) from the anchors' pixels next to the block to its KLT coefficients, which the
encoder subtracts before quantizing and the decoder adds back (2.6% fewer bits on Kodak). The
prediction only moves pixels: which symbols are coded, and with which rows, never depends on it.
"""

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

BLOCK = 8
COEFFICIENTS = 3 * BLOCK * BLOCK
ESCAPE = 16  # |q| >= ESCAPE is coded as the symbol +-ESCAPE, then |q| - ESCAPE in ESCAPE_DIGITS base-64 digits
ALPHABET = 2 * ESCAPE + 1
ESCAPE_BASE = 64
ESCAPE_DIGITS = 2
MAX_MAGNITUDE = ESCAPE + ESCAPE_BASE**ESCAPE_DIGITS - 1
# Encoder only: |c| / step rounds up to m + 1 only past m + 0.5 + DEADZONE (0.2 cost 3% more bits on held-out photos).
DEADZONE = 0.1
# Band of each coefficient (in KLT order, by decreasing training variance): floor(2 log2(k + 1)),
# bands 1 (empty) merged away and everything from 15 up in the last band: 15 bands.
_RAW_BANDS = np.minimum([((k + 1) ** 2).bit_length() - 1 for k in range(COEFFICIENTS)], 15)
BAND = np.unique(_RAW_BANDS, return_inverse=True)[1].astype(np.int64)
BANDS = int(BAND.max()) + 1
BAND_SIZE = np.bincount(BAND, minlength=BANDS)
STRIP_BLOCK_ROWS = 32  # block rows transformed at a time
_COUNTED_AT_ONCE = 1 << 20  # symbols histogrammed per call (:func:`context_symbol_counts`)
PREDICTION_BORDER = 2  # pixel rows (columns) of each anchor next to a second-pass block that predict it
PREDICTOR_INPUTS = 4 * PREDICTION_BORDER * BLOCK * 3 + 1  # the four borders' RGB values and a constant
# The post-filter's correction of each KLT coefficient is kept within this many steps: 0.3 was best of
# 0.1-1.0 on the training photos' decodes (research/postfilter/consistency.py; +0.015-0.021 dB on Kodak).
FILTER_REACH = 0.3
INTRA_BINS, NEIGHBOUR_BINS, TOTAL_BINS = 12, 9, 9
CONTEXTS_PER_PASS = INTRA_BINS * NEIGHBOUR_BINS * TOTAL_BINS  # of one band in one pass that reads neighbours
# A file may tilt each band's rows along the three bins of its contexts (:func:`row_shifts`): slopes in
# sixteenths of a row per half bin, at most this large.
MAX_SLOPE = 8
# Decoding orders (:func:`decoding_passes`) a level may use, by depth; 0 is the checkerboard of the
# first releases. Depth 2 codes 0.7-3.4% fewer residual bits than the checkerboard, 1 and 3 less
# (held-out photos, research/residual/phases.py).
DEPTHS = (0, 1, 2, 3)
DEPTH = 2  # what fit-residual fits
EDGE = ((-1, 0), (1, 0), (0, -1), (0, 1))
DIAGONAL = ((-1, -1), (-1, 1), (1, -1), (1, 1))


def bit_length(values: np.ndarray) -> np.ndarray:
    """``int.bit_length`` of non-negative integers below 2**53 (float64 holds them, and ``frexp`` exactly)."""
    return np.frexp(np.asarray(values, dtype=np.float64))[1].astype(np.int64)


def log_bin(values: np.ndarray, cap: int) -> np.ndarray:
    """min(cap, floor(1.5 log2(v))) for integers v >= 1, exactly: floor(log2(v**3)) // 2.

    v is capped at 2**16 so that v**3 stays below 2**53.
    """
    v = np.minimum(np.asarray(values, dtype=np.int64), 1 << 16)
    return np.minimum((bit_length(v**3) - 1) // 2, cap)


def parity_mask(height: int, width: int) -> np.ndarray:
    """(h, w) block checkerboard: 0 for the first pass (anchors), 1 for the second."""
    return (np.arange(height)[:, None] + np.arange(width)[None, :]) % 2


def band_sums(values: np.ndarray) -> np.ndarray:
    """(h, w, BANDS) int64 sums of |q| per band of each block, from (h, w, 192) integer coefficients
    (or their magnitudes), a strip of block rows at a time (large images)."""
    sums = np.zeros((*values.shape[:2], BANDS), dtype=np.int64)
    for rows in spans(len(values), STRIP_BLOCK_ROWS):
        for band in range(BANDS):
            sums[rows, :, band] = np.abs(values[rows][..., band == BAND]).sum(-1, dtype=np.int64)
    return sums


def neighbour_passes(depth: int) -> int:
    """How many passes of a decoding order of ``depth`` read decoded neighbours (all but the first)."""
    return max(1, 2 * depth)


def context_count(depth: int) -> int:
    """Entries of a level's row table for a decoding order of ``depth``: band-major, then pass, then bins."""
    return BANDS * neighbour_passes(depth) * CONTEXTS_PER_PASS


@dataclass(frozen=True)
class Pass:
    """One decoding pass: its blocks (flat indices, raster order) and where its decoded neighbours lie."""

    blocks: np.ndarray
    neighbours: tuple[tuple[int, int], ...]  # (dy, dx) in blocks; empty for the first pass


def decoding_passes(depth: int, height: int, width: int) -> list[Pass]:
    """The passes in which a level codes the (height, width) blocks, in order.

    Depth 0, the checkerboard: the blocks of even row + column (anchors), then the rest with their four
    edge neighbours. Depth d: a grid of blocks 2**d apart, then at each finer scale s = 2**(d-1) .. 1
    the centres of its squares (four diagonal neighbours s away, decoded) and the rest of the grid s
    apart (four edge neighbours s away). At every depth the last pass is the checkerboard's second, so
    the anchors are always the same half of the blocks; only their order and contexts differ.
    """
    y, x = np.mgrid[:height, :width]
    if depth == 0:
        second = (y + x) % 2 == 1
        return [Pass(np.flatnonzero(~second), ()), Pass(np.flatnonzero(second), EDGE)]
    spacing = 1 << depth
    done = (y % spacing == 0) & (x % spacing == 0)
    passes = [Pass(np.flatnonzero(done), ())]
    while spacing > 1:
        half = spacing // 2
        centre = (y % spacing == half) & (x % spacing == half)
        rest = (y % half == 0) & (x % half == 0) & ~centre & ~done
        passes.append(Pass(np.flatnonzero(centre), tuple((half * dy, half * dx) for dy, dx in DIAGONAL)))
        passes.append(Pass(np.flatnonzero(rest), tuple((half * dy, half * dx) for dy, dx in EDGE)))
        done |= centre | rest
        spacing = half
    return passes


def contexts(sums: np.ndarray, passes: list[Pass], index: int, band: int) -> np.ndarray:
    """Context id (n,) of each block of pass ``index`` of ``passes`` for the coefficients of ``band``.

    ``sums`` (h, w, BANDS) are the band sums of |q| decoded so far (zeros elsewhere); only lower bands
    of the same block and the pass's neighbours (decoded in earlier passes) are read.
    """
    current = passes[index]
    flat = sums.reshape(-1, BANDS)
    intra = log_bin(1 + flat[current.blocks, :band].sum(-1), INTRA_BINS - 1)
    if not current.neighbours:
        neighbour = total = np.zeros_like(intra)
    else:
        around = neighbour_sum(sums[..., band], current.neighbours).ravel()[current.blocks]
        neighbour = 1 + log_bin(1 + (2 * around) // int(BAND_SIZE[band]), NEIGHBOUR_BINS - 2)
        around_all = neighbour_sum(sums.sum(-1), current.neighbours).ravel()[current.blocks]
        total = 1 + np.minimum(bit_length(1 + around_all) - 1, TOTAL_BINS - 2)
    kind = (band * (len(passes) - 1) + max(index - 1, 0)) * INTRA_BINS + intra
    return (kind * NEIGHBOUR_BINS + neighbour) * TOTAL_BINS + total


def context_symbol_counts(values: np.ndarray, depth: int) -> np.ndarray:
    """(context_count(depth), ALPHABET) int64 counts of the symbols of coefficients ``values`` (h, w, 192) in each
    context of a decoding order of ``depth``, as the coder sees them; a part of a pass at a time (large images)."""
    size = context_count(depth)
    counts = np.zeros(size * ALPHABET, dtype=np.int64)
    sums, flat = band_sums(values), values.reshape(-1, COEFFICIENTS)
    passes = decoding_passes(depth, *values.shape[:2])
    for index, current in enumerate(passes):
        for band in range(BANDS):
            columns = np.flatnonzero(band == BAND)
            ctx = contexts(sums, passes, index, band)  # all sums: a context reads only what is decoded before it
            for part in spans(len(current.blocks), max(1, _COUNTED_AT_ONCE // len(columns))):
                symbols = np.clip(flat[current.blocks[part, None], columns], -ESCAPE, ESCAPE) + ESCAPE
                counts += np.bincount((ctx[part, None] * ALPHABET + symbols).ravel(), minlength=size * ALPHABET)
    return counts.reshape(size, ALPHABET)


def neighbour_sum(plane: np.ndarray, offsets: tuple[tuple[int, int], ...]) -> np.ndarray:
    """Sum over ``offsets`` (dy, dx) of ``plane[y + dy, x + dx]`` at every entry of an (h, w) integer plane,
    zero beyond its edges."""
    h, w = plane.shape
    reach = max(max(abs(dy), abs(dx)) for dy, dx in offsets)
    padded = np.pad(plane, reach)
    return sum(padded[reach + dy : reach + dy + h, reach + dx : reach + dx + w] for dy, dx in offsets)


def context_features(count: int) -> np.ndarray:
    """(count, 3) int64: the intra, neighbour and total bins of each context id below ``count``, in half
    bins about their middle (the neighbour and total of the first pass, which reads none, as 0)."""
    ids = np.arange(count)
    total, neighbour = ids % TOTAL_BINS, ids // TOTAL_BINS % NEIGHBOUR_BINS
    intra = ids // (TOTAL_BINS * NEIGHBOUR_BINS) % INTRA_BINS
    reads = neighbour > 0  # passes that read neighbours have neighbour bins 1..8
    return np.stack(
        [
            2 * intra - (INTRA_BINS - 1),
            np.where(reads, 2 * neighbour - NEIGHBOUR_BINS, 0),
            np.where(reads, 2 * total - TOTAL_BINS, 0),
        ],
        1,
    )


def row_shifts(offsets: np.ndarray, slopes: np.ndarray, count: int) -> np.ndarray:
    """(count,) int64 shift of each of ``count`` contexts' rows by its band's offset (BANDS,) and slopes
    (BANDS, 3) (:func:`tilted_shift`)."""
    band = np.arange(count) // (count // BANDS)
    offsets, slopes = np.asarray(offsets, dtype=np.int64), np.asarray(slopes, dtype=np.int64)
    return tilted_shift(offsets[band], slopes[band], context_features(count))


def tilted_shift(offset: np.ndarray, slopes: np.ndarray, features: np.ndarray) -> np.ndarray:
    """The offset plus the slopes (sixteenths of a row per half bin) times the contexts' features
    (:func:`context_features`), rounded half up, in integers: offsets (n,) or a scalar, slopes (n, 3) or (3,)."""
    return (16 * offset + (features * slopes).sum(-1) + 8) // 16


@dataclass(frozen=True)
class ResidualLevel:
    """One rung of the quality ladder above the base: base qualities, a KLT, a step, the context-to-row table."""

    base_quality: int  # of a full-resolution base (efforts that try one)
    basis: int  # index into ResidualLayer.bases
    step16: int  # quantizer step in sixteenths of an 8-bit pixel value
    rows: np.ndarray  # (context_count(depth),) int64: the bank row that codes each context
    half_base_quality: int  # of a half-resolution base, what the default effort codes

    @property
    def step(self) -> float:
        return self.step16 / 16

    @property
    def depth(self) -> int:
        """The decoding order's depth, which the row table's size implies (:func:`context_count`)."""
        passes = len(self.rows) // (BANDS * CONTEXTS_PER_PASS)
        return 0 if passes == 1 else passes // 2

    def with_row_shifts(self, offsets: np.ndarray, bank_rows: int, slopes: np.ndarray | None = None) -> "ResidualLevel":
        """This level with every context's row moved by its band's entry of ``offsets`` (BANDS,) and, if
        given, tilted by its band's ``slopes`` (BANDS, 3) (:func:`row_shifts`), kept inside a bank of
        ``bank_rows`` rows: a file's own fit of the bank to its image."""
        slopes = np.zeros((BANDS, 3), dtype=np.int64) if slopes is None else slopes
        shifted = self.rows + row_shifts(offsets, slopes, len(self.rows))
        return replace(self, rows=np.clip(shifted, 0, bank_rows - 1))


@dataclass(frozen=True)
class ResidualLayer:
    """The residual layer of a model: KLTs, the integer frequency bank and the levels it codes."""

    means: np.ndarray  # (B, 192) float32: mean block of the training residuals
    bases: np.ndarray  # (B, 192, 192) float32: rows are the KLT's basis vectors, by decreasing variance
    bank: np.ndarray  # (R, ALPHABET) int64 frequency rows, every entry >= 1
    levels: tuple[ResidualLevel, ...]
    reconstruction_offset: float  # a nonzero q decodes to sign(q) (|q| - offset) step
    base_only: int  # qualities 1..base_only are the base alone; the levels come after them
    default_quality: int  # what a compress without a quality codes at
    # (B, PREDICTOR_INPUTS, 192) float32: a second-pass block's coefficients from its anchors' borders
    predictors: np.ndarray | None = None

    def analyze(self, pixels: np.ndarray, base: np.ndarray, level: ResidualLevel) -> np.ndarray:
        """Quantized KLT coefficients (h, w, 192) int16 of ``pixels - base``, both (H, W, 3) uint8.

        With predictors, the anchors are quantized first and the second-pass blocks less their prediction.
        """
        residual = residual_blocks(pixels, base)
        out = np.empty(residual.shape, dtype=np.int16)
        mean, basis = self.means[level.basis], self.bases[level.basis]
        second = parity_mask(*out.shape[:2])[..., None] == 1
        for parity in (0, 1) if self.predictors is not None else (0,):
            for rows in spans(len(residual), STRIP_BLOCK_ROWS):
                coefficients = (residual[rows].astype(np.float32) - mean) @ basis.T
                if parity:
                    coefficients -= self.predictions(out, level, rows)
                quantized = deadzone_levels(coefficients, level.step)
                out[rows] = np.where(second[rows], quantized, out[rows]) if parity else quantized
        return out

    def dequantized(self, values: np.ndarray, level: ResidualLevel) -> np.ndarray:
        """The float32 KLT coefficients that integer ``values`` decode to (before any prediction)."""
        return dequantized_levels(values.astype(np.float32), self.reconstruction_offset) * level.step

    def predictions(self, values: np.ndarray, level: ResidualLevel, rows: slice) -> np.ndarray:
        """Predicted coefficients (block rows ``rows``, w, 192) float32 of the second-pass blocks, zero on anchors.

        Reads only the anchors of ``values`` (h, w, 192): a second-pass block's four neighbours. The
        encoder's view, for a layer with predictors; the decoder adds the same prediction in pixels.
        """
        h, w, _ = values.shape
        halo = slice(max(rows.start - 1, 0), min(rows.stop + 1, h))
        decoded = product(self.dequantized(values[halo], level), self.bases[level.basis]) + self.means[level.basis]
        inputs = border_features(decoded)[rows.start - halo.start : rows.stop - halo.start]
        second = parity_mask(h, w)[rows] == 1
        predicted = np.zeros((rows.stop - rows.start, w, COEFFICIENTS), dtype=np.float32)
        predicted[second] = product(inputs[second], self.predictors[level.basis])
        return predicted

    def add_to(self, pixels: np.ndarray, values: np.ndarray, level: ResidualLevel) -> None:
        """Add the residual that coefficients (h, w, 192) decode to onto ``pixels`` (H, W, 3) uint8, in place.

        The transform is linear, so a second-pass block adds its prediction in pixels, mapped there once
        (``predictors @ basis``): one inverse transform of every block, one prediction of half of them.
        """
        mean, basis = self.means[level.basis], self.bases[level.basis]
        h, w, _ = values.shape
        predictors = None if self.predictors is None else product(self.predictors[level.basis], basis)
        for rows in spans(h, STRIP_BLOCK_ROWS):
            halo = rows if predictors is None else slice(max(rows.start - 1, 0), min(rows.stop + 1, h))
            decoded = product(self.dequantized(values[halo], level), basis) + mean
            inner = slice(rows.start - halo.start, rows.stop - halo.start)
            blocks = decoded[inner]
            if predictors is not None:
                second = parity_mask(h, w)[rows] == 1
                blocks[second] += product(border_features(decoded)[inner][second], predictors)
            residual = from_blocks(blocks)
            target = pixels[rows.start * BLOCK : rows.stop * BLOCK]
            target[:] = (target + residual[: len(target), : target.shape[1]]).round().clip(0, 255)

    def bound_correction(self, filtered: np.ndarray, decoded: np.ndarray, level: ResidualLevel) -> np.ndarray:
        """``filtered`` (H, W, 3) uint8 with what the post-filter changed in ``decoded`` kept, in each block's KLT,
        within :data:`FILTER_REACH` steps of every coefficient: the filter does not know the quantizer's cells,
        and pulling its correction back toward them brings the image closer to the original.
        """
        basis, reach = self.bases[level.basis], FILTER_REACH * level.step
        out, (height, width) = np.empty_like(filtered), filtered.shape[:2]
        for rows in spans(blocks_shape(width, height)[0], STRIP_BLOCK_ROWS):
            lines = slice(rows.start * BLOCK, min(rows.stop * BLOCK, height))
            correction = to_blocks(filtered[lines].astype(np.int16) - decoded[lines])
            kept = product(product(correction, basis.T).clip(-reach, reach), basis)
            pixels = decoded[lines] + from_blocks(kept)[: lines.stop - lines.start, :width]
            out[lines] = pixels.round().clip(0, 255)
        return out


def deadzone_levels(coefficients: np.ndarray, step: float) -> np.ndarray:
    """The deadzone quantizer's signed levels of ``coefficients`` at ``step`` (the encoder's without RDOQ)."""
    magnitude = np.floor(np.abs(coefficients) / step + (0.5 - DEADZONE)).clip(0, MAX_MAGNITUDE)
    return np.sign(coefficients) * magnitude


def dequantized_levels(levels: np.ndarray, offset: float) -> np.ndarray:
    """What signed integer ``levels`` decode to, in steps: sign(q) (|q| - offset), and 0 for 0."""
    return np.sign(levels) * np.maximum(np.abs(levels) - offset, 0)


def product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` in float32, the same on any thread count: BLAS sums in an order that depends on its threads,
    so the product is taken in float64, whose differences vanish in the rounding to float32."""
    return (a.astype(np.float64) @ b.astype(np.float64)).astype(np.float32)


def border_features(decoded: np.ndarray) -> np.ndarray:
    """Predictor inputs (h, w, PREDICTOR_INPUTS) of every block from decoded residual blocks (h, w, 192):
    the facing borders of the blocks above, below, left and right (zero beyond the edges), and a 1."""
    h, w, _ = decoded.shape
    padded = np.zeros((h + 2, w + 2, BLOCK, BLOCK, 3), dtype=np.float32)
    padded[1:-1, 1:-1] = decoded.reshape(h, w, BLOCK, BLOCK, 3)
    k = PREDICTION_BORDER
    borders = (
        padded[:-2, 1:-1, BLOCK - k :],
        padded[2:, 1:-1, :k],
        padded[1:-1, :-2, :, BLOCK - k :],
        padded[1:-1, 2:, :, :k],
    )
    return np.concatenate([*(b.reshape(h, w, -1) for b in borders), np.ones((h, w, 1), np.float32)], -1)


def blocks_shape(width: int, height: int) -> tuple[int, int]:
    """(rows, columns) of 8x8 blocks covering a ``width`` x ``height`` image."""
    return -(-height // BLOCK), -(-width // BLOCK)


def residual_blocks(pixels: np.ndarray, base: np.ndarray) -> np.ndarray:
    """:func:`to_blocks` of ``pixels - base`` ((H, W, 3) uint8 or int16, and uint8) as int16, a strip of block rows
    at a time."""
    height, width = pixels.shape[:2]
    out = np.empty((*blocks_shape(width, height), COEFFICIENTS), dtype=np.int16)
    for rows in spans(len(out), STRIP_BLOCK_ROWS):
        lines = slice(rows.start * BLOCK, rows.stop * BLOCK)
        out[rows] = to_blocks(pixels[lines].astype(np.int16) - base[lines])
    return out


def spans(count: int, size: int) -> list[slice]:
    """Consecutive slices of ``range(count)`` of at most ``size`` items: work done a part at a time
    keeps the temporary arrays of a large image small."""
    return [slice(start, min(start + size, count)) for start in range(0, count, size)]


def to_blocks(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) -> (ceil(H/8), ceil(W/8), 192), the border blocks padded by edge replication."""
    h, w = -(-image.shape[0] // BLOCK), -(-image.shape[1] // BLOCK)
    padded = np.pad(image, ((0, h * BLOCK - image.shape[0]), (0, w * BLOCK - image.shape[1]), (0, 0)), mode="edge")
    return padded.reshape(h, BLOCK, w, BLOCK, 3).transpose(0, 2, 1, 3, 4).reshape(h, w, COEFFICIENTS)


def from_blocks(blocks: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_blocks`, without the crop: (h, w, 192) -> (8h, 8w, 3)."""
    h, w = blocks.shape[:2]
    return blocks.reshape(h, w, BLOCK, BLOCK, 3).transpose(0, 2, 1, 3, 4).reshape(h * BLOCK, w * BLOCK, 3)


# visit(pass, band, row, where) -> the signed values at ``where`` (flat indices into the pass's
# (its blocks, coefficients of band) array, raster order) that bank row ``row`` codes.
Visit = Callable[[int, int, int, np.ndarray], np.ndarray]


def traverse(level: ResidualLevel, blocks_shape: tuple[int, int], visit: Visit) -> np.ndarray:
    """Walk the passes of the level's decoding order (:func:`decoding_passes`), bands in order in each,
    as encoder and decoder both do.

    Each pass and band calls ``visit`` once per bank row in use, in increasing row order; the encoder's
    visit writes known values, the decoder's reads them. Returns the (h, w, 192) int16 coefficients.
    Working memory beyond the result stays near one band of one pass (large images).
    """
    h, w = blocks_shape
    values = np.zeros((h * w, COEFFICIENTS), dtype=np.int16)
    sums = np.zeros((h, w, BANDS), dtype=np.int64)
    passes = decoding_passes(level.depth, h, w)
    for index, current in enumerate(passes):
        blocks = current.blocks
        for band in range(BANDS):
            columns = np.flatnonzero(band == BAND)
            block_rows = level.rows[contexts(sums, passes, index, band)]
            decoded = np.zeros((len(blocks), len(columns)), dtype=np.int16)
            by_row = np.argsort(block_rows, kind="stable")  # blocks of each row, in raster order
            used, starts = np.unique(block_rows[by_row], return_index=True)
            for row, group in zip(used, np.split(by_row, starts[1:])):
                where = (group[:, None] * len(columns) + np.arange(len(columns))).ravel()
                decoded.ravel()[where] = visit(index, band, int(row), where)
            values[blocks[:, None], columns] = decoded
            sums.reshape(-1, BANDS)[blocks, band] = np.abs(decoded).sum(-1, dtype=np.int64)
    return values.reshape(h, w, COEFFICIENTS)
