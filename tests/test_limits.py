"""Limits and untrusted inputs: pixel caps, empty files, directories, unreadable paths, a full disk,
and model files that are not what they claim. Every failure is one line and exit code 2 (1 for the OS)."""

import errno
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path
from typing import Self

import numpy as np
import pytest
import torch
from PIL import Image, PngImagePlugin
from safetensors.torch import load, save

from aecodec.bitstream.format import unpack
from aecodec.cli import main
from aecodec.codec import api, files
from aecodec.codec.api import Codec
from aecodec.codec.images import read_image_stream
from aecodec.errors import FormatError, InputError, ModelError
from aecodec.models import manifest, model_files
from aecodec.models.model_files import CodecModel, load_model_file, model_from_bytes
from aecodec.models.vqvae2 import VQVAE2Config
from aecodec.testing import random_model_bytes

OTHER_CONFIG = VQVAE2Config(channels=16, latent_dim=8, num_codes=64, top_stages=2, bottom_stages=3, res_blocks=1)


@pytest.fixture()
def image_file(tmp_path: Path) -> Path:
    path = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture()
def aec_file(image_file: Path, model_file: Path, tmp_path: Path) -> Path:
    path = tmp_path / "in.aec"
    assert main(["compress", str(image_file), str(path), "-q", "1", "--model", str(model_file)]) == 0
    return path


def one_line_error(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str]:
    """Run the CLI in-process; returns its exit code and its only stderr line."""
    code = main(list(args))
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aecodec: error: "), lines
    return code, lines[0]


def test_pixel_limit_in_the_api(codec: Codec, model: CodecModel) -> None:
    pixels = np.zeros((30, 40, 3), dtype=np.uint8)
    small = Codec(model, tile_size=64, overlap=8, max_pixels=30 * 40 - 1)
    with pytest.raises(InputError, match="over the limit of 1199"):
        small.compress(pixels, 1)
    data = codec.compress(pixels, 1)
    with pytest.raises(FormatError, match="exceeds the limit of 1199"):
        small.decompress(data)
    assert Codec(model, tile_size=64, overlap=8, max_pixels=30 * 40).decompress(data).size == (40, 30)


