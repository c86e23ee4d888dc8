"""The post-filter: checked in model files, run last by the decoder strip by strip, trained by fit-postfilter."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import without_corrections
from PIL import Image
from safetensors.torch import load, save

import aecodec.models.postfilter as postfilter_module
from aecodec.bitstream import golomb
from aecodec.bitstream.format import FILTER_TUNING, AecFile, pack, unpack
from aecodec.codec import api, effort, filter_target, filter_tuning
from aecodec.codec.api import Codec
from aecodec.codec.filter_tuning import pack_tuning, tune_filter, unpack_tuning
from aecodec.errors import FormatError, InputError, ModelError
from aecodec.models.model_files import model_from_bytes
from aecodec.models.postfilter import FilterTuning
from aecodec.testing import random_postfilter, random_residual_layer, with_postfilter, with_residual_layer
from aecodec.training.postfilter import starting_filter


@pytest.fixture(scope="module")
def filtered_bytes(model_bytes: bytes) -> bytes:
    residual = with_residual_layer(model_bytes, random_residual_layer([(3, 4.0)], base_only=3))
    return with_postfilter(residual, random_postfilter(4))


@pytest.fixture(scope="module")
def deep_bytes(filtered_bytes: bytes) -> bytes:
    """The filtered model with a filter of one residual block."""
    return with_postfilter(filtered_bytes, random_postfilter(4, blocks=1, seed=3))


def test_residual_blocks_round_trip_through_a_model_file(deep_bytes: bytes) -> None:
    stored, original = model_from_bytes(deep_bytes).postfilter, random_postfilter(4, blocks=1, seed=3)
    assert len(stored.blocks) == 1 and stored.halo == 5
    pixels = photo(40, 30, seed=4)
    assert np.array_equal(stored.apply(pixels, 3), original.apply(pixels, 3))
    assert len(stored.for_qualities([2, 2, 1]).blocks) == 1


def test_a_filter_of_too_many_blocks_raises_model_error(filtered_bytes: bytes) -> None:
    with pytest.raises(ModelError, match="at most 4 residual blocks"):
        model_from_bytes(with_postfilter(filtered_bytes, random_postfilter(4, blocks=5)))


def test_a_filter_deepened_from_its_own_weights_starts_where_it_was(filtered_bytes: bytes) -> None:
    model = model_from_bytes(filtered_bytes)
    deeper = starting_filter(model, 32, 2, start=True)
    assert len(deeper.blocks) == 2 and deeper.first.out_channels == model.postfilter.first.out_channels
    assert all(p.requires_grad for p in deeper.parameters())
    x = torch.from_numpy(photo(24, 20)).permute(2, 0, 1)[None].float() / 255
    quality = torch.tensor([3])
    assert torch.allclose(deeper.correction(x, quality), model.postfilter.correction(x, quality), atol=1e-6)
    with pytest.raises(InputError, match="--start"):
        starting_filter(model_from_bytes(with_postfilter(filtered_bytes, deeper)), 32, 1, start=True)


def photo(height: int = 72, width: int = 96, seed: int = 5) -> np.ndarray:
    ramp = np.linspace(0, 200, width)[None, :, None] + np.linspace(0, 50, height)[:, None, None]
    return (ramp + np.random.default_rng(seed).normal(0, 12, (height, width, 3))).clip(0, 255).astype(np.uint8)


def without_corrections_of(data: bytes) -> bytes:
    """A file without its corrections, which the decoder applies after the filter: what these tests compare."""
    return pack(without_corrections(unpack(data)))


def filtered_as_the_decoder_does(codec: Codec, unfiltered: np.ndarray, quality: int) -> np.ndarray:
    """The post-filter's output, its correction bounded in the residual's KLT at residual levels."""
    filtered, level = codec.model.postfilter.apply(unfiltered, quality), codec.model.quality_plan(quality)[1]
    return filtered if level is None else codec.model.residual.bound_correction(filtered, unfiltered, level)


def test_the_decoder_filters_last_and_a_zero_gain_skips_the_filter(filtered_bytes: bytes) -> None:
    codec = Codec(model_from_bytes(filtered_bytes), tile_size=64, overlap=8)
    postfilter = codec.model.postfilter
    assert postfilter is not None and len(postfilter.gain) == codec.model.num_qualities == 4
    for quality in (2, 4):  # base alone, and a residual level
        data = without_corrections_of(codec.compress(photo(), quality))
        filtered = np.asarray(codec.decompress(data))
        postfilter.gain[quality - 1] = 0.0
        plain = np.asarray(codec.decompress(data))
        postfilter.gain[quality - 1] = 1.0
        assert not np.array_equal(filtered, plain)
        assert np.array_equal(filtered, filtered_as_the_decoder_does(codec, plain, quality))


@pytest.mark.parametrize("blocks", [0, 2])
def test_strips_filter_like_the_whole_image(monkeypatch, blocks: int) -> None:
    postfilter, pixels = random_postfilter(2, seed=1, blocks=blocks), photo(70, 40, seed=6)
    whole = postfilter.apply(pixels, 2)
    monkeypatch.setattr(postfilter_module, "STRIP_ROWS", 4)
    strips = postfilter.apply(pixels, 2)
    difference = np.abs(whole.astype(int) - strips)
    assert difference.max() <= 1 and (difference > 0).mean() < 0.01  # float sums may round apart, nothing more


def test_unfiltered_decodes_are_the_decodes_before_the_filter(filtered_bytes: bytes) -> None:
    codec = Codec(model_from_bytes(filtered_bytes), tile_size=64, overlap=8)
    data, tiny = without_corrections_of(codec.compress(photo(), 4)), photo(6, 8)
    unfiltered = codec.decompress_unfiltered(data)
    assert np.array_equal(np.asarray(codec.decompress(data)), filtered_as_the_decoder_does(codec, unfiltered, 4))
    assert np.array_equal(codec.decompress_unfiltered(codec.compress(tiny, 4)), tiny)  # raw pixels, exactly


def test_strips_filtered_in_parallel_give_the_same_pixels_on_any_thread_count(monkeypatch) -> None:
    """Each strip runs on one oneDNN thread, whichever worker takes it: 1 and 3 threads agree exactly."""
    postfilter, pixels = random_postfilter(2, seed=2), photo(75, 40, seed=8)
    monkeypatch.setattr(postfilter_module, "STRIP_ROWS", 8)  # ten strips, so that workers share them
    threads = torch.get_num_threads()
    try:
        outputs = []
        for count in (1, 3):
            torch.set_num_threads(count)
            outputs.append(postfilter.apply(pixels, 2))
            assert torch.get_num_threads() == count  # the caller's setting is restored
    finally:
        torch.set_num_threads(threads)
    assert np.array_equal(*outputs) and not np.array_equal(outputs[0], pixels)


@pytest.mark.parametrize(
    ("key", "change"),
    [
        ("post.gain", lambda t: t * -1 - 1),
        ("post.gain", lambda t: t[:-1]),
        ("post.middle.weight", lambda t: t * float("nan")),
        ("post.first.weight", lambda t: t.half()),
        ("post.first.weight", lambda t: torch.zeros(65, 3, 3, 3)),
        ("post.quality_bias", lambda t: torch.cat([t, t])),
        ("post.last.bias", None),
        ("post.blocks.0.outer.bias", None),
        ("post.blocks.1.inner.weight", lambda t: t.clone()),
    ],
)
def test_malformed_postfilter_tensors_raise_model_error(deep_bytes: bytes, key: str, change) -> None:
    tensors = load(deep_bytes)
    if change is None:
        del tensors[key]
    else:  # a key not in the file (more blocks than allowed) copies block 0's
        tensors[key] = change(tensors.get(key, tensors["post.blocks.0.inner.weight"])).contiguous()
    size = int.from_bytes(deep_bytes[:8], "little")
    meta = json.loads(deep_bytes[8 : 8 + size])["__metadata__"]
    with pytest.raises(ModelError, match="post-filter"):
        model_from_bytes(save(tensors, metadata=meta))


@pytest.mark.parametrize("weighting", ["mse", "psnr"])
def test_fit_postfilter_writes_a_model_that_decodes_no_worse(tmp_path, model_file, weighting: str) -> None:
    from aecodec.cli import main

    data = tmp_path / "photos"
    data.mkdir()
    for n in range(3):
        Image.fromarray(photo(seed=n)).save(data / f"{n}.png")
    out = tmp_path / "filtered.safetensors"
    args = ["--model", str(model_file), "--data", str(data), "--out", str(out), "--name", "filtered"]
    options = ["--steps", "30", "--channels", "4", "--crop", "32", "--per-image", "2", "--weighting", weighting]
    assert main(["fit-postfilter", *args, *options]) == 0
    fitted = model_from_bytes(out.read_bytes())
    gains = fitted.postfilter.gain
    assert len(gains) == fitted.num_qualities and bool(((gains >= 0) & (gains <= 4)).all())
    codec, image = Codec(fitted, tile_size=64, overlap=8), photo(seed=0)
    data = codec.compress(image, 2)  # quality 2's gain was fitted on image 0 alone (qualities 1, 2; image 1: 3, 1)
    filtered = np.asarray(codec.decompress(data)).astype(float)
    fitted.postfilter.gain[1] = 0.0
    plain = np.asarray(codec.decompress(data)).astype(float)
    assert ((filtered - image) ** 2).mean() <= ((plain - image) ** 2).mean()


def test_fit_postfilter_start_deepens_the_models_own_filter(tmp_path, filtered_bytes: bytes) -> None:
    from aecodec.cli import main

    data, source = tmp_path / "photos", tmp_path / "own.safetensors"
    data.mkdir()
    Image.fromarray(photo(seed=1)).save(data / "1.png")
    source.write_bytes(filtered_bytes)
    out = tmp_path / "deeper.safetensors"
    args = ["--model", str(source), "--data", str(data), "--out", str(out), "--name", "deeper", "--per-image", "1"]
    assert main(["fit-postfilter", *args, "--start", "--blocks", "1", "--steps", "0"]) == 0
    own, deeper = model_from_bytes(filtered_bytes).postfilter, model_from_bytes(out.read_bytes()).postfilter
    assert len(deeper.blocks) == 1 and torch.equal(deeper.middle.weight, own.middle.weight)


def _with_chunks(data: bytes, chunks: dict[bytes, bytes]) -> bytes:
    file = unpack(data)
    merged = {**dict(file.chunks), **chunks}
    return pack(AecFile(file.header, file.tile_crcs, file.streams, tuple(sorted(merged.items()))))


def _squared_error(decoded, image: np.ndarray) -> float:
    return float(((np.asarray(decoded).astype(float) - image) ** 2).sum())


def test_tuning_round_trips_through_its_chunk() -> None:
    postfilter = random_postfilter(2, channels=4, blocks=1)  # later convolutions: 4, 4, 4 and 3 channels
    bias = torch.tensor([-1.0, 0.0, 127 / 128, 3 / 128])
    first_only = unpack_tuning(pack_tuning(FilterTuning(bias, 70 / 64)), postfilter)
    assert torch.equal(first_only.bias, bias) and first_only.gain == 70 / 64 and first_only.layers == ()
    layers = (torch.tensor([1.0, -0.5, 0.0, 127 / 64]), torch.zeros(4), torch.full((4,), -1 / 64), torch.ones(3))
    payload = pack_tuning(FilterTuning(bias, 1.0, layers), exponent=6)
    back = unpack_tuning(payload, postfilter)
    assert payload[0] == 2 and torch.equal(back.bias, bias) and back.gain == 1.0
    assert all(torch.equal(a, b) for a, b in zip(back.layers, layers, strict=True))


def test_signed_golomb_codes_round_trip_and_reject_what_they_cannot_hold() -> None:
    generator = np.random.default_rng(5)
    values = [int(v) for v in generator.laplace(0, 6, 200).round().clip(-127, 127)]
    order = golomb.best_order(values)
    data = golomb.encode_signed(values, order)
    assert golomb.decode_signed(data, len(values), order, 127) == values
    assert len(data) == -(-golomb.code_bits(values, order) // 8) < len(values)  # fewer bytes than int8
    with pytest.raises(FormatError, match="end early"):
        golomb.decode_signed(data[:-1], len(values), order, 127)
    with pytest.raises(FormatError, match="after its coded values"):
        golomb.decode_signed(data + b"\0", len(values), order, 127)
    with pytest.raises(FormatError, match="beyond"):
        golomb.decode_signed(golomb.encode_signed([200], 0), 1, 0, 127)
    with pytest.raises(FormatError, match="order"):
        golomb.decode_signed(data, len(values), 16, 127)


@pytest.mark.parametrize("bf16", [False, True])
def test_effort_5_tunes_the_filter_to_the_image(monkeypatch, filtered_bytes: bytes, bf16: bool) -> None:
    """In float32 steps, and in bf16 steps (where the CPU has them natively; emulated elsewhere, slowly)."""
    monkeypatch.setattr(filter_tuning, "_native_bf16", lambda: bf16)
    codec = Codec(model_from_bytes(filtered_bytes), tile_size=64, overlap=8)
    image = photo(seed=2)
    for quality in (2, 4):
        shared, tuned = (without_corrections_of(codec.compress(image, quality, effort=effort)) for effort in (4, 5))
        chunk = unpack(tuned).chunk(FILTER_TUNING)
        assert chunk is not None and chunk[0] in (1, 2)  # the first layer's bias alone, or every bias
        tuning = unpack_tuning(chunk, codec.model.postfilter)
        assert len(tuning.layers) in (0, len(codec.model.postfilter.later_convolutions()))
        # The same base, plus the chunk; the residual may be recoded through the tuned filter.
        assert unpack(tuned).streams == unpack(shared).streams
        assert _squared_error(codec.decompress(tuned), image) < _squared_error(codec.decompress(shared), image)


def test_effort_5_tunes_on_a_gpu_and_the_cpu_decodes(filtered_bytes: bytes) -> None:
    """Runs only where CUDA is present: the tuning's steps on the GPU, its judging and the decode on the CPU."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    model, image = model_from_bytes(filtered_bytes), photo(seed=2)
    gpu, cpu = (Codec(model, tile_size=64, overlap=8, device=device) for device in ("cuda", "cpu"))
    shared, tuned = (without_corrections_of(gpu.compress(image, 4, effort=effort)) for effort in (4, 5))
    assert unpack(tuned).chunk(FILTER_TUNING) is not None
    assert _squared_error(cpu.decompress(tuned), image) < _squared_error(cpu.decompress(shared), image)


