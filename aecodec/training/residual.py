"""Fit a model's residual layer on training photos: KLTs, the integer bank, each level's context rows.

Usage: ``aecodec fit-residual --model NAME --data DIR --out FILE.safetensors --name NEW``. Nothing is
trained by gradient: the images are coded and decoded by the base model at half resolution (as
the codec codes the base of every level), the residual blocks give a KLT (their covariance's
eigenvectors) and a ridge regression that predicts second-pass blocks from their
anchors' borders; then the transform is fitted again, to what it codes once the second pass is
predicted and to the deadzone quantizer (:func:`sparse_basis`), and the predictors for it; and for
each level every context gets the bank row that codes its training
symbols (the deadzone quantizer's) in the fewest bits. Rows refitted to RDOQ's choices saved 1%
without the predictors and nothing with them (six Kodak images).
"""

import argparse
import hashlib
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from aecodec.codec.api import Codec
from aecodec.codec.files import check_writable, write_atomic
from aecodec.codec.images import list_images
from aecodec.errors import InputError
from aecodec.models.model_files import HALF_BASE_QUALITY, CodecModel, check_model_name, model_bytes, resolve_model
from aecodec.models.postfilter import PostFilter
from aecodec.models.resampling import downsample2x, upsample2x
from aecodec.models.residual import (
    ALPHABET,
    BANDS,
    COEFFICIENTS,
    DEADZONE,
    DEPTH,
    DEPTHS,
    ESCAPE,
    PREDICTOR_INPUTS,
    ResidualLayer,
    ResidualLevel,
    border_features,
    context_count,
    context_symbol_counts,
    deadzone_levels,
    dequantized_levels,
    parity_mask,
    residual_blocks,
)
from aecodec.training.data import split_files
from aecodec.training.loop import text_table, trainer_parser

BANK_ROWS = 64
BANK_TOTAL = 1 << 16
RECONSTRUCTION_OFFSET = 0.05  # with DEADZONE 0.1: larger offsets cost bits at equal PSNR (held-out photos)
VALIDATION_FRACTION = 0.1  # the codec trainer's split: its validation images stay unseen here too
MIN_CONTEXT_SAMPLES = 64  # rarer contexts take their band's row
SPARSE_ITERATIONS = 8  # of :func:`sparse_basis`
PREDICTOR_RIDGE = 1e3  # in squared pixel values; with two-pixel borders (four overfitted the held-out photos)


@dataclass(frozen=True)
class Rung:
    """A level to fit: base quality, quantizer step in pixel units, half-base quality (None: the model's default)."""

    base_quality: int
    step: float
    half_base_quality: int | None = None


def laplace_bank(rows: int = BANK_ROWS, total: int = BANK_TOTAL) -> np.ndarray:
    """Integer rows (rows, ALPHABET) summing to ``total``: a zero-mean Laplace quantized by the deadzone quantizer.

    Row r has scale 2 ** ((r - 40) / 5) quantizer steps (0.004 to 24); the two outer symbols hold the
    tails (escapes). Computed once here in float64; models store the integers, decoders never recompute them.
    """
    magnitudes = np.abs(np.arange(ALPHABET) - ESCAPE)
    bank = np.empty((rows, ALPHABET), dtype=np.int64)
    for r in range(rows):
        scale = 2.0 ** ((r - 40) / 5)
        beyond = np.exp(-np.maximum(magnitudes - 0.5 + DEADZONE, 0) / scale)  # P(|c| / step >= cell start)
        upper = np.exp(-(magnitudes + 0.5 + DEADZONE) / scale)
        p = np.where(magnitudes == 0, 1 - upper, 0.5 * (beyond - upper))
        p = np.where(magnitudes == ESCAPE, 0.5 * beyond, p)
        freqs = np.maximum(1, np.floor(p / p.sum() * (total - ALPHABET))).astype(np.int64)
        freqs[np.argmax(freqs)] += total - freqs.sum()
        bank[r] = freqs
    return bank


