"""The post-filter: checked in model files, run last by the decoder strip by strip, trained by fit-postfilter."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load, save

import aecodec.models.postfilter as postfilter_module
from aecodec.codec.api import Codec
from aecodec.errors import ModelError
from aecodec.models.model_files import model_from_bytes
from aecodec.testing import random_postfilter, random_residual_layer, with_postfilter, with_residual_layer


@pytest.fixture(scope="module")
def filtered_bytes(model_bytes: bytes) -> bytes:
    residual = with_residual_layer(model_bytes, random_residual_layer([(3, 4.0)], base_only=3))
    return with_postfilter(residual, random_postfilter(4))


def photo(height: int = 72, width: int = 96, seed: int = 5) -> np.ndarray:
    ramp = np.linspace(0, 200, width)[None, :, None] + np.linspace(0, 50, height)[:, None, None]
    return (ramp + np.random.default_rng(seed).normal(0, 12, (height, width, 3))).clip(0, 255).astype(np.uint8)


def test_the_decoder_filters_last_and_a_zero_gain_skips_the_filter(filtered_bytes: bytes) -> None:
    codec = Codec(model_from_bytes(filtered_bytes), tile_size=64, overlap=8)
    postfilter = codec.model.postfilter
    assert postfilter is not None and len(postfilter.gain) == codec.model.num_qualities == 4
    for quality in (2, 4):  # base alone, and a residual level
        data = codec.compress(photo(), quality)
        filtered = np.asarray(codec.decompress(data))
        postfilter.gain[quality - 1] = 0.0
        plain = np.asarray(codec.decompress(data))
        postfilter.gain[quality - 1] = 1.0
        assert not np.array_equal(filtered, plain)
        assert np.array_equal(filtered, postfilter.apply(plain, quality))


def test_strips_filter_like_the_whole_image(monkeypatch) -> None:
    postfilter, pixels = random_postfilter(2, seed=1), photo(70, 40, seed=6)
    whole = postfilter.apply(pixels, 2)
    monkeypatch.setattr(postfilter_module, "STRIP_ROWS", 4)
    strips = postfilter.apply(pixels, 2)
    difference = np.abs(whole.astype(int) - strips)
    assert difference.max() <= 1 and (difference > 0).mean() < 0.01  # float sums may round apart, nothing more


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
    ],
)
def test_malformed_postfilter_tensors_raise_model_error(filtered_bytes: bytes, key: str, change) -> None:
    tensors = load(filtered_bytes)
    if change is None:
        del tensors[key]
    else:
        tensors[key] = change(tensors[key]).contiguous()
    size = int.from_bytes(filtered_bytes[:8], "little")
    meta = json.loads(filtered_bytes[8 : 8 + size])["__metadata__"]
    with pytest.raises(ModelError, match="post-filter"):
        model_from_bytes(save(tensors, metadata=meta))


def test_fit_postfilter_writes_a_model_that_decodes_no_worse(tmp_path, model_file) -> None:
    from aecodec.cli import main

    data = tmp_path / "photos"
    data.mkdir()
    for n in range(3):
        Image.fromarray(photo(seed=n)).save(data / f"{n}.png")
    out = tmp_path / "filtered.safetensors"
    args = ["--model", str(model_file), "--data", str(data), "--out", str(out), "--name", "filtered"]
    assert main(["fit-postfilter", *args, "--steps", "30", "--channels", "4", "--crop", "32", "--per-image", "2"]) == 0
    fitted = model_from_bytes(out.read_bytes())
    gains = fitted.postfilter.gain
    assert len(gains) == fitted.num_qualities and bool(((gains >= 0) & (gains <= 4)).all())
    codec, image = Codec(fitted, tile_size=64, overlap=8), photo(seed=0)
    data = codec.compress(image, 2)  # quality 2's gain was fitted on image 0 alone (qualities 1, 2; image 1: 3, 1)
    filtered = np.asarray(codec.decompress(data)).astype(float)
    fitted.postfilter.gain[1] = 0.0
    plain = np.asarray(codec.decompress(data)).astype(float)
    assert ((filtered - image) ** 2).mean() <= ((plain - image) ** 2).mean()