def test_tuning_is_kept_only_where_it_pays_for_its_bits(filtered_bytes: bytes) -> None:
    codec = Codec(model_from_bytes(filtered_bytes), tile_size=64, overlap=8)
    postfilter, image = codec.model.postfilter, photo(seed=3)
    decoded = np.asarray(codec.decompress(codec.compress(image, 2)))
    assert tune_filter(postfilter, decoded, image, 2, steps=5, lagrangian=1e12) is None


def test_a_filter_of_zero_gain_targets_the_original() -> None:
    postfilter, decoded, original = random_postfilter(2, seed=4), photo(40, 30, seed=1), photo(40, 30, seed=2)
    postfilter.gain.zero_()  # F(d) = d, J = I: the target d - (d - x) is x
    assert np.array_equal(filter_target.filter_target(postfilter, decoded, original, 2), original)


def test_filter_target_is_one_gauss_newton_step_strip_by_strip(monkeypatch) -> None:
    """d - J^T (F(d) - x) of the whole image at once, and of strips whose gradients add in their halos."""
    postfilter, decoded, original = random_postfilter(2, seed=5, blocks=1), photo(70, 40, seed=3), photo(70, 40, seed=4)
    d = torch.from_numpy(decoded.astype(np.float32) / 255).permute(2, 0, 1)[None].requires_grad_()
    filtered = d + postfilter.gain[1] * postfilter.correction(d, torch.tensor([2]))
    x = torch.from_numpy(original.astype(np.float32)).permute(2, 0, 1)[None]
    (gradient,) = torch.autograd.grad(filtered, d, 255 * filtered.detach() - x)
    expected = np.round(decoded - gradient[0].permute(1, 2, 0).numpy())
    monkeypatch.setattr(filter_target, "STRIP_PIXELS", 1)
    monkeypatch.setattr(filter_target, "MIN_STRIP_ROWS", 8)  # nine strips, each with a halo of 5 rows
    target = filter_target.filter_target(postfilter, decoded, original, 2)
    difference = np.abs(target - expected)
    assert difference.max() <= 1 and (difference > 0).mean() < 0.01 and not np.array_equal(target, original)


