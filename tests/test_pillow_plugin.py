"""The Pillow plugin, tested the way Pillow tests its own formats: open, identify, load lazily, save."""

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, UnidentifiedImageError

import aecodec
from aecodec.codec import api
from aecodec.codec.pillow_plugin import AecImageFile

DATA = Path(__file__).resolve().parent / "data"


def test_registered_format_extension_and_mime() -> None:
    assert Image.registered_extensions()[".aec"] == "AEC"
    assert Image.MIME["AEC"] == "image/x-aec"
    assert "AEC" in Image.OPEN and "AEC" in Image.SAVE


def test_open_is_lazy_and_load_decodes(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = api.Codec.decompress
    monkeypatch.setattr(api.Codec, "decompress", lambda self, data: calls.append(1) or real(self, data))
    with Image.open(DATA / "synthetic-48x32-v1.aec") as image:
        assert isinstance(image, AecImageFile)
        assert (image.format, image.mode, image.size) == ("AEC", "RGB", (48, 32))
        assert image.get_format_mimetype() == "image/x-aec"
        assert calls == []
        image.load()
        assert calls == [1] and image.getpixel((0, 0)) == aecodec.decompress(DATA / "synthetic-48x32-v1.aec").getpixel(
            (0, 0)
        )
        image.load()
        assert calls == [1, 1]  # the decompress above; load() decodes once


def test_identity_check_on_magic_bytes() -> None:
    with pytest.raises(UnidentifiedImageError):
        Image.open(io.BytesIO(b"AEB\x1a" + bytes(60)))
    assert Image.open(io.BytesIO((DATA / "synthetic-48x32-v1.aec").read_bytes())).format == "AEC"


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "LA"])
def test_save_and_reopen(mode: str, tmp_path: Path) -> None:
    pixels = np.random.default_rng(2).integers(0, 256, (5, 6, len(mode)), dtype=np.uint8)
    image = Image.fromarray(pixels.squeeze(), mode)
    path = tmp_path / "y.aec"
    image.save(path, quality=1, effort=api.DEFAULT_EFFORT)  # the extension picks the format
    with Image.open(path) as reopened:
        assert (reopened.mode, reopened.size) == (mode, (6, 5))
        assert reopened.tobytes() == image.tobytes()  # tiny images are stored exactly
    with pytest.raises(ValueError, match=r"quality must be (an integer )?in 1"):
        image.save(tmp_path / "z.aec", quality=80)
    with pytest.raises(ValueError, match="effort"):
        image.save(tmp_path / "z.aec", effort=99)


def test_metadata_in_info_after_open(tmp_path: Path) -> None:
    image = Image.new("RGB", (4, 4))
    image.info["xmp"] = b"<x:xmpmeta>hello</x:xmpmeta>"
    image.save(tmp_path / "m.aec")
    assert Image.open(tmp_path / "m.aec").info["xmp"] == b"<x:xmpmeta>hello</x:xmpmeta>"
