"""The half-resolution base: exact integer upsampling, the header flag, the encoder's choice and its decoder."""

import dataclasses

import numpy as np
import pytest
from conftest import without_corrections
from PIL import Image

from aecodec.bitstream.format import Header, pack, unpack
from aecodec.codec.api import Codec
from aecodec.codec.images import SourceImage, load_source
from aecodec.codec.options import DEFAULT_TUNE
from aecodec.errors import FormatError, InputError
from aecodec.models.model_files import HALF_BASE_QUALITY
from aecodec.models.resampling import downsample2x, upsample2x
from aecodec.testing import random_residual_model

BASE_ONLY, LOW, HIGH = 3, 4, 5  # random_residual_model's qualities: the base alone, steps 12 and 4


def bicubic_reference(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """Keys' cubic (a = -0.5) 2x upsampling in float64, edges repeated: what upsample2x computes in integers."""

    def weight(distance: np.ndarray) -> np.ndarray:
        d = np.abs(distance)
        near = 1.5 * d**3 - 2.5 * d**2 + 1
        far = -0.5 * d**3 + 2.5 * d**2 - 4 * d + 2
        return np.where(d <= 1, near, np.where(d < 2, far, 0.0))

    def along(axis_length: int, out_length: int) -> np.ndarray:
        position = (np.arange(out_length) + 0.5) / 2 - 0.5  # output pixel centres in input coordinates
        taps = np.floor(position)[:, None] + np.arange(-1, 3)[None]
        matrix = np.zeros((out_length, axis_length))
        for row, (p, t) in enumerate(zip(position, taps)):
            np.add.at(matrix[row], np.clip(t, 0, axis_length - 1).astype(int), weight(t - p))
        return matrix

    rows, cols = along(pixels.shape[0], height), along(pixels.shape[1], width)
    return np.einsum("ia,jb,abc->ijc", rows, cols, pixels.astype(np.float64))


@pytest.mark.parametrize(("width", "height"), [(64, 40), (63, 41), (1, 1), (2, 601), (37, 530)])
def test_upsampling_is_the_bicubic_filter_in_integers(width: int, height: int) -> None:
    """Taller than one strip too (601 rows): the strips join exactly."""
    rng = np.random.default_rng(width * height)
    half = rng.integers(0, 256, (-(-height // 2), -(-width // 2), 3), dtype=np.uint8)
    up = upsample2x(half, width, height)
    assert up.shape == (height, width, 3) and up.dtype == np.uint8
    reference = np.clip(bicubic_reference(half, width, height), 0, 255)
    assert np.abs(up - reference).max() <= 0.5 + 1e-9  # rounded once, from exact 128ths of 128ths


def test_upsampling_keeps_flat_images_and_checks_sizes() -> None:
    flat = np.full((5, 7, 3), 77, dtype=np.uint8)
    assert (upsample2x(flat, 13, 10) == 77).all()
    with pytest.raises(ValueError, match="does not upsample"):
        upsample2x(flat, 15, 10)


def test_downsampling_pairs_with_the_upsampler() -> None:
    smooth = np.add.outer(np.arange(31), np.arange(45))[:, :, None].repeat(3, 2).astype(np.uint8) * 2
    half = downsample2x(smooth)
    assert half.shape == (16, 23, 3)
    back = upsample2x(half, 45, 31).astype(int)
    assert np.abs(back - smooth)[2:-2, 2:-2].max() <= 2  # a ramp survives, away from the padded edges


def test_header_flag_sets_the_base_and_its_tile_grid() -> None:
    header = Header(3, 4, "m", bytes(8), 301, 201, 64, 8, 12, half_base=True)  # 151x101 in steps of 48
    assert header.base_size == (151, 101) and header.tile_grid == (3, 4)
    with pytest.raises(FormatError, match="tile count"):
        dataclasses.replace(header, tile_count=35).validate()  # the full-resolution grid's count
    with pytest.raises(FormatError, match="half_base"):
        dataclasses.replace(header, half_base=1).validate()


@pytest.fixture(scope="module")
def residual_codec() -> Codec:
    return Codec(random_residual_model(), tile_size=64, overlap=8)


def photo(size: tuple[int, int] = (90, 130)) -> np.ndarray:
    rng = np.random.default_rng(3)
    small = rng.integers(0, 256, (size[0] // 10, size[1] // 10, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((size[1], size[0]), Image.Resampling.BICUBIC))


def test_residual_levels_code_on_a_half_resolution_base(residual_codec: Codec) -> None:
    model = residual_codec.model
    assert [model.quality_plan(q, half_base=True)[0] for q in (LOW, HIGH)] == [1, HALF_BASE_QUALITY]  # the levels'
    pixels = photo()
    for effort in (1, 2):
        files = [unpack(residual_codec.compress(pixels, q, effort=effort)) for q in (BASE_ONLY, LOW, HIGH)]
        assert [f.header.half_base for f in files] == [False, True, True]
        assert [f.header.tile_count for f in files] == [6, 2, 2]  # 130x90 and 65x45 in steps of 48


def test_the_residual_is_added_to_the_base_it_was_taken_from(residual_codec: Codec) -> None:
    """At a fine step on a half-resolution base, the decode is close to the image and the base is not."""
    pixels = photo()
    file = residual_codec._file(_source(residual_codec, pixels), HIGH, DEFAULT_TUNE, None, 2, half_base=True)
    base = residual_codec._synthesize(file.header, residual_codec.tile_indices(file))
    decoded = residual_codec._unfiltered(unpack(pack(file)))
    rms = [np.sqrt(np.square(x.astype(float) - pixels).mean()) for x in (base, decoded)]
    assert rms[1] < 4 < 4 * rms[1] < rms[0]


def test_higher_efforts_keep_the_base_of_lower_cost(residual_codec: Codec) -> None:
    pixels = photo()
    for quality in (LOW, HIGH):
        files, costs = [], []
        for half in (False, True):
            file = residual_codec._file(_source(residual_codec, pixels), quality, DEFAULT_TUNE, None, 3, half)
            error = np.square(residual_codec._unfiltered(file).astype(float) - pixels).sum()
            files.append(pack(file))
            costs.append(error + residual_codec._lagrangian(quality) * 8 * len(files[-1]))
        chosen = without_corrections(unpack(residual_codec.compress(pixels, quality, effort=3)))
        assert pack(chosen) == files[int(np.argmin(costs))]  # the corrections come after the choice


def test_a_half_base_needs_a_residual_level(residual_codec: Codec) -> None:
    file = unpack(residual_codec.compress(photo((40, 48)), 2))
    # 48x40 and 24x20 are both one tile: only the quality check catches it
    forged = pack(dataclasses.replace(file, header=dataclasses.replace(file.header, half_base=True)))
    with pytest.raises(FormatError, match="no half-resolution base"):
        residual_codec.decompress(forged)
    with pytest.raises(InputError, match="no half-resolution base"):
        residual_codec.analyze(photo(), 2, half_base=True)


def _source(codec: Codec, pixels: np.ndarray) -> SourceImage:
    return load_source(pixels, codec.max_pixels, False)