@pytest.mark.parametrize("passes", ["filter_passes", "corrected_passes"])
def test_higher_efforts_recode_the_residual_for_the_filter_never_at_a_higher_cost(
    monkeypatch, filtered_bytes: bytes, passes: str
) -> None:
    """Effort 3's residual, recoded toward the filter's targets (plain, or through the corrections fitted to the
    decode), costs no more D + lambda R than effort 3's without those passes (the passes keep their input where no
    recoding beats it, and judge each candidate as the decoder will show it)."""
    codec, image, quality = Codec(model_from_bytes(filtered_bytes), tile_size=64, overlap=8), photo(seed=5), 4
    assert getattr(effort.effort_plan(3), passes) > 0 and getattr(effort.effort_plan(2), passes) == 0

    def cost(data: bytes) -> float:
        return _squared_error(codec.decompress(data), image) + codec._lagrangian(quality) * 8 * len(data)

    recoded = codec.compress(image, quality, effort=3)
    plans = [replace(plan, **{passes: 0}) for plan in effort.EFFORTS]
    monkeypatch.setattr(effort, "EFFORTS", tuple(plans))
    assert cost(recoded) <= cost(codec.compress(image, quality, effort=3))


def test_corrected_passes_aim_at_the_original_less_what_the_corrections_add(monkeypatch, filtered_bytes: bytes) -> None:
    """A corrected pass's goal is the original minus (the decode with its corrections - the decode before them)."""
    codec, image, quality = Codec(model_from_bytes(filtered_bytes), tile_size=64, overlap=8), photo(seed=5), 4
    no_passes = [replace(plan, filter_passes=0, corrected_passes=0) for plan in effort.EFFORTS]
    monkeypatch.setattr(effort, "EFFORTS", tuple(no_passes))
    unrecoded = codec.compress(image, quality, effort=3)
    corrections = np.asarray(codec.decompress(unrecoded)).astype(np.int16) - codec._shown(unpack(unrecoded))
    assert corrections.any()
    goals = []

    def recorded(postfilter, decoded, goal, quality, tuning=None):
        goals.append(goal)
        return filter_target.filter_target(postfilter, decoded, goal, quality, tuning)

    monkeypatch.setattr(api, "filter_target", recorded)
    monkeypatch.setattr(effort, "EFFORTS", tuple(replace(plan, corrected_passes=1) for plan in no_passes))
    codec.compress(image, quality, effort=3)
    assert len(goals) == 1 and np.array_equal(goals[0], image - corrections.astype(np.float32))