def center_crop(image: Image.Image, width: int, height: int) -> np.ndarray:
    """The centre ``width`` x ``height`` of an RGB image (the whole image if smaller)."""
    w, h = image.size
    left, top = max(0, (w - width) // 2), max(0, (h - height) // 2)
    return np.asarray(image.convert("RGB").crop((left, top, left + min(w, width), top + min(h, height))))


Pair = tuple[np.ndarray, np.ndarray]  # an image and its base decode, both (H, W, 3) uint8


def half_resolution_bases(codec: Codec, images: list[np.ndarray], quality: int) -> list[Pair]:
    """Each image with its base as a file with a half-resolution base has it: the half-size image coded and
    decoded at base ``quality``, upsampled."""

    def decode(pixels: np.ndarray) -> np.ndarray:
        decoded = codec.decompress(codec.compress(downsample2x(pixels), quality)).convert("RGB")
        return upsample2x(np.asarray(decoded), pixels.shape[1], pixels.shape[0])

    return [(pixels, decode(pixels)) for pixels in images]


def fit_klt(pairs: list[Pair]) -> tuple[np.ndarray, np.ndarray]:
    """Mean block (192,) and KLT basis (192, 192), rows by decreasing variance, of the residual blocks."""
    blocks = np.concatenate([residual_blocks(x, b).reshape(-1, COEFFICIENTS) for x, b in pairs])
    blocks = blocks.astype(np.float64)
    mean = blocks.mean(0)
    variances, vectors = np.linalg.eigh(np.cov(blocks - mean, rowvar=False))
    return mean.astype(np.float32), vectors[:, np.argsort(variances)[::-1]].T.astype(np.float32)


def coded_blocks(layer: ResidualLayer, level: ResidualLevel, pairs: list[Pair]) -> np.ndarray:
    """(n, 192) float64 blocks that ``level``'s transform codes, about its mean: the anchors' residual and the
    second-pass blocks' residual less their prediction (from the anchors quantized at the level's step)."""
    mean, basis = layer.means[level.basis].astype(np.float64), layer.bases[level.basis].astype(np.float64)
    out = []
    for pixels, base in pairs:
        values = layer.analyze(pixels, base, level)
        predicted = layer.predictions(values, level, slice(0, len(values))).astype(np.float64) @ basis
        out.append((residual_blocks(pixels, base) - predicted - mean).reshape(-1, COEFFICIENTS))
    return np.concatenate(out)


def sparse_basis(blocks: np.ndarray, steps: list[float]) -> np.ndarray:
    """An orthonormal basis (192, 192), rows by decreasing variance, fitted to the deadzone quantizer at ``steps``:
    from the blocks' KLT, alternately quantize and take the rotation that maps each block closest to its
    dequantized coefficients (orthogonal Procrustes), as Sezer's sparse orthonormal transforms do.

    The KLT decorrelates, but the residual is far from Gaussian: among the many rotations of nearly equal
    variances, this one leaves the quantizer less error for the same coefficients.
    """
    variances, vectors = np.linalg.eigh(blocks.T @ blocks)
    basis = vectors[:, np.argsort(variances)[::-1]].T
    for _ in range(SPARSE_ITERATIONS):
        pull = np.zeros((COEFFICIENTS, COEFFICIENTS))
        for step in steps:  # each step's pull in its own units, so that every step counts alike
            levels = deadzone_levels(blocks @ basis.T, step)
            pull += dequantized_levels(levels, RECONSTRUCTION_OFFSET).T @ blocks / step
        u, _, vt = np.linalg.svd(pull)
        basis = u @ vt
    return basis[np.argsort((blocks @ basis.T).var(0))[::-1]].astype(np.float32)


def fit_predictors(layer: ResidualLayer, rungs: list[ResidualLevel], fitted: list[list[Pair]]) -> np.ndarray:
    """(B, PREDICTOR_INPUTS, 192) predictors of ``layer``'s transforms: for each, the ridge regression of the
    second-pass blocks' coefficients on their anchors' decoded borders, over the rungs that use it (the
    anchors quantized at each rung's step, so the fit sees each step's quantization noise)."""
    gram = np.zeros((len(layer.bases), PREDICTOR_INPUTS, PREDICTOR_INPUTS))
    cross = np.zeros((len(layer.bases), PREDICTOR_INPUTS, COEFFICIENTS))
    for level in rungs:
        mean, basis = layer.means[level.basis], layer.bases[level.basis]
        for pixels, base in fitted[level.basis]:
            values = layer.analyze(pixels, base, level)
            second = parity_mask(*values.shape[:2]) == 1
            inputs = border_features(layer.dequantized(values, level) @ basis + mean)[second].astype(np.float64)
            targets = (residual_blocks(pixels, base)[second].astype(np.float64) - mean) @ basis.T
            gram[level.basis] += inputs.T @ inputs
            cross[level.basis] += inputs.T @ targets
    ridge = PREDICTOR_RIDGE * np.eye(PREDICTOR_INPUTS)
    return np.stack([np.linalg.solve(g + ridge, c) for g, c in zip(gram, cross)]).astype(np.float32)


def context_histograms(layer: ResidualLayer, level: ResidualLevel, pairs: list[Pair]) -> np.ndarray:
    """(contexts, ALPHABET) counts of the symbols each context of ``level``'s decoding order codes over the images,
    as the coder sees them."""
    return sum(context_symbol_counts(layer.analyze(pixels, base, level), level.depth) for pixels, base in pairs)


def best_rows(counts: np.ndarray, bank: np.ndarray) -> np.ndarray:
    """For each context, the bank row with the fewest bits for its counts; rare contexts take their band's."""
    cost = -counts @ np.log2(bank / bank.sum(1, keepdims=True)).T  # (contexts, rows)
    rows = cost.argmin(1)
    per_band = counts.reshape(BANDS, -1, ALPHABET).sum(1)
    band_rows = (-per_band @ np.log2(bank / bank.sum(1, keepdims=True)).T).argmin(1)
    rare = counts.sum(1) < MIN_CONTEXT_SAMPLES
    band_of_context = np.arange(len(counts)) // (len(counts) // BANDS)
    return np.where(rare, band_rows[band_of_context], rows)


def fitted_rows(
    layer: ResidualLayer, levels: list[ResidualLevel], fitted: list[list[Pair]], depth: int
) -> tuple[list[ResidualLevel], list]:
    """``levels`` with the rows of a decoding order of ``depth`` fitted on the pairs of each one's transform, and
    per level its training bits per pixel."""
    refitted, report = [], []
    for level in levels:
        level = replace(level, rows=np.zeros(context_count(depth), dtype=np.int64))
        counts = context_histograms(layer, level, fitted[level.basis])
        level = replace(level, rows=best_rows(counts, layer.bank))
        rows = layer.bank[level.rows]  # a loaded model's rows need not share one total
        bits = float(-(counts * np.log2(rows / rows.sum(1, keepdims=True))).sum())
        pixels = sum(x.shape[0] * x.shape[1] for x, _ in fitted[level.basis])
        refitted.append(level)
        report.append([level.base_quality, level.half_base_quality, level.step, round(bits / pixels, 4)])
    return refitted, report


def fit_residual_layer(
    model: CodecModel,
    images: list[np.ndarray],
    rungs: list[Rung],
    base_only: int,
    default_quality: int,
    depth: int = DEPTH,
) -> tuple[ResidualLayer, list]:
    """The residual layer for ``rungs`` fitted on ``images``, and per rung its training bits per pixel.

    Every level is fitted on what the codec codes it on at its default effort: half-resolution bases of
    its half-base quality, with one KLT and predictor per half-base quality; a rung's base quality is that
    of the full-resolution base higher efforts may choose instead.
    """
    halves = [model.half_base_quality if r.half_base_quality is None else r.half_base_quality for r in rungs]
    if not all(1 <= q <= model.network.num_qualities for q in halves):
        raise InputError(f"half-base qualities must be in 1..{model.network.num_qualities}")
    codec, distinct = Codec(model), list(dict.fromkeys(halves))  # a transform per half-base quality, in rung order
    fitted = [half_resolution_bases(codec, images, q) for q in distinct]
    means, bases = (np.stack(t) for t in zip(*(fit_klt(pairs) for pairs in fitted)))
    drafts = [
        ResidualLevel(r.base_quality, distinct.index(h), round(r.step * 16), np.zeros(context_count(depth), int), h)
        for r, h in zip(rungs, halves)
    ]
    layer = ResidualLayer(means, bases, laplace_bank(), (), RECONSTRUCTION_OFFSET, base_only, default_quality)
    layer = replace(layer, predictors=fit_predictors(layer, drafts, fitted))
    # The transforms again, on what they code once second-pass blocks are predicted (at each one's middle level),
    # fitted to the quantizer at its first, middle and last level's steps; then predictors for them.
    by_basis = [[d for d in drafts if d.basis == b] for b in range(len(distinct))]
    bases = np.stack(
        [
            sparse_basis(
                coded_blocks(layer, levels[len(levels) // 2], fitted[b]),
                [levels[i].step for i in (0, len(levels) // 2, -1)],
            )
            for b, levels in enumerate(by_basis)
        ]
    )
    layer = replace(layer, bases=bases, predictors=None)
    layer = replace(layer, predictors=fit_predictors(layer, drafts, fitted))
    levels, report = fitted_rows(layer, drafts, fitted, depth)
    return replace(layer, levels=tuple(levels)), report


def refitted_rows(model: CodecModel, images: list[np.ndarray], depth: int) -> tuple[ResidualLayer, list]:
    """``model``'s residual layer with only its context rows refitted on ``images``, for a decoding order of
    ``depth``: transforms, predictors and steps kept, so the post-filter still fits its decodes."""
    layer = model.residual
    if layer is None:
        raise InputError(f"--rows-only: model {model.name} has no residual layer")
    codec, half_quality = Codec(model), {level.basis: level.half_base_quality for level in layer.levels}
    fitted = [
        half_resolution_bases(codec, images, half_quality[b]) if b in half_quality else []
        for b in range(len(layer.bases))
    ]
    levels, report = fitted_rows(layer, list(layer.levels), fitted, depth)
    return replace(layer, levels=tuple(levels)), report


def carried_postfilter(source: CodecModel, base_only: int, steps: list[float]) -> PostFilter:
    """``source``'s post-filter for a ladder of ``base_only`` base qualities and levels of ``steps``: a base-only
    quality keeps its own quality's bias and gain, a level takes those of the source's level of the nearest step
    (in ratio); InputError where the source has none."""
    if source.postfilter is None:
        raise InputError(f"--postfilter {source.name}: the model has no post-filter")
    own = [] if source.residual is None else [level.step for level in source.residual.levels]
    offset = source.num_qualities if source.residual is None else source.residual.base_only
    if base_only > offset or (steps and not own):
        raise InputError(f"--postfilter {source.name}: its qualities do not cover the new ladder's")
    nearest = [offset + 1 + int(np.argmin(np.abs(np.log(own) - np.log(step)))) for step in steps]
    return source.postfilter.for_qualities(list(range(1, base_only + 1)) + nearest)


def parse_rungs(text: str) -> list[Rung]:
    """``"2:26:1,2:18,4:13"`` -> rungs (base quality : step [: half-base quality])."""
    rungs = []
    for item in text.split(","):
        fields = item.split(":")
        try:
            if len(fields) not in (2, 3):
                raise ValueError
            rungs.append(Rung(int(fields[0]), float(fields[1]), int(fields[2]) if len(fields) == 3 else None))
        except ValueError:
            raise InputError(f"--rungs: {item!r} is not BASE_QUALITY:STEP[:HALF_BASE_QUALITY]") from None
    return rungs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default=None, help="base model: a shipped name or a .safetensors path (default: the default model)"
    )
    parser.add_argument("--data", required=True, help="folder of training images (never Kodak)")
    parser.add_argument("--out", required=True, help="model file to write (.safetensors)")
    parser.add_argument("--name", required=True, help="name of the new model")
    parser.add_argument(
        "--rungs",
        help="levels above the base in rate order, BASE_QUALITY:STEP[:HALF_BASE_QUALITY],... (half base: the model's"
        f" default, {HALF_BASE_QUALITY}); required unless --rows-only",
    )
    parser.add_argument(
        "--depth",
        type=int,
        choices=DEPTHS,
        default=DEPTH,
        help="decoding order of the blocks: 0 the checkerboard, d a hierarchy of grids 2**d blocks apart",
    )
    parser.add_argument(
        "--rows-only",
        action="store_true",
        help="refit only the context rows of MODEL's residual layer (for --depth); its transforms, predictors,"
        " levels and post-filter are kept",
    )
    parser.add_argument("--base-only", type=int, default=0, help="base qualities offered below the residual levels")
    parser.add_argument(
        "--default-quality", type=int, default=0, help="quality coded when none is given (0: the first level)"
    )
    parser.add_argument(
        "--postfilter",
        default=None,
        help="keep this model's post-filter (a name or file); each level takes the bias and gain of its level of"
        " the nearest step",
    )
    parser.add_argument("--every", type=int, default=4, help="use every N-th image of DATA")
    parser.add_argument("--crop", default="768x512", help="centre crop WIDTHxHEIGHT of each image")
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists")


def main(argv: list[str] | None = None) -> int:
    args = trainer_parser("aecodec fit-residual", __doc__, add_arguments).parse_args(argv)
    check_model_name(args.name)
    check_writable(args.out, args.force)
    model = resolve_model(args.model)
    width, height = (int(v) for v in args.crop.split("x"))
    files = split_files(list_images(args.data), VALIDATION_FRACTION)[0][:: args.every]
    images = [center_crop(Image.open(f), width, height) for f in files]
    if args.rows_only:
        layer, report = refitted_rows(model, images, args.depth)
        postfilter = model.postfilter
    elif args.rungs is None:
        raise InputError("fit-residual needs --rungs (or --rows-only)")
    else:
        rungs = parse_rungs(args.rungs)
        steps = [rung.step for rung in rungs]
        postfilter = (
            carried_postfilter(resolve_model(args.postfilter), args.base_only, steps) if args.postfilter else None
        )
        default_quality = args.default_quality or args.base_only + 1
        layer, report = fit_residual_layer(model, images, rungs, args.base_only, default_quality, args.depth)
    metadata = {"residual_data": str(args.data)}
    data = model_bytes(args.name, model.network, model.prior, layer, metadata, postfilter)
    write_atomic(args.out, data, force=args.force)
    print(text_table(["base quality", "half base", "step", "training bpp"], report))
    print(f"saved {args.out} (sha256 {hashlib.sha256(data).hexdigest()[:16]})")
    return 0
