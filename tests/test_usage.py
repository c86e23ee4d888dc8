"""What users of image codecs expect from the API: metadata, orientation, tiny images, target sizes, inputs."""

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

import aecodec
from aecodec.bitstream.format import (
    CORRECTION_FIELD,
    EXIF,
    ICC_PROFILE,
    RAW_PIXELS,
    RESIDUAL,
    WIENER_FILTER,
    XMP,
    unpack,
)
from aecodec.codec.api import Codec
from aecodec.codec.images import load_source
from aecodec.errors import FormatError, InputError
from aecodec.models.manifest import shipped_model_name

DATA = Path(__file__).resolve().parent / "data"
XMP_PACKET = b'<x:xmpmeta xmlns:x="adobe:ns:meta/">aecodec</x:xmpmeta>'


def photo_with_metadata(orientation: int = 1) -> bytes:
    """A 24x16 JPEG with an sRGB profile, EXIF (camera and orientation) and XMP."""
    pixels = np.zeros((16, 24, 3), np.uint8)
    pixels[:, :12] = (220, 40, 40)  # left half red: where it ends up shows the orientation
    exif = Image.Exif()
    exif[0x010F], exif[0x0112] = "aecodec camera", orientation
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=95, exif=exif, icc_profile=icc, xmp=XMP_PACKET)
    return buffer.getvalue()


def test_metadata_is_carried_and_restored(codec: Codec) -> None:
    source = Image.open(io.BytesIO(photo_with_metadata()))
    data = codec.compress(source, 1)
    assert {tag for tag, _ in unpack(data).chunks} - {CORRECTION_FIELD, WIENER_FILTER} == {EXIF, ICC_PROFILE, XMP}
    decoded = codec.decompress(data)
    assert decoded.info["icc_profile"] == source.info["icc_profile"]
    assert decoded.info["xmp"] == XMP_PACKET
    assert decoded.getexif()[0x010F] == "aecodec camera"
    stripped = codec.compress(source, 1, strip=True)
    assert {tag for tag, _ in unpack(stripped).chunks} <= {
        CORRECTION_FIELD,
        WIENER_FILTER,
    } and "exif" not in codec.decompress(stripped).info


def test_exif_orientation_is_applied_before_coding(codec: Codec) -> None:
    photo = photo_with_metadata(orientation=6)  # displayed rotated 90 degrees clockwise
    coded = load_source(photo, 1 << 20)
    assert coded.pixels.shape == (24, 16, 3)
    assert coded.pixels[:4, :, 0].mean() > 200 and coded.pixels[-4:, :, 0].mean() < 40  # red half on top
    decoded = codec.decompress(codec.compress(photo, 1))
    assert decoded.size == (16, 24) and decoded.getexif().get(0x0112, 1) == 1


def test_oversized_or_broken_metadata_is_refused_clearly(codec: Codec) -> None:
    image = Image.new("RGB", (8, 8))
    image.info["icc_profile"] = b"not a profile"
    with pytest.raises(InputError, match=r"ICC.*strip"):
        codec.compress(image, 1)
    assert codec.compress(image, 1, strip=True)


@pytest.mark.parametrize("size", [(1, 1), (2, 2), (4, 4), (3, 1), (1, 4), (8, 8)])
def test_tiny_images_come_back_exactly(codec: Codec, size: tuple[int, int]) -> None:
    for colour, mode in (((200, 30, 60), "RGB"), (77, "L")):
        image = Image.new(mode, size, colour)
        data = codec.compress(image, 1)
        assert unpack(data).chunk(RAW_PIXELS) is not None
        assert codec.decompress(data).tobytes() == image.tobytes()


def test_target_bytes_picks_the_best_quality_that_fits(codec: Codec) -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    sizes = [len(codec.compress(pixels, q)) for q in codec.qualities]
    assert sizes == sorted(sizes)
    for target in (sizes[0], (sizes[1] + sizes[2]) // 2, sizes[-1] + 100):
        data = codec.compress(pixels, target_bytes=target)
        assert len(data) <= target and len(data) == max(s for s in sizes if s <= target)
    with pytest.raises(InputError, match=f"does not fit in {sizes[0] - 1} bytes.*needs {sizes[0]}"):
        codec.compress(pixels, target_bytes=sizes[0] - 1)
    with pytest.raises(ValueError, match="not both"):
        codec.compress(pixels, 2, target_bytes=sizes[-1])


def test_quality_and_effort_arguments(codec: Codec) -> None:
    pixels = np.zeros((8, 8, 3), np.uint8)
    assert codec.compress(pixels, 2.0) == codec.compress(pixels, 2)
    for bad in (2.5, "2", True, 0):
        with pytest.raises(ValueError, match=r"quality must be (an integer )?in 1\.\.") as error:
            codec.compress(pixels, bad)
        assert "--" not in str(error.value)
    assert aecodec.codec.api.DEFAULT_EFFORT in codec.efforts and codec.efforts == tuple(sorted(codec.efforts))
    with pytest.raises(ValueError, match="effort"):
        codec.compress(pixels, 1, effort=9)


def test_decompress_and_read_header_take_what_compress_takes(codec: Codec, tmp_path: Path) -> None:
    data = codec.compress(np.zeros((8, 8, 3), np.uint8), 1)
    path = tmp_path / "x.aec"
    path.write_bytes(data)
    expected = codec.decompress(data).tobytes()
    for source in (bytearray(data), memoryview(data), str(path), path, io.BytesIO(data), path.open("rb")):
        assert codec.decompress(source).tobytes() == expected
        assert aecodec.read_header(source if not hasattr(source, "seek") else io.BytesIO(data)).width == 8
    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, "PNG")
    assert codec.compress(io.BytesIO(png.getvalue()), 1) == codec.compress(png.getvalue(), 1)
    with pytest.raises(InputError, match="binary mode"):
        codec.decompress(io.StringIO("text"))
    with pytest.raises(InputError, match="cannot read"):
        codec.decompress(42)
    with pytest.raises(FormatError, match="not installed; give its model file") as error:
        aecodec.decompress(data)
    assert "--" not in str(error.value)