@pytest.mark.parametrize("quality", [2, 4])
def test_corrections_are_fitted_where_there_is_nothing_to_recode(
    monkeypatch, filtered_bytes: bytes, quality: int
) -> None:
    """At a quality without a residual layer (2), or where the filter's gain is 0 (4), the recodings through the
    corrections have nothing to recode; the file gets the corrections an effort without those recodings fits."""
    codec, image = Codec(model_from_bytes(filtered_bytes), tile_size=64, overlap=8), photo(seed=5)
    with torch.no_grad():
        codec.model.postfilter.gain[3] = 0
    recoded = codec.compress(image, quality, effort=3)
    monkeypatch.setattr(effort, "EFFORTS", tuple(replace(plan, corrected_passes=0) for plan in effort.EFFORTS))
    assert recoded == codec.compress(image, quality, effort=3)
    if quality == 2:  # the base alone: the corrections pay
        assert recoded != without_corrections_of(recoded)


def test_tuning_pieces_add_up_to_the_whole_views_gradient(monkeypatch) -> None:
    """Strips with their halos (and a crop left whole) give the gradient of each view's mean squared error."""
    postfilter = random_postfilter(2, seed=6, blocks=1)
    views = [filter_tuning.training_views(photo(h, w, seed=1), photo(h, w, seed=2))[0] for h, w in ((70, 40), (20, 30))]
    sizes = [postfilter.quality_bias.shape[1]] + [conv.out_channels for conv in postfilter.later_convolutions()]
    offsets = [
        (0.1 * torch.randn(size, generator=torch.Generator().manual_seed(size))).requires_grad_() for size in sizes
    ]
    tuning = FilterTuning(offsets[0], 0.8, tuple(offsets[1:]))
    q = torch.tensor([2])

    def gradient(pieces: list[filter_tuning.Piece]) -> list[torch.Tensor]:
        parts = [filter_tuning.piece_gradients(postfilter, piece, q, tuning, bf16=False) for piece in pieces]
        return [sum(values) for values in zip(*parts)]

    whole = gradient(filter_tuning.tuning_pieces(views, postfilter))  # each view one piece
    monkeypatch.setattr(filter_tuning, "STRIP_PIXELS", 1)
    monkeypatch.setattr(filter_tuning, "MIN_STRIP_ROWS", 8)
    pieces = filter_tuning.tuning_pieces(views, postfilter)
    assert len(pieces) == 9 + 3 and sum(piece.target.shape[2] for piece in pieces) == 70 + 20
    for expected, actual in zip(whole, gradient(pieces)):
        assert torch.allclose(actual, expected, rtol=1e-4, atol=1e-7) and expected.abs().sum() > 0