def test_pixel_limit_in_the_cli(image_file: Path, aec_file: Path, model_file: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out.aec"
    code, line = one_line_error(
        capsys, "compress", str(image_file), str(out), "-q", "1", "--model", str(model_file), "--max-pixels", "100"
    )
    assert code == 2 and "limit of 100" in line and not out.exists()
    for args in (
        ("info", str(aec_file)),
        ("decompress", str(aec_file), str(tmp_path / "o.png"), "--model", str(model_file)),
    ):
        code, line = one_line_error(capsys, *args, "--max-pixels", "1199")
        assert code == 2 and "exceeds the limit of 1199" in line
    assert main(["info", str(aec_file), "--max-pixels", "1200"]) == 0


def test_empty_files(codec: Codec, model_file: Path, tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(InputError):
        codec.compress(empty, 1)
    with pytest.raises(FormatError):
        codec.decompress(b"")
    code, line = one_line_error(
        capsys, "compress", str(empty), str(tmp_path / "o.aec"), "-q", "1", "--model", str(model_file)
    )
    assert code == 2 and "empty.png" in line
    code, _ = one_line_error(capsys, "info", str(empty))
    assert code == 2


def test_directories(aec_file: Path, image_file: Path, model_file: Path, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    for args in (
        ("info", str(folder)),
        ("decompress", str(folder), str(tmp_path / "o.png")),
        ("decompress", str(aec_file), str(folder), "--force", "--model", str(model_file)),
        ("compress", str(image_file), str(folder), "--force", "-q", "1", "--model", str(model_file)),
    ):
        code, line = one_line_error(capsys, *args)
        assert code == 2 and "directory" in line
    assert list(folder.iterdir()) == []


@pytest.mark.skipif(
    os.geteuid() == 0, reason="root reads files whatever their mode: permissions cannot be tested as root"
)
def test_unreadable_input(aec_file: Path, tmp_path: Path, capsys) -> None:
    aec_file.chmod(0)
    try:
        code, line = one_line_error(capsys, "info", str(aec_file))
    finally:
        aec_file.chmod(0o644)
    assert code == 2 and "permission denied" in line


@pytest.fixture()
def full_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files opened by write_atomic take a few bytes, then fail with ENOSPC like a full disk (request it last)."""
    real_fdopen = os.fdopen

    class FullDiskFile:
        def __init__(self, fd: int, mode: str) -> None:
            self.file = real_fdopen(fd, mode)

        def write(self, data: bytes) -> int:
            self.file.write(data[:10])
            self.file.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __enter__(self) -> Self:
            return self

        def __exit__(self, *exc_info: object) -> None:
            self.file.close()

    monkeypatch.setattr(files.os, "fdopen", FullDiskFile)


def test_full_disk_leaves_no_partial_file(
    aec_file: Path, image_file: Path, model_file: Path, tmp_path: Path, capsys, full_disk: None
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    old = out / "old.png"
    old.write_bytes(b"previous output")
    for args in (
        ("compress", str(image_file), str(out / "new.aec"), "-q", "1", "--model", str(model_file)),
        ("decompress", str(aec_file), str(old), "--force", "--model", str(model_file)),
    ):
        code, line = one_line_error(capsys, *args)
        assert code == 1 and "No space left on device" in line
    assert [p.name for p in out.iterdir()] == ["old.png"] and old.read_bytes() == b"previous output"


class Evil:
    """Unpickling this would create a marker directory: proof that a model file was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return os.mkdir, (str(self.marker),)


def mismatched_shapes(model_bytes: bytes) -> bytes:
    """Weights of another network config under this model's metadata (config, name, format)."""
    other = load(random_model_bytes("random", OTHER_CONFIG))
    return save(other, metadata=model_files._metadata(model_bytes))


@pytest.mark.parametrize(
    "kind", ["text", "png", "pickle", "truncated", "header-only", "wrong-shapes", "empty", "missing"]
)
def test_bad_model_files(kind: str, model_bytes: bytes, image_file: Path, tmp_path: Path, capsys) -> None:
    marker = tmp_path / "unpickled"
    path = tmp_path / "model.safetensors"
    content = {
        "text": b"this is not a model\n",
        "png": image_file.read_bytes(),
        "pickle": pickle.dumps(Evil(marker)),
        "truncated": model_bytes[: len(model_bytes) // 2],
        "header-only": model_bytes[:200],
        "wrong-shapes": mismatched_shapes(model_bytes),
        "empty": b"",
    }.get(kind)
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelError):
        load_model_file(path)
    code, line = one_line_error(capsys, "compress", str(image_file), str(tmp_path / "o.aec"), "--model", str(path))
    assert code == 2 and str(path) in line
    assert not marker.exists() and not (tmp_path / "o.aec").exists()


def test_bad_prior_shape_is_a_model_error(model_bytes: bytes, codec: Codec) -> None:
    tensors = load(model_bytes)
    tensors["prior.top.conv2.weight"] = tensors["prior.top.conv2.weight"][:, :-1].contiguous()
    with pytest.raises(ModelError):
        model = model_from_bytes(save(tensors, metadata=model_files._metadata(model_bytes)), "bad prior")
        Codec(model, tile_size=64, overlap=8).compress(np.zeros((20, 20, 3), dtype=np.uint8), 1)


def test_file_from_another_model(codec: Codec, aec_file: Path, tmp_path: Path, capsys) -> None:
    other_file = tmp_path / "other.safetensors"
    other_file.write_bytes(random_model_bytes("other", seed=1))
    other = Codec(load_model_file(other_file), tile_size=64, overlap=8)
    data = aec_file.read_bytes()
    with pytest.raises(FormatError, match=f"coded with model \\({codec.model.digest.hex()}\\).*'other'"):
        other.decompress(data)
    code, line = one_line_error(
        capsys, "decompress", str(aec_file), str(tmp_path / "o.png"), "--model", str(other_file)
    )
    assert code == 2 and codec.model.digest.hex() in line and not (tmp_path / "o.png").exists()


def test_file_needing_an_uninstalled_model(codec: Codec, aec_file: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """A version 3 file does not name its model: the error gives the hash it needs."""
    code, line = one_line_error(capsys, "decompress", str(aec_file), str(tmp_path / "o.png"))
    assert code == 2 and f"needs model with hash {codec.model.digest.hex()}, which is not installed" in line
    monkeypatch.setattr(manifest, "MANIFEST", tmp_path / "no-manifest.json")
    code, line = one_line_error(capsys, "decompress", str(aec_file), str(tmp_path / "o.png"))
    assert code == 2 and codec.model.digest.hex() in line


def config_bomb(**config: object) -> bytes:
    """A model file with no tensors at all and the given network config (the issue's was 232 bytes)."""
    full = {**OTHER_CONFIG.to_dict(), **config}
    return save({}, metadata={"format": model_files.MODEL_FORMAT, "name": "bomb", "config": json.dumps(full)})


@pytest.mark.parametrize(
    "config",
    [
        {"channels": 4096},
        {"channels": 1024, "res_blocks": 64},
        {"num_codes": 65536},
        {"bottom_stages": 255},
        {"channels": 3},
        {"latent_dim": True},
    ],
)
def test_model_config_bomb_is_refused_before_building(config: dict) -> None:
    with pytest.raises(ModelError, match="model config"):
        model_from_bytes(config_bomb(**config))


def test_weights_are_checked_against_the_config_before_building(monkeypatch: pytest.MonkeyPatch) -> None:
    """The largest config allowed, with no tensors: refused from shapes alone, no network built."""
    real = model_files.VQVAE2

    def meta_only(config: VQVAE2Config) -> torch.nn.Module:
        assert torch.get_default_device().type == "meta", "a network was built before its weights were checked"
        return real(config)

    monkeypatch.setattr(model_files, "VQVAE2", meta_only)
    with pytest.raises(ModelError, match="weights do not match"):
        model_from_bytes(config_bomb(**model_files.CONFIG_LIMITS))


@pytest.mark.parametrize("name", [None, "", "..", ".hidden", "../../etc", "a/b", "Name", "x" * 17, "caf\u00e9"])
def test_model_names_are_validated(name: object, model_bytes: bytes, image_file: Path, tmp_path: Path, capsys) -> None:
    meta = {k: v for k, v in model_files._metadata(model_bytes).items() if k != "name"}
    path = tmp_path / "model.safetensors"
    path.write_bytes(save(load(model_bytes), metadata=meta if name is None else {**meta, "name": str(name)}))
    with pytest.raises(ModelError, match="model name"):
        load_model_file(path)
    code, line = one_line_error(capsys, "compress", str(image_file), str(tmp_path / "o.aec"), "--model", str(path))
    assert code == 2 and "model name" in line


def test_model_file_reads_are_bounded(tmp_path: Path) -> None:
    """``--model /dev/zero`` read forever: a model file is read with a limit, and zeros are no model."""
    with pytest.raises(ModelError):
        load_model_file("/dev/zero")
    big = tmp_path / "big.safetensors"
    with open(big, "wb") as f:
        f.truncate(model_files.MAX_MODEL_BYTES + 1)
    with pytest.raises(ModelError, match="larger than"):
        load_model_file(big)


def test_a_file_created_during_the_write_is_not_clobbered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Check-then-replace let two concurrent writers both succeed: without --force, publishing fails if taken."""
    target = tmp_path / "out.png"
    real_fsync = os.fsync

    def racing_fsync(fd: int) -> None:
        real_fsync(fd)
        target.write_bytes(b"another process")

    monkeypatch.setattr(files.os, "fsync", racing_fsync)
    with pytest.raises(InputError, match="exists"):
        files.write_atomic(str(target), b"ours", force=False)
    assert target.read_bytes() == b"another process" and [p.name for p in tmp_path.iterdir()] == ["out.png"]
    files.write_atomic(str(target), b"ours", force=True)
    assert target.read_bytes() == b"ours" and [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_temporary_files_of_killed_writers_are_cleaned_up(tmp_path: Path) -> None:
    target = tmp_path / "out.aec"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    stale = tmp_path / f".out.aec.aecodec-{dead.stdout.strip()}-x1y2.tmp"
    running = tmp_path / f".out.aec.aecodec-{os.getpid()}-z3.tmp"  # a live writer's: left alone
    other = tmp_path / ".other.aec.aecodec-1-z3.tmp"
    for path in (stale, running, other):
        path.write_bytes(b"partial")
    files.write_atomic(str(target), b"data", force=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([other.name, target.name, running.name])


def png_with_short_data(width: int, height: int, rows: int) -> bytes:
    """An RGB PNG whose IDAT zlib stream ends cleanly after ``rows`` rows: Pillow zero-filled the rest."""
    raw = b"".join(b"\0" + bytes([128]) * (3 * width) for _ in range(rows))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    "content",
    [
        b"DDS |\0\0\0\x07\x10\x08\0" + bytes(60) + b" \0\0\0\x04\0\0\0DX10" + bytes(100),  # NotImplementedError
        b"P6\nx 4\n255\n",  # ValueError
        png_with_short_data(200, 100, 1),  # truncated data, was zero-filled
    ],
)
def test_unreadable_images_are_input_errors(content: bytes, codec: Codec, model_file: Path, tmp_path: Path, capsys):
    path = tmp_path / "bad.img"
    path.write_bytes(content)
    for source in (path, content):
        with pytest.raises(InputError):
            codec.compress(source, 1)
    code, _ = one_line_error(capsys, "compress", str(path), str(tmp_path / "o.aec"), "--model", str(model_file))
    assert code == 2


def test_complete_pngs_still_load(codec: Codec) -> None:
    for interlace in (False, True):
        buffer = io.BytesIO()
        Image.fromarray(np.random.default_rng(3).integers(0, 256, (37, 53, 3), dtype=np.uint8)).save(
            buffer, "PNG", interlace=interlace
        )
        assert codec.compress(buffer.getvalue(), 1)


@pytest.mark.parametrize("mode", ["RGBa", "La"])
def test_premultiplied_alpha_modes(mode: str, codec: Codec) -> None:
    assert codec.compress(Image.new(mode, (20, 10), (90,) * (len(mode) - 1) + (255,)), 1)


def test_nan_in_float_images_is_refused_without_warnings(codec: Codec) -> None:
    image = Image.fromarray(np.array([[np.nan, 0.5]] * 4, dtype=np.float32), "F")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(InputError, match="NaN"):
            codec.compress(image, 1)


def test_cli_success_and_errors_print_nothing_more(image_file: Path, model_file: Path, tmp_path: Path, capsys) -> None:
    """Warnings (decompression bomb, NaN casts, torch) made stderr longer than one line."""
    assert main(["compress", str(image_file), str(tmp_path / "o.aec"), "-q", "1", "--model", str(model_file)]) == 0
    assert capsys.readouterr().err == ""
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_with_short_data(10000, 9000, 1))  # 90 M pixels: a DecompressionBombWarning
    code, line = one_line_error(capsys, "compress", str(bomb), str(tmp_path / "b.aec"), "--model", str(model_file))
    assert code == 2 and "truncated PNG" in line


def test_stdin_reads_are_bounded_by_the_declared_image(monkeypatch: pytest.MonkeyPatch) -> None:
    """``compress - < /dev/zero`` buffered 2 GiB: bytes no format knows are refused after 64 KiB."""
    with open("/dev/zero", "rb") as zeros, pytest.raises(InputError, match="not a readable image"):
        read_image_stream(zeros, 1 << 27)
    small = png_with_short_data(4, 4, 4)
    assert read_image_stream(io.BytesIO(small), 100) == small
    with pytest.raises(InputError, match="more than the 1048832 bytes"):
        read_image_stream(io.BytesIO(small + bytes(1 << 21)), 100)


def test_file_objects_share_the_bounded_read_and_keep_alpha_and_metadata(codec: Codec) -> None:
    """The API's file-object path is the CLI's stdin reader: bounded, and the image keeps its chunks."""
    with open("/dev/zero", "rb") as zeros, pytest.raises(InputError, match="not a readable image"):
        codec.compress(zeros, 1)
    image = Image.fromarray(np.full((20, 30, 4), 200, dtype=np.uint8), "RGBA")
    image.putpixel((3, 4), (10, 20, 30, 0))
    buffer = io.BytesIO()
    image.save(buffer, "PNG", pnginfo=_xmp_info(b"<x:xmpmeta xmlns:x='adobe:ns:meta/'/>"))
    decoded = codec.decompress(codec.compress(io.BytesIO(buffer.getvalue()), 1))
    assert decoded.mode == "RGBA" and decoded.getpixel((3, 4))[3] == 0 and b"xmpmeta" in decoded.info["xmp"]


def _xmp_info(xmp: bytes) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", xmp.decode())
    return info


def test_huge_declared_image_is_one_line(model: CodecModel, monkeypatch: pytest.MonkeyPatch) -> None:
    """A forged 2**20 x 2**20 header with a valid first tile and a raised max_pixels wanted 3 TiB."""
    pixels = np.zeros((20, 20, 3), dtype=np.uint8)
    data = Codec(model, tile_size=64, overlap=8).compress(pixels, 1)
    big = Codec(model, tile_size=64, overlap=8, max_pixels=1 << 40)
    header = api.Header(3, 1, "random", model.digest, 1 << 20, 1 << 20, 64, 8, 1)
    file = unpack(data)
    monkeypatch.setattr(api, "unpack", lambda *_: api.AecFile(header, file.tile_crcs, file.streams))
    monkeypatch.setattr(big, "tile_indices", lambda _: Codec.tile_indices(big, file))
    with pytest.raises(InputError, match="not enough memory for a 1048576x1048576 image"):
        big.decompress(data)