def test_unusable_device_is_one_clear_error(model) -> None:
    for device in ("cuda:99", "nonsense"):
        with pytest.raises(InputError, match="not usable") as error:
            Codec(model, device=device)
        assert "\n" not in str(error.value)


def test_residual_files_without_row_offsets_still_decode() -> None:
    """A file with a version 1 residual chunk (no row offsets), written before they existed: default model,
    quality 14, of tests/data/synthetic-48x32.png."""
    data = (DATA / "synthetic-48x32-q14-resd1.aec").read_bytes()
    assert unpack(data).chunk(RESIDUAL)[0] == 1
    decoded = np.asarray(aecodec.decompress(data), dtype=float)
    source = np.asarray(Image.open(DATA / "synthetic-48x32.png"), dtype=float)
    assert 10 * np.log10(255**2 / np.mean((decoded - source) ** 2)) > 35


@pytest.mark.parametrize(
    ("file", "model"),
    [
        ("q14-half", "vqvae2-wide-rph"),
        ("q14-rphf", "vqvae2-wide-rphf"),
        ("q17-rplf", "vqvae2-wide-rplf"),
        ("q17-rpld", "vqvae2-wide-rpld"),
        ("q17-rpl2", "vqvae2-wide-rpl2"),
        ("q17-rpl3", "vqvae2-wide-rpl3"),
        ("q17-rpl4", "vqvae2-wide-rpl4"),
        ("q17-rpl5", "vqvae2-wide-rpl5"),
        ("q17-rpl6", "vqvae2-wide-rpl6"),
        ("q17-rpl7", "vqvae2-wide-rpl7"),
    ],
)
def test_half_base_files_of_previous_defaults_still_decode(file: str, model: str) -> None:
    """Files with a half-resolution base written by nine previous default models and the current one, at their
    quality of step 38 (14, 14, 17, ...), of tests/data/synthetic-48x32.png (the first two's levels name no
    half-base quality; rpl4's residual is coded in the checkerboard order that deeper orders replaced; up to rpl6
    the base's prior codes in the checkerboard order, rpl7's in a grid's)."""
    data = (DATA / f"synthetic-48x32-{file}.aec").read_bytes()
    header = aecodec.read_header(data)
    assert header.half_base and header.model_name == model
    decoded = np.asarray(aecodec.decompress(data), dtype=float)
    source = np.asarray(Image.open(DATA / "synthetic-48x32.png"), dtype=float)
    assert 10 * np.log10(255**2 / np.mean((decoded - source) ** 2)) > 35


def test_version_3_files_decode_like_their_version_2_twin() -> None:
    """The rpl7 file above in version 3 (re-packed, the same streams and chunks): 38 bytes less, found by its
    model hash alone, the same pixels."""
    twin, data = ((DATA / f"synthetic-48x32-q17-rpl7{v}.aec").read_bytes() for v in ("", "-v3"))
    assert (data[4], len(twin) - len(data)) == (3, 38) and aecodec.read_header(data).model_name is None
    assert shipped_model_name(aecodec.read_header(data).model_hash) == "vqvae2-wide-rpl7"
    assert np.array_equal(np.asarray(aecodec.decompress(data)), np.asarray(aecodec.decompress(twin)))


def test_release_0_1_files_still_decode() -> None:
    """A version 1 file written by release 0.1 (default model, quality 3) of tests/data/synthetic-48x32.png."""
    data = (DATA / "synthetic-48x32-v1.aec").read_bytes()
    assert data[4] == 1 and aecodec.read_header(data).quality == 3
    decoded = np.asarray(aecodec.decompress(data), dtype=float)
    source = np.asarray(Image.open(DATA / "synthetic-48x32.png"), dtype=float)
    assert 10 * np.log10(255**2 / np.mean((decoded - source) ** 2)) > 35