def test_the_tuning_does_not_depend_on_the_thread_count(monkeypatch, filtered_bytes: bytes) -> None:
    """The pieces run on the caller's threads; their gradients add in one order, so the chunk is the same."""
    monkeypatch.setattr(filter_tuning, "STRIP_PIXELS", 1)  # many pieces, spread over the threads
    codec = Codec(model_from_bytes(filtered_bytes), tile_size=64, overlap=8)
    postfilter, image = codec.model.postfilter, photo(seed=2)
    decoded = np.asarray(codec.decompress(codec.compress(image, 4)))
    threads, payloads = torch.get_num_threads(), []
    try:
        for count in (1, 3):
            torch.set_num_threads(count)
            payloads.append(tune_filter(postfilter, decoded, image, 4, steps=6, lagrangian=0.0))
    finally:
        torch.set_num_threads(threads)
    assert payloads[0] is not None and payloads[0] == payloads[1]


def test_large_images_are_tuned_on_a_bounded_grid_of_crops(monkeypatch) -> None:
    monkeypatch.setattr(filter_tuning, "MAX_TUNED_PIXELS", 4 * 16 * 16)
    monkeypatch.setattr(filter_tuning, "CROP", 16)
    views = filter_tuning.training_views(photo(100, 300), photo(100, 300, seed=1))
    assert 1 <= len(views) <= 4 and all(x.shape == (1, 3, 16, 16) for x, _ in views)
    assert len(filter_tuning.training_views(photo(30, 30), photo(30, 30))) == 1


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (bytes([1, 64, 0, 0, 0]), "5 bytes for a filter of 8 channels"),
        (bytes([3, 64, *[0] * 8]), "version 3"),
        (bytes([1, 64]), "invalid filter chunk"),
        (bytes([2, 64, *[0] * 8]), "10 bytes for a filter"),  # no step exponent and order
        (bytes([2, 64, *[0] * 8, 11, 0]), "step exponent 11"),
        (bytes([2, 64, *[0] * 8, 6, 0]), "end early"),  # no offsets for the later convolutions
        (bytes([2, 64, *[0] * 8, 6, 0, *[0xFF] * 3, 0]), "after its coded values"),
    ],
)
def test_malformed_filter_chunks_raise_format_error(filtered_bytes: bytes, payload: bytes, message: str) -> None:
    codec = Codec(model_from_bytes(filtered_bytes), tile_size=64, overlap=8)
    data = codec.compress(photo(), 2)
    with pytest.raises(FormatError, match=message):
        codec.decompress(_with_chunks(data, {FILTER_TUNING: payload}))


