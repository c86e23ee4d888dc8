"""The habits of cwebp/cjxl users, through the real command: version, threads, -v, rate control, pipes."""

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

import aecodec
from aecodec.cli import commands

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str, stdout: int | None = subprocess.PIPE) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "aecodec", *args], stdout=stdout, stderr=subprocess.PIPE, cwd=ROOT, env=env, check=False
    )


@pytest.fixture()
def rgba_file(tmp_path: Path) -> Path:
    path = tmp_path / "in.png"
    pixels = np.random.default_rng(0).integers(0, 256, (40, 48, 4), dtype=np.uint8)
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta>cli</x:xmpmeta>")
    Image.fromarray(pixels, "RGBA").save(path, pnginfo=info)
    return path


def test_version() -> None:
    result = cli("--version")
    assert result.returncode == 0 and result.stdout.decode().strip() == f"aecodec {aecodec.__version__}"


def test_size_bpp_verbose_threads_and_alpha(rgba_file: Path, model_file: Path, tmp_path: Path) -> None:
    out, png = tmp_path / "o.aec", tmp_path / "o.png"
    result = cli(
        "compress",
        str(rgba_file),
        str(out),
        "--model",
        str(model_file),
        "--size",
        "3000",
        "--threads",
        "1",
        "-v",
        "--print-psnr",
    )
    assert result.returncode == 0, result.stderr
    assert out.stat().st_size <= 3000
    line = result.stderr.decode()
    assert f"{out.stat().st_size} bytes" in line and "bpp" in line and "1 threads" in line and "PSNR" in line
    assert (
        cli("compress", str(rgba_file), str(tmp_path / "b.aec"), "--model", str(model_file), "--bpp", "12").returncode
        == 0
    )
    assert (tmp_path / "b.aec").stat().st_size <= 12 * 48 * 40 / 8
    assert cli("decompress", str(out), str(png), "--model", str(model_file), "--threads", "2").returncode == 0
    decoded = Image.open(png)
    assert (
        decoded.mode == "RGBA" and decoded.getchannel("A").tobytes() == Image.open(rgba_file).getchannel("A").tobytes()
    )
    small = cli("compress", str(rgba_file), str(tmp_path / "c.aec"), "--model", str(model_file), "--size", "10")
    assert small.returncode == 2 and b"does not fit in 10 bytes" in small.stderr


def test_quality_and_size_exclude_each_other(rgba_file: Path, tmp_path: Path) -> None:
    result = cli("compress", str(rgba_file), str(tmp_path / "o.aec"), "-q", "2", "--size", "100")
    assert result.returncode == 2 and b"not allowed with" in result.stderr


def test_metadata_to_png_and_strip(rgba_file: Path, model_file: Path, tmp_path: Path) -> None:
    for extra, kept in (((), True), (("--strip",), False)):
        out, png = tmp_path / f"{kept}.aec", tmp_path / f"{kept}.png"
        assert cli("compress", str(rgba_file), str(out), "--model", str(model_file), "-q", "1", *extra).returncode == 0
        assert cli("decompress", str(out), str(png), "--model", str(model_file)).returncode == 0
        assert (Image.open(png).info.get("xmp") == b"<x:xmpmeta>cli</x:xmpmeta>") == kept


def test_output_names_and_formats(rgba_file: Path, model_file: Path, tmp_path: Path) -> None:
    odd = cli("compress", str(rgba_file), str(tmp_path / "o.png"), "--model", str(model_file), "-q", "1")
    assert odd.returncode == 0 and b"warning: " in odd.stderr and b"not a .png image" in odd.stderr
    missing = cli("compress", str(rgba_file), str(tmp_path / "nowhere" / "o.aec"), "--model", str(model_file))
    assert missing.returncode == 2 and f"output folder {tmp_path / 'nowhere'} does not exist" in missing.stderr.decode()
    webp = cli("decompress", str(tmp_path / "o.png"), str(tmp_path / "d.webp"), "--model", str(model_file))
    assert webp.returncode == 0 and webp.stderr == b""
    decoded = Image.open(io.BytesIO(cli("decompress", str(tmp_path / "o.png"), "-", "--model", str(model_file)).stdout))
    assert Image.open(tmp_path / "d.webp").tobytes() == decoded.tobytes()  # lossless WebP
    rgb = tmp_path / "rgb.aec"
    assert (
        cli("compress", str(ROOT / "tests/data/synthetic-48x32.png"), str(rgb), "--model", str(model_file)).returncode
        == 0
    )
    jpeg = cli("decompress", str(rgb), str(tmp_path / "d.jpg"), "--model", str(model_file))
    assert jpeg.returncode == 0 and b"JPEG is lossy" in jpeg.stderr and Image.open(tmp_path / "d.jpg").format == "JPEG"


def test_device_error_is_one_line(rgba_file: Path, model_file: Path, tmp_path: Path) -> None:
    result = cli("compress", str(rgba_file), str(tmp_path / "o.aec"), "--model", str(model_file), "--device", "cuda:99")
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "cuda:99" in lines[0] and "not usable" in lines[0]


def test_broken_pipe_is_quiet() -> None:
    read, write = os.pipe()
    os.close(read)  # the reader has gone before anything is written, as with `| head -1` finishing first
    result = cli("info", str(ROOT / "tests/data/synthetic-48x32-v1.aec"), stdout=write)
    os.close(write)
    assert result.returncode == commands.BROKEN_PIPE_EXIT and result.stderr == b""


def test_progress_line_for_long_encodes(monkeypatch, rgba_file: Path, model_file: Path, tmp_path: Path, capsys) -> None:
    monkeypatch.setattr(commands, "PROGRESS_AFTER_S", 0.0)
    assert (
        commands.main(
            [
                "compress",
                str(rgba_file),
                str(tmp_path / "o.aec"),
                "--model",
                str(model_file),
                "-q",
                "1",
                "-v",
                "--threads",
                "1",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "\raecodec: tile 1/1" in err and "s left" in err


def test_default_threads_leave_busy_cores_alone(monkeypatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    monkeypatch.setattr(os, "getloadavg", lambda: (3.2, 0.0, 0.0))
    assert commands.default_threads() == 5
    monkeypatch.setattr(os, "getloadavg", lambda: (20.0, 0.0, 0.0))
    assert commands.default_threads() == 1
