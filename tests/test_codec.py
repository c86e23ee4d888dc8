"""Round trips through the public API with a tiny random model: exact indices, any size, any input."""

import numpy as np
import pytest
import torch
from PIL import Image

from aecodec.bitstream.format import unpack
from aecodec.codec.api import Codec
from aecodec.codec.images import load_pixels
from aecodec.errors import FormatError, InputError


def assert_indices_round_trip(codec: Codec, pixels: np.ndarray, quality: int) -> bytes:
    data = codec.compress(pixels, quality)
    sent = codec.analyze(load_pixels(pixels, codec.max_pixels)[0], quality)
    received = [indices for _, indices in codec.tile_indices(unpack(data))]
    assert len(sent) == len(received)
    for a, b in zip(sent, received):
        assert len(a.top) == len(b.top) and len(a.bottom) == len(b.bottom)
        for x, y in zip(a.top + a.bottom, b.top + b.bottom):
            assert torch.equal(x, y)
    return data


@pytest.mark.parametrize("height,width", [(1, 1), (17, 33), (64, 64), (70, 131)])
def test_indices_round_trip_odd_sizes(codec: Codec, height: int, width: int) -> None:
    pixels = np.random.default_rng(height * width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    for quality in codec.qualities:
        data = assert_indices_round_trip(codec, pixels, quality)
        image = codec.decompress(data)
        assert image.size == (width, height) and image.mode == "RGB"


def test_large_odd_image_single_and_tiled(model) -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (513, 769, 3), dtype=np.uint8)
    for codec in (Codec(model), Codec(model, tile_size=256, overlap=16)):
        data = assert_indices_round_trip(codec, pixels, 1)
        assert codec.decompress(data).size == (769, 513)


def test_decoding_is_deterministic(codec: Codec) -> None:
    pixels = np.random.default_rng(2).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    data = codec.compress(pixels, 2)
    assert codec.compress(pixels, 2) == data
    assert np.array_equal(np.asarray(codec.decompress(data)), np.asarray(codec.decompress(data)))


def test_inputs_pil_numpy_path_bytes_agree(codec: Codec, tmp_path) -> None:
    pixels = np.random.default_rng(3).integers(0, 256, (30, 20, 3), dtype=np.uint8)
    path = tmp_path / "in.png"
    Image.fromarray(pixels).save(path)
    expected = codec.compress(pixels, 1)
    assert codec.compress(Image.fromarray(pixels), 1) == expected
    assert codec.compress(path, 1) == expected
    assert codec.compress(str(path), 1) == expected
    assert codec.compress(path.read_bytes(), 1) == expected
    assert codec.compress(pixels.astype(np.float32) / 255, 1) == expected


def test_grayscale_decodes_to_grayscale(codec: Codec) -> None:
    gray = np.random.default_rng(4).integers(0, 256, (21, 19), dtype=np.uint8)
    for source in (gray, Image.fromarray(gray, "L"), gray[:, :, None]):
        data = codec.compress(source, 1)
        assert unpack(data).header.channels == 1
        image = codec.decompress(data)
        assert image.mode == "L" and image.size == (19, 21)


def test_alpha_is_coded_losslessly_and_opaque_alpha_is_dropped(codec: Codec) -> None:
    rgba = np.full((16, 16, 4), 255, dtype=np.uint8)
    rgba[:, :, :3] = 90
    assert codec.compress(Image.fromarray(rgba, "RGBA"), 1) == codec.compress(rgba[:, :, :3], 1)
    alpha = np.random.default_rng(5).integers(0, 256, (16, 16), dtype=np.uint8)
    for source, mode in ((np.dstack([rgba[:, :, :3], alpha]), "RGBA"), (np.dstack([rgba[:, :, 0], alpha]), "LA")):
        for image in (source, Image.fromarray(source, mode)):
            decoded = codec.decompress(codec.compress(image, 1))
            assert decoded.mode == mode and (np.asarray(decoded.getchannel("A")) == alpha).all()


@pytest.mark.parametrize(
    "bad",
    [np.zeros((0, 4, 3), np.uint8), np.zeros((4, 4, 5), np.uint8), np.full((4, 4, 3), 2.0), "no/such/file.png", 42],
)
def test_bad_inputs_raise_input_error(codec: Codec, bad) -> None:
    with pytest.raises(InputError):
        codec.compress(bad, 1)


def test_not_an_image_and_directory(codec: Codec, tmp_path) -> None:
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"this is not a png")
    with pytest.raises(InputError, match="not a readable image"):
        codec.compress(junk, 1)
    with pytest.raises(InputError, match="directory"):
        codec.compress(tmp_path, 1)


def test_pixel_limit_is_enforced_and_can_be_raised(model) -> None:
    pixels = np.zeros((40, 40, 3), np.uint8)
    with pytest.raises(InputError, match="limit"):
        Codec(model, max_pixels=1000).compress(pixels, 1)
    data = Codec(model, max_pixels=1600).compress(pixels, 1)
    with pytest.raises(FormatError, match="limit"):
        Codec(model, max_pixels=1000).decompress(data)


def test_wrong_model_is_a_format_error(codec: Codec) -> None:
    from aecodec.testing import random_model

    data = codec.compress(np.zeros((8, 8, 3), np.uint8), 1)
    with pytest.raises(FormatError, match="model"):
        Codec(random_model("other", seed=1)).decompress(data)


def test_quality_out_of_range(codec: Codec) -> None:
    with pytest.raises(ValueError):
        codec.compress(np.zeros((8, 8, 3), np.uint8), codec.qualities[-1] + 1)