def test_a_filter_chunk_needs_a_post_filter_and_coded_pixels(model_bytes: bytes, filtered_bytes: bytes) -> None:
    plain = Codec(model_from_bytes(model_bytes), tile_size=64, overlap=8)
    chunk = {FILTER_TUNING: bytes([1, 64, *[0] * 8])}
    with pytest.raises(FormatError, match="no post-filter"):
        plain.decompress(_with_chunks(plain.compress(photo(), 1), chunk))
    filtered = Codec(model_from_bytes(filtered_bytes), tile_size=64, overlap=8)
    with pytest.raises(FormatError, match="raw pixels"):
        filtered.decompress(_with_chunks(filtered.compress(photo(4, 4), 2), chunk))


def test_psnr_weights_count_each_decode_by_its_inverse_mse() -> None:
    from aecodec.training.postfilter import psnr_weights

    original = torch.zeros(3, 4, 4, dtype=torch.uint8)
    pairs = [(2, original + 1, original), (3, original + 2, original)]  # mean squared errors 1 and 4
    assert psnr_weights(pairs) == pytest.approx([1.6, 0.4])  # 1 : 1/4, with a mean of 1


def test_weighted_gain_is_the_least_squares_gain_of_the_weighted_errors() -> None:
    postfilter = random_postfilter(2)
    generator = torch.Generator().manual_seed(3)
    pairs = [(torch.rand(1, 3, 8, 8, generator=generator), torch.rand(1, 3, 8, 8, generator=generator)) for _ in "ab"]
    alone = postfilter.least_squares_gain(pairs[:1], 1)
    assert postfilter.least_squares_gain(pairs, 1, weights=[1.0, 0.0]) == pytest.approx(alone)
    assert postfilter.least_squares_gain(pairs, 1) == pytest.approx(
        postfilter.least_squares_gain(pairs, 1, weights=[2, 2])
    )
    assert postfilter.least_squares_gain(pairs, 1, weights=[1.0, 1e-3]) != pytest.approx(
        postfilter.least_squares_gain(pairs, 1)
    )
