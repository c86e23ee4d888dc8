"""The residual layer: exact integer contexts, lossless coding of coefficients, model-file and container checks."""

import math
from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest
import torch
from safetensors.torch import load, save

import aecodec.models.residual as residual_module
from aecodec.bitstream.format import RESIDUAL, AecFile, pack, unpack
from aecodec.bitstream.golomb import decode_signed, encode_signed
from aecodec.codec import residual_coding
from aecodec.codec.api import Codec
from aecodec.codec.residual_coding import decode_residual, encode_residual, given
from aecodec.codec.residual_rdo import BAND_TILT, LAGRANGIAN, rdo_chooser
from aecodec.errors import FormatError, InputError, ModelError
from aecodec.models.model_files import HALF_BASE_QUALITY, model_from_bytes
from aecodec.models.residual import (
    ALPHABET,
    BAND,
    BANDS,
    COEFFICIENTS,
    DEADZONE,
    DEPTH,
    DEPTHS,
    ESCAPE,
    FILTER_REACH,
    MAX_MAGNITUDE,
    MAX_SLOPE,
    NEIGHBOUR_BINS,
    PREDICTOR_INPUTS,
    TOTAL_BINS,
    ResidualLayer,
    ResidualLevel,
    bit_length,
    blocks_shape,
    context_count,
    context_features,
    context_symbol_counts,
    deadzone_levels,
    decoding_passes,
    from_blocks,
    log_bin,
    parity_mask,
    residual_blocks,
    row_shifts,
    to_blocks,
    traverse,
)
from aecodec.testing import random_postfilter, random_residual_layer, with_postfilter, with_residual_layer
from aecodec.training.residual import (
    Rung,
    best_rows,
    carried_postfilter,
    fit_klt,
    fit_predictors,
    laplace_bank,
    parse_rungs,
    sparse_basis,
)

LEVELS = [(2, 12.0), (3, 3.0)]


@pytest.fixture(scope="module")
def layer():
    return random_residual_layer(LEVELS, base_only=2)


@pytest.fixture(scope="module")
def predicting_layer():
    return random_residual_layer(LEVELS, base_only=2, predict=True)


@pytest.fixture(scope="module", params=["plain", "predicting"])
def res_model_bytes(request, model_bytes: bytes, layer, predicting_layer) -> bytes:
    return with_residual_layer(model_bytes, layer if request.param == "plain" else predicting_layer)


@pytest.fixture(scope="module")
def res_codec(res_model_bytes: bytes) -> Codec:
    return Codec(model_from_bytes(res_model_bytes), tile_size=64, overlap=8)


def test_integer_bins_match_python_integers():
    values = np.concatenate([np.arange(1, 5000), np.random.default_rng(0).integers(1, 1 << 16, 5000)])
    assert bit_length(values).tolist() == [int(v).bit_length() for v in values]
    expected = [min(11, ((int(v) ** 3).bit_length() - 1) // 2) for v in values]
    assert log_bin(values, 11).tolist() == expected


def test_bands_cover_every_coefficient_in_order():
    assert BAND.shape == (COEFFICIENTS,) and BAND[0] == 0 and BAND[-1] == BANDS - 1
    assert (np.diff(BAND) >= 0).all() and set(BAND.tolist()) == set(range(BANDS))


@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (7, 5), (16, 9)])
def test_decoding_passes_visit_every_block_once_after_its_neighbours(depth, shape):
    h, w = shape
    passes = decoding_passes(depth, h, w)
    order = np.full(h * w, -1)
    for index, current in enumerate(passes):
        assert (np.diff(current.blocks) > 0).all() and (order[current.blocks] == -1).all()  # raster order, once
        order[current.blocks] = index
        assert bool(current.neighbours) == (index > 0)
    assert (order >= 0).all() and len(passes) == 1 + max(1, 2 * depth)
    assert np.array_equal(passes[-1].blocks, np.flatnonzero(parity_mask(h, w).ravel() == 1))  # the predicted half
    order = order.reshape(h, w)
    for index, current in enumerate(passes):
        for block in current.blocks:
            y, x = divmod(int(block), w)
            for dy, dx in current.neighbours:
                if 0 <= y + dy < h and 0 <= x + dx < w:
                    assert order[y + dy, x + dx] < index


def test_the_checkerboards_contexts_are_those_of_the_first_releases():
    """Depth 0 must number contexts as docs/FORMAT.md did before deeper orders: files of the shipped models."""
    rng = np.random.default_rng(3)
    sums = rng.integers(0, 60, (5, 6, BANDS))
    passes = decoding_passes(0, 5, 6)
    band = 4
    ctx = residual_module.contexts(sums, passes, 1, band)
    y, x = divmod(int(passes[1].blocks[0]), 6)  # (0, 1): neighbours (0, 0), (0, 2), (1, 1)
    around = sums[0, 0] + sums[0, 2] + sums[1, 1]
    intra = log_bin(np.array([1 + sums[y, x, :band].sum()]), 11)[0]
    neighbour = 1 + log_bin(np.array([1 + 2 * around[band] // int(residual_module.BAND_SIZE[band])]), 7)[0]
    total = 1 + min(int(1 + around.sum()).bit_length() - 1, 7)
    assert ctx[0] == ((band * 12 + intra) * 9 + neighbour) * 9 + total
    first = residual_module.contexts(sums, passes, 0, band)
    assert (first % 81 == 0).all() and ((first // 81) // 12 == band).all()


@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (6, 4), (9, 11)])
def test_coefficients_round_trip_exactly(depth, shape):
    layer = random_residual_layer(LEVELS, base_only=2, depth=depth)
    rng = np.random.default_rng(sum(shape))
    values = (rng.laplace(0, 3, (*shape, COEFFICIENTS)) * (rng.random((*shape, COEFFICIENTS)) < 0.3)).astype(np.int16)
    values[0, 0, :4] = [MAX_MAGNITUDE, -MAX_MAGNITUDE, 16, -17]  # escapes, the largest included
    for level in layer.levels:
        assert level.depth == depth
        payload = encode_residual(layer, level, given(values, level), values.shape[:2])
        assert np.array_equal(decode_residual(layer, level, payload, shape), values)


def test_coding_a_row_in_chunks_writes_the_same_payload(layer, monkeypatch):
    """Large passes are coded a chunk at a time; the payload must be that of one call per row."""
    rng = np.random.default_rng(7)
    values = (rng.laplace(0, 3, (6, 6, COEFFICIENTS)) * (rng.random((6, 6, COEFFICIENTS)) < 0.5)).astype(np.int16)
    values[2, 3, 5] = -MAX_MAGNITUDE
    level = layer.levels[1]
    whole = encode_residual(layer, level, given(values, level), values.shape[:2])
    monkeypatch.setattr(residual_coding, "_CODED_AT_ONCE", 7)
    assert encode_residual(layer, level, given(values, level), values.shape[:2]) == whole
    assert np.array_equal(decode_residual(layer, level, whole, values.shape[:2]), values)


def _laplace_values(seed: int, shape: tuple[int, int], scale: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.laplace(0, scale, (*shape, COEFFICIENTS)) * (rng.random((*shape, COEFFICIENTS)) < 0.5)).astype(np.int16)


def _no_shifts(*args) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(BANDS, dtype=np.int64), np.zeros((BANDS, 3), dtype=np.int64)


def legacy_payload(payload: bytes, offsets: np.ndarray, slopes: np.ndarray) -> bytes:
    """A version 4 payload as earlier releases wrote it: version 2 (offsets as bytes) or, with slopes, version 3
    (then a byte count and the slopes' code)."""
    stream = payload[5 + len(residual_coding.shifts_field(offsets, slopes)) :]
    fields = np.asarray(offsets, dtype=np.int8).tobytes()
    if slopes.any():
        coded = encode_signed(slopes.ravel().tolist(), 0)
        return b"\x03" + payload[1:5] + fields + bytes([len(coded)]) + coded + stream
    return b"\x02" + payload[1:5] + fields + stream


def test_row_offsets_and_slopes_fit_the_image_and_save_bits(layer, monkeypatch):
    values, level = _laplace_values(5, (6, 7), 6.0), layer.levels[0]
    fitted = encode_residual(layer, level, given(values, level), values.shape[:2])
    offsets, slopes = residual_coding.fit_row_shifts(layer, level, given(values, level), values.shape[:2])
    assert fitted[0] == residual_coding.PAYLOAD_VERSION == 4 and offsets.any() and slopes.any()
    field = residual_coding.shifts_field(offsets, slopes)
    assert fitted[5 : 5 + len(field)] == field
    assert decode_signed(field, 1 + BANDS * 4, 0, 128, "field") == [1, *offsets, *slopes.ravel()]
    assert np.array_equal(decode_residual(layer, level, fitted, values.shape[:2]), values)
    assert np.array_equal(
        decode_residual(layer, level, legacy_payload(fitted, offsets, slopes), values.shape[:2]), values
    )
    monkeypatch.setattr(residual_coding, "fit_row_shifts", lambda *args: (offsets, np.zeros_like(slopes)))
    offsets_only = encode_residual(layer, level, given(values, level), values.shape[:2])
    field = residual_coding.shifts_field(offsets, np.zeros_like(slopes))
    assert decode_signed(field, 1 + BANDS, 0, 128, "field") == [0, *offsets]  # flag 0: no slopes follow
    assert len(fitted) < len(offsets_only)
    for payload in (offsets_only, legacy_payload(offsets_only, offsets, np.zeros_like(slopes))):
        assert np.array_equal(decode_residual(layer, level, payload, values.shape[:2]), values)
    monkeypatch.setattr(residual_coding, "fit_row_shifts", _no_shifts)
    assert len(offsets_only) < len(encode_residual(layer, level, given(values, level), values.shape[:2]))


def test_context_counts_are_the_symbols_each_context_codes(layer, monkeypatch):
    values, level = _laplace_values(8, (9, 11), 5.0), layer.levels[0]
    values[4, 5, 7] = MAX_MAGNITUDE
    coded = np.zeros((len(level.rows), ALPHABET), dtype=np.int64)

    def count(index: int, band: int, context: int, where: np.ndarray) -> np.ndarray:
        chosen = given(values, level)(index, band, context, where)
        coded[context] += np.bincount(np.clip(chosen, -ESCAPE, ESCAPE) + ESCAPE, minlength=ALPHABET)
        return chosen

    traverse(replace(level, rows=np.arange(len(level.rows))), values.shape[:2], count)  # a "row" per context
    assert np.array_equal(context_symbol_counts(values, level.depth), coded)
    monkeypatch.setattr(residual_module, "_COUNTED_AT_ONCE", 50)  # a few blocks per call
    assert np.array_equal(context_symbol_counts(values, level.depth), coded)


def test_slopes_are_kept_only_where_they_pay_for_their_bytes(layer):
    """All-zero blocks: the offsets alone reach the narrowest row, so no slope pays for its bits."""
    level = layer.levels[1]
    values = np.zeros((5, 5, COEFFICIENTS), dtype=np.int16)
    offsets, slopes = residual_coding.fit_row_shifts(layer, level, given(values, level), values.shape[:2])
    assert not slopes.any()
    payload = encode_residual(layer, level, given(values, level), values.shape[:2])
    assert payload[5:].startswith(residual_coding.shifts_field(offsets, slopes))  # flag 0, no slope field


def test_row_shifts_are_the_rounded_tilt_in_integers():
    count = context_count(DEPTH)
    rng = np.random.default_rng(3)
    offsets, slopes = rng.integers(-128, 128, BANDS), rng.integers(-MAX_SLOPE, MAX_SLOPE + 1, (BANDS, 3))
    features = context_features(count)
    shifts = row_shifts(offsets, slopes, count)
    for context in rng.integers(0, count, 500):
        band = context // (count // BANDS)
        exact = offsets[band] + Fraction(int(features[context] @ slopes[band]), 16)
        assert shifts[context] == math.floor(exact + Fraction(1, 2))
    reads = np.arange(count) // TOTAL_BINS % NEIGHBOUR_BINS > 0  # the first pass's contexts read no neighbours
    assert not features[~reads, 1:].any() and (np.abs(features) <= 11).all()


def test_version_1_payloads_without_offsets_still_decode(layer, monkeypatch):
    """Version 1 (files of earlier releases) is version 2 without the offsets field, coded with the model's rows."""
    values, level = _laplace_values(6, (4, 5), 3.0), layer.levels[1]
    monkeypatch.setattr(residual_coding, "fit_row_shifts", _no_shifts)
    payload = legacy_payload(encode_residual(layer, level, given(values, level), values.shape[:2]), *_no_shifts())
    version_1 = b"\x01" + payload[1:5] + payload[20:]
    assert np.array_equal(decode_residual(layer, level, version_1, values.shape[:2]), values)


def test_any_row_offset_and_slope_stays_inside_the_bank(layer):
    level = layer.levels[0]
    for offset in (-128, -1, 1, 127):
        for slope in (-MAX_SLOPE, 0, MAX_SLOPE):
            rows = level.with_row_shifts(np.full(BANDS, offset), len(layer.bank), np.full((BANDS, 3), slope)).rows
            assert rows.min() >= 0 and rows.max() < len(layer.bank)
    values = _laplace_values(7, (3, 3), 4.0)
    payload = bytearray(encode_residual(layer, level, given(values, level), values.shape[:2]))
    payload[5:20] = bytes([0x80, 0x7F] * 7 + [0x80])  # forged offsets: the CRC catches what they change
    with pytest.raises(FormatError):
        decode_residual(layer, level, bytes(payload), values.shape[:2])


def test_damaged_slopes_raise_format_error(layer):
    values, level = _laplace_values(5, (6, 7), 6.0), layer.levels[0]
    payload = encode_residual(layer, level, given(values, level), values.shape[:2])
    length, stream = payload[20], payload[21 + payload[20] :]
    beyond = encode_signed([MAX_SLOPE + 1] + [0] * (BANDS * 3 - 1), 0)
    for bad in (
        payload[:20],  # no length byte
        payload[: 21 + length - 1],  # slopes cut short
        payload[:20] + bytes([length - 1]) + payload[21 : 20 + length] + stream,  # one byte too few
        payload[:20] + bytes([length + 1]) + payload[21 : 21 + length] + b"\x00" + stream,  # a byte after them
        payload[:20] + bytes([len(beyond)]) + beyond + stream,  # a slope beyond MAX_SLOPE
    ):
        with pytest.raises(FormatError):
            decode_residual(layer, level, bad, values.shape[:2])


def test_damaged_payloads_raise_format_error(layer):
    values = np.random.default_rng(1).integers(-20, 20, (4, 4, COEFFICIENTS)).astype(np.int16)
    level = layer.levels[0]
    payload = encode_residual(layer, level, given(values, level), values.shape[:2])
    flipped = bytearray(payload)
    flipped[len(payload) // 2] ^= 0x40
    for bad in (
        payload[:3],
        payload[:12],
        b"\x09" + payload[1:],
        bytes(flipped),
        payload[:-8],
        payload + bytes(8),
        payload[:-1],
    ):
        with pytest.raises(FormatError):
            decode_residual(layer, level, bad, (4, 4))


def test_bank_rows_are_valid_frequency_rows():
    bank = laplace_bank()
    assert bank.min() >= 1 and (bank.sum(1) == 1 << 16).all()
    assert (np.diff(bank[:, ESCAPE]) <= 0).all()  # wider rows give zero less probability


def test_best_rows_pick_the_cheapest_row_and_rare_contexts_their_band_row():
    bank = laplace_bank()
    counts = np.zeros((context_count(DEPTH), bank.shape[1]), dtype=np.int64)
    counts[0, ESCAPE], counts[0, ESCAPE + 1] = 1000, 10  # band 0, mostly zeros
    counts[1, ESCAPE - 3 : ESCAPE + 4] = 100  # band 0, wide
    counts[2, ESCAPE] = 5  # too rare to have its own row
    rows = best_rows(counts, bank)

    def cost(c: np.ndarray) -> np.ndarray:
        return (-c * np.log2(bank / bank.sum(1, keepdims=True))).sum(1)

    assert rows[0] == cost(counts[0]).argmin() and rows[1] == cost(counts[1]).argmin() and rows[0] < rows[1]
    assert rows[2] == cost(counts[: context_count(DEPTH) // BANDS].sum(0)).argmin()


def test_residual_qualities_raise_psnr_and_carry_a_chunk(res_codec, model):
    image = np.random.default_rng(2).integers(0, 256, (70, 90, 3), dtype=np.uint8)
    assert res_codec.qualities == [1, 2, 3, 4]
    errors = []
    for quality in res_codec.qualities:
        data = res_codec.compress(image, quality)
        assert (unpack(data).chunk(RESIDUAL) is not None) == (quality > 2)
        decoded = np.asarray(res_codec.decompress(data)).astype(float)
        errors.append(((decoded - image) ** 2).mean())
    assert errors[3] < errors[2] < errors[1]
    assert errors[3] < 3  # step 3: about step**2 / 12 per coefficient


def test_rdoq_lowers_the_rd_cost_and_keeps_the_base(res_codec):
    rng = np.random.default_rng(4)
    ramp = np.linspace(0, 200, 96)[None, :, None] + np.linspace(0, 50, 72)[:, None, None]
    image = (ramp + rng.normal(0, 12, (72, 96, 3))).clip(0, 255).astype(np.uint8)
    for quality in (3, 4):
        step = res_codec.model.quality_plan(quality)[1].step
        files = {effort: res_codec.compress(image, quality, effort=effort) for effort in (1, 2)}
        assert unpack(files[1]).streams == unpack(files[2]).streams  # below a residual, the base is the analysis's

        cost = {
            effort: ((np.asarray(res_codec.decompress(data)).astype(float) - image) ** 2).sum()
            + LAGRANGIAN * step**2 * 8 * len(data)
            for effort, data in files.items()
        }
        assert cost[2] < cost[1]


def test_rdoq_keeps_more_of_the_low_bands_and_less_of_the_high_ones_with_its_band_tilt(layer):
    rng = np.random.default_rng(6)
    level = layer.levels[1]
    pixels = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    base = rng.integers(0, 256, pixels.shape, dtype=np.uint8)
    shape = blocks_shape(96, 64)
    kept = {}
    for tilt in (0.0, BAND_TILT):
        values = traverse(level, shape, rdo_chooser(layer, level, pixels, base, lagrangian=0.3, tilt=tilt))
        kept[tilt] = np.bincount(BAND, weights=(values.reshape(-1, COEFFICIENTS) != 0).sum(0), minlength=BANDS)
    assert kept[BAND_TILT][0] > kept[0.0][0] and kept[BAND_TILT][-1] < kept[0.0][-1]


def test_predictions_read_only_the_anchors_and_are_zero_on_them(predicting_layer):
    rng = np.random.default_rng(5)
    level = predicting_layer.levels[0]
    values = rng.integers(-20, 21, (5, 7, COEFFICIENTS)).astype(np.int16)
    second = parity_mask(5, 7) == 1
    changed = values.copy()
    changed[second] = rng.integers(-20, 21, (int(second.sum()), COEFFICIENTS))
    for rows in (slice(0, 5), slice(1, 3), slice(4, 5)):
        predicted = predicting_layer.predictions(values, level, rows)
        assert predicted.shape == (rows.stop - rows.start, 7, COEFFICIENTS)
        assert (predicted[~second[rows]] == 0).all() and np.abs(predicted[second[rows]]).max() > 0
        assert np.array_equal(predicted, predicting_layer.predictions(changed, level, rows))
    whole = predicting_layer.predictions(values, level, slice(0, 5))  # strips see their neighbours' anchors
    assert np.allclose(whole[1:3], predicting_layer.predictions(values, level, slice(1, 3)), atol=1e-4)


def test_the_encoder_quantizes_what_the_decoder_adds_the_prediction_to(predicting_layer):
    rng = np.random.default_rng(6)
    level = predicting_layer.levels[1]
    pixels = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    base = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    values = predicting_layer.analyze(pixels, base, level)
    mean, basis = predicting_layer.means[level.basis], predicting_layer.bases[level.basis]
    coefficients = (residual_blocks(pixels, base).astype(np.float32) - mean) @ basis.T
    decoded = predicting_layer.dequantized(values, level) + predicting_layer.predictions(values, level, slice(0, 5))
    bound = level.step * (0.5 + DEADZONE + predicting_layer.reconstruction_offset) + 1e-3
    assert np.abs(decoded - coefficients).max() <= bound
    assert np.abs(predicting_layer.predictions(values, level, slice(0, 5))).max() > bound  # the test can fail


def test_the_decoder_adds_in_pixels_what_the_encoder_predicts_in_coefficients(predicting_layer):
    rng = np.random.default_rng(8)
    level = predicting_layer.levels[1]
    values = rng.integers(-6, 7, (70, 3, COEFFICIENTS)).astype(np.int16)  # three strips of block rows
    pixels = np.full((8 * 70 - 5, 20, 3), 128, dtype=np.uint8)
    predicting_layer.add_to(pixels, values, level)
    coefficients = predicting_layer.dequantized(values, level) + predicting_layer.predictions(
        values, level, slice(0, 70)
    )
    basis, mean = predicting_layer.bases[level.basis], predicting_layer.means[level.basis]
    expected = (128 + from_blocks(coefficients @ basis + mean)[: pixels.shape[0], :20]).round().clip(0, 255)
    assert np.abs(pixels - expected).max() <= 1 and (pixels != 128).mean() > 0.5


def test_rdoq_quantizes_the_second_pass_less_the_layers_own_prediction(predicting_layer):
    rng = np.random.default_rng(7)
    level = predicting_layer.levels[1]
    pixels = rng.integers(0, 256, (8 * 70 - 3, 20, 3), dtype=np.uint8)  # three strips of block rows
    base = rng.integers(0, 256, pixels.shape, dtype=np.uint8)
    shape = blocks_shape(20, pixels.shape[0])
    values = traverse(level, shape, rdo_chooser(predicting_layer, level, pixels, base, lagrangian=0.0))
    mean, basis = predicting_layer.means[level.basis], predicting_layer.bases[level.basis]
    coefficients = (residual_blocks(pixels, base).astype(np.float32) - mean) @ basis.T
    predicted = predicting_layer.predictions(values, level, slice(0, shape[0]))
    error = np.abs(predicting_layer.dequantized(values, level) + predicted - coefficients)
    rounding = np.abs(predicted) / 1024 + 1e-3  # the chooser holds its predictions in float16
    assert (error <= level.step * (0.5 + predicting_layer.reconstruction_offset) + rounding).all()
    assert np.abs(predicted).max() > level.step


def test_predictors_survive_the_model_file_and_malformed_ones_are_refused(model_bytes, predicting_layer):
    data = with_residual_layer(model_bytes, predicting_layer)
    assert np.array_equal(model_from_bytes(data).residual.predictors, predicting_layer.predictors)
    meta = {"format": "aecodec-vqvae2-1", "name": "bad", "config": _config(data)}
    for change in (lambda t: t[:, :-1], lambda t: t * float("nan"), lambda t: t.double(), lambda t: t + 2000):
        tensors = load(data)
        tensors["res.predictors"] = change(tensors["res.predictors"]).contiguous()
        with pytest.raises(ModelError):
            model_from_bytes(save(tensors, metadata=meta))


def test_fitted_predictors_predict_a_smooth_residual_from_the_anchors():
    yy, xx = np.mgrid[0:96, 0:128]
    pairs = []
    for phase in range(4):
        wave = 60 * np.sin((xx + 3 * yy) / 9 + phase)[..., None] * np.array([1.0, 0.8, 0.6])
        pairs.append(((128 + wave).round().astype(np.uint8), np.full((96, 128, 3), 128, np.uint8)))
    mean, basis = fit_klt(pairs)
    level = ResidualLevel(1, 0, 16 * 4, np.zeros(context_count(DEPTH), dtype=np.int64), 1)
    layer = ResidualLayer(mean[None], basis[None], laplace_bank(), (level,), 0.05, 0, 1)
    predicting = replace(layer, predictors=fit_predictors(layer, [level], [pairs]))
    pixels, base = pairs[0]
    second = parity_mask(12, 16) == 1
    coefficients = ((residual_blocks(pixels, base).astype(np.float32) - mean) @ basis.T)[second]
    predicted = predicting.predictions(predicting.analyze(pixels, base, level), level, slice(0, 12))[second]
    assert ((coefficients - predicted) ** 2).sum() < 0.2 * (coefficients**2).sum()


def test_the_sparse_basis_quantizes_sparse_blocks_with_less_error_and_fewer_levels_than_the_klt():
    # Blocks of two atoms each from 192 orthonormal ones of equal variance: the KLT sees one eigenvalue and
    # returns an arbitrary rotation of them; the quantizer's fit should find the atoms.
    rng = np.random.default_rng(0)
    atoms = np.linalg.qr(rng.normal(size=(COEFFICIENTS, COEFFICIENTS)))[0]
    weights = np.zeros((6000, COEFFICIENTS))
    for row in weights:
        row[rng.choice(COEFFICIENTS, 2, replace=False)] = rng.laplace(scale=40, size=2)
    blocks, step = weights @ atoms, 20.0
    basis = sparse_basis(blocks, [step])
    assert np.allclose(basis @ basis.T, np.eye(COEFFICIENTS), atol=1e-5)
    variances = (blocks @ basis.T).var(0)
    assert (np.diff(variances) <= 1e-9 * variances[0]).all()

    def cost(b: np.ndarray) -> tuple[float, int]:
        levels = deadzone_levels(blocks @ b.T, step)
        decoded = np.sign(levels) * np.maximum(np.abs(levels) - 0.05, 0) * step
        return float(((decoded @ b - blocks) ** 2).sum()), int((levels != 0).sum())

    klt = np.linalg.eigh(blocks.T @ blocks)[1].T
    (error, nonzero), (klt_error, klt_nonzero) = cost(basis), cost(klt)
    assert error < 0.7 * klt_error and nonzero < klt_nonzero


@pytest.mark.parametrize("shape", [(48, 64), (37, 50)])
def test_the_filters_correction_is_bounded_per_klt_coefficient(layer, monkeypatch, shape):
    rng, level = np.random.default_rng(3), layer.levels[0]
    decoded = rng.integers(0, 256, (*shape, 3)).astype(np.uint8)
    filtered = (decoded + rng.normal(0, 6, decoded.shape)).round().clip(0, 255).astype(np.uint8)
    bounded = layer.bound_correction(filtered, decoded, level)
    corrections = [
        to_blocks(a.astype(np.float64) - decoded) @ layer.bases[0].T.astype(np.float64) for a in (filtered, bounded)
    ]
    assert np.abs(corrections[0]).max() > FILTER_REACH * level.step  # there was something to bound
    assert np.square(corrections[1]).sum() < np.square(corrections[0]).sum()
    monkeypatch.setattr(residual_module, "FILTER_REACH", 1e9)  # nothing clipped: the filter's own pixels
    assert np.array_equal(layer.bound_correction(filtered, decoded, level), filtered)
    monkeypatch.setattr(residual_module, "FILTER_REACH", 0.0)  # nothing kept: the decode
    assert np.array_equal(layer.bound_correction(filtered, decoded, level), decoded)


def test_a_missing_or_stray_residual_chunk_is_refused(res_codec):
    image = np.random.default_rng(3).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    with_chunk, without = unpack(res_codec.compress(image, 3)), unpack(res_codec.compress(image, 2))
    dropped = AecFile(with_chunk.header, with_chunk.tile_crcs, with_chunk.streams, ())
    with pytest.raises(FormatError, match="needs a residual chunk"):
        res_codec.decompress(pack(dropped))
    stray = AecFile(without.header, without.tile_crcs, without.streams, with_chunk.chunks)
    with pytest.raises(FormatError, match="codes no residual"):
        res_codec.decompress(pack(stray))


def test_a_residual_chunk_is_bounded_by_the_image_size():
    from aecodec.bitstream.format import Header, chunk_limit

    header = Header(3, 3, "m", bytes(8), 100, 60, 64, 8, 4)
    prefix = 5 + 15 + 1 + 255  # version, CRC, offsets, the slopes' length and at most 255 bytes of them
    assert chunk_limit(RESIDUAL, header) == prefix + 192 * 5 * blocks_shape(100, 60)[0] * blocks_shape(100, 60)[1]


@pytest.mark.parametrize(
    "key, change",
    [
        ("res.bank", lambda t: t * 0),  # zero frequencies
        ("res.rows", lambda t: t + 200),  # rows beyond the bank
        ("res.rows", lambda t: t[:, :-1]),  # a table of no decoding order
        ("res.rows", lambda t: torch.cat([t, t], 1)),  # depth 4: not offered
        ("res.rows", lambda t: t[0]),  # not a table per level
        ("res.levels", lambda t: t * 50),  # a base quality the model lacks
        ("res.means", lambda t: t[:, :5]),  # wrong shape
        ("res.offset", lambda t: t + 3),  # offset out of range
        ("res.bases", lambda t: t.double()),  # wrong dtype
    ],
)
def test_malformed_residual_tensors_raise_model_error(res_model_bytes, key, change):
    tensors = load(res_model_bytes)
    tensors[key] = change(tensors[key]).contiguous()
    meta = {"format": "aecodec-vqvae2-1", "name": "bad", "config": _config(res_model_bytes)}
    with pytest.raises(ModelError):
        model_from_bytes(save(tensors, metadata=meta))


def test_levels_name_their_half_base_quality_and_older_files_take_the_default(model_bytes):
    layer = random_residual_layer([(2, 12.0, 1), (3, 4.0, 2)], 2)
    data = with_residual_layer(model_bytes, layer)
    assert [level.half_base_quality for level in model_from_bytes(data).residual.levels] == [1, 2]
    meta = {"format": "aecodec-vqvae2-1", "name": "old", "config": _config(data)}
    tensors = load(data)
    tensors["res.levels"] = tensors["res.levels"][:, :3].contiguous()  # as written before the fourth column
    old = model_from_bytes(save(tensors, metadata=meta))
    assert [level.half_base_quality for level in old.residual.levels] == [HALF_BASE_QUALITY] * 2
    for bad in (0, old.network.num_qualities + 1):
        tensors = load(data)
        tensors["res.levels"][1, 3] = bad
        with pytest.raises(ModelError, match="base quality"):
            model_from_bytes(save(tensors, metadata=meta))


def test_a_carried_post_filter_maps_each_level_to_the_nearest_step(model_bytes, layer):
    source = model_from_bytes(with_postfilter(with_residual_layer(model_bytes, layer), random_postfilter(4)))
    assert [v.step for v in source.residual.levels] == [12.0, 3.0] and source.residual.base_only == 2
    carried = carried_postfilter(source, 2, [40.0, 13.0, 5.0, 2.0])
    rows = [0, 1, 2, 2, 3, 3]  # base-only qualities kept; 40 and 13 take step 12's, 5 and 2 step 3's
    assert torch.equal(carried.quality_bias, source.postfilter.quality_bias[rows])
    assert torch.equal(carried.gain, source.postfilter.gain[rows])
    assert torch.equal(carried.middle.weight, source.postfilter.middle.weight)
    with pytest.raises(InputError, match="do not cover"):
        carried_postfilter(source, 3, [5.0])
    with pytest.raises(InputError, match="no post-filter"):
        carried_postfilter(replace(source, postfilter=None), 2, [5.0])


def test_rungs_parse_with_an_optional_half_base_quality():
    assert parse_rungs("2:26:1,4:13.5") == [Rung(2, 26.0, 1), Rung(4, 13.5, None)]
    for bad in ("2", "2:26:1:1", "a:3", "2:26:x"):
        with pytest.raises(InputError, match="BASE_QUALITY:STEP"):
            parse_rungs(bad)


def _config(data: bytes) -> str:
    import json

    size = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + size])["__metadata__"]["config"]


def test_fit_residual_writes_a_model_whose_levels_beat_its_base(tmp_path, model_file, model_bytes, layer):
    from PIL import Image

    from aecodec.cli import main

    rng = np.random.default_rng(4)
    data = tmp_path / "photos"
    data.mkdir()
    ramp = np.add.outer(np.arange(48), np.arange(64))[:, :, None] * np.array([1, 2, 3])
    for n in range(3):
        pixels = ((ramp + rng.integers(0, 30, (48, 64, 3))) % 256).astype(np.uint8)
        Image.fromarray(pixels).save(data / f"{n}.png")
    out, filtered = tmp_path / "fitted.safetensors", tmp_path / "filtered.safetensors"
    filtered.write_bytes(with_postfilter(with_residual_layer(model_bytes, layer), random_postfilter(4)))
    args = ["--model", str(model_file), "--data", str(data), "--out", str(out), "--name", "fitted"]
    args += ["--postfilter", str(filtered)]
    assert main(["fit-residual", *args, "--rungs", "2:16", "--base-only", "3", "--every", "1"]) == 2  # 2 base-only
    assert main(["fit-residual", *args, "--rungs", "2:16,3:4:9", "--base-only", "2", "--every", "1"]) == 2
    assert main(["fit-residual", *args, "--rungs", "2:16,3:4", "--base-only", "2", "--every", "1"]) == 0
    fitted = model_from_bytes(out.read_bytes())
    assert fitted.num_qualities == 4 and fitted.default_quality == 3
    source = model_from_bytes(filtered.read_bytes()).postfilter
    assert torch.equal(fitted.postfilter.quality_bias, source.quality_bias)  # steps 16 and 4 take 12's and 3's
    # One KLT and predictor, fitted on the half-resolution bases every level is coded on by default.
    assert fitted.residual.predictors.shape == (1, PREDICTOR_INPUTS, COEFFICIENTS)
    assert [(level.base_quality, level.basis) for level in fitted.residual.levels] == [(2, 0), (3, 0)]
    assert {level.half_base_quality for level in fitted.residual.levels} == {HALF_BASE_QUALITY}
    # A level on half bases of its own quality gets its own KLT and predictor.
    assert main(["fit-residual", *args, "--rungs", "2:16:1,3:4", "--base-only", "2", "--every", "1", "--force"]) == 0
    two_model = model_from_bytes(out.read_bytes())
    two = two_model.residual
    assert two.predictors.shape[0] == len(two.bases) == 2
    assert [(v.basis, v.half_base_quality) for v in two.levels] == [(0, 1), (1, HALF_BASE_QUALITY)]
    codec = Codec(replace(fitted, postfilter=None), tile_size=64, overlap=8)  # the levels, not the random filter
    image = np.asarray(Image.open(data / "0.png"))
    assert unpack(codec.compress(image, 3)).header.half_base
    errors = [
        ((np.asarray(codec.decompress(codec.compress(image, q))) - image.astype(float)) ** 2).mean() for q in (2, 3, 4)
    ]
    assert errors[2] < errors[1] < errors[0]
    assert {level.depth for level in fitted.residual.levels} == {DEPTH}
    # --rows-only refits the rows for another decoding order and keeps everything else.
    rows_only = tmp_path / "rows.safetensors"
    refit = ["--model", str(out), "--data", str(data), "--every", "1", "--rows-only", "--depth", "0"]
    assert main(["fit-residual", *refit, "--out", str(rows_only), "--name", "fitted-d0"]) == 0
    checkerboard = model_from_bytes(rows_only.read_bytes())
    assert {level.depth for level in checkerboard.residual.levels} == {0}
    assert np.array_equal(checkerboard.residual.bases, two.bases)
    assert np.array_equal(checkerboard.residual.predictors, two.predictors)
    assert [v.step16 for v in checkerboard.residual.levels] == [v.step16 for v in two.levels]
    codecs = [Codec(replace(m, postfilter=None), tile_size=64, overlap=8) for m in (two_model, checkerboard)]
    for quality in (3, 4):  # effort 1 quantizes without the rows: the same coefficients, coded in another order
        files = [c.compress(image, quality, effort=1) for c in codecs]
        assert unpack(files[0]).chunk(RESIDUAL) != unpack(files[1]).chunk(RESIDUAL)
        assert np.array_equal(*(np.asarray(c.decompress(f)) for c, f in zip(codecs, files)))


def test_fit_residual_refuses_a_bad_name_or_an_existing_file_before_it_works(tmp_path, model_file, monkeypatch):
    from aecodec.cli import main
    from aecodec.training import residual as fitting

    monkeypatch.setattr(fitting, "refitted_rows", lambda *args: pytest.fail("worked before checking its arguments"))
    existing = tmp_path / "existing.safetensors"
    existing.write_bytes(b"keep")
    args = ["--model", str(model_file), "--data", str(tmp_path), "--rows-only"]
    assert main(["fit-residual", *args, "--out", str(tmp_path / "new.safetensors"), "--name", "Bad Name!"]) == 2
    assert main(["fit-residual", *args, "--out", str(existing), "--name", "fine"]) == 2
    assert existing.read_bytes() == b"keep"
