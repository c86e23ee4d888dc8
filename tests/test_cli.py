"""The aecodec command: round trips, stdio, --force, one-line errors and exit codes."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aecodec.cli import main

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def image_file(tmp_path: Path) -> Path:
    path = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (37, 45, 3), dtype=np.uint8)).save(path)
    return path


def test_compress_info_decompress(image_file: Path, model_file: Path, tmp_path: Path, capsys) -> None:
    aec, png = tmp_path / "out.aec", tmp_path / "out.png"
    assert main(["compress", str(image_file), str(aec), "-q", "2", "--model", str(model_file)]) == 0
    assert main(["info", str(aec)]) == 0
    info = capsys.readouterr().out
    assert "45x37" in info and "quality: 2" in info and f"bpp: {8 * aec.stat().st_size / (45 * 37):.4f}" in info
    assert "base: full resolution" in info
    assert main(["decompress", str(aec), str(png), "--model", str(model_file)]) == 0
    assert Image.open(png).size == (45, 37)


def test_existing_output_needs_force(image_file: Path, model_file: Path, tmp_path: Path, capsys) -> None:
    aec = tmp_path / "out.aec"
    aec.write_bytes(b"keep me")
    assert main(["compress", str(image_file), str(aec), "--model", str(model_file), "-q", "1"]) == 2
    assert "exists" in capsys.readouterr().err
    assert aec.read_bytes() == b"keep me"
    assert main(["compress", str(image_file), str(aec), "--model", str(model_file), "-q", "1", "--force"]) == 0
    assert aec.read_bytes()[:4] == b"AEC\x1a"


def cli(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "aecodec", *args], input=stdin, capture_output=True, cwd=ROOT, check=False
    )


def test_stdin_stdout_pipeline(image_file: Path, model_file: Path) -> None:
    compressed = cli("compress", "-", "-", "-q", "1", "--model", str(model_file), stdin=image_file.read_bytes())
    assert compressed.returncode == 0, compressed.stderr
    decompressed = cli("decompress", "-", "-", "--model", str(model_file), stdin=compressed.stdout)
    assert decompressed.returncode == 0, decompressed.stderr
    assert decompressed.stdout[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("payload", [b"", b"AEC\x1a", b"GIF89a" + b"\0" * 100, bytes(range(256)) * 4])
def test_bad_files_give_one_line_and_exit_2(payload: bytes, tmp_path: Path) -> None:
    bad, out = tmp_path / "bad.aec", tmp_path / "out.png"
    bad.write_bytes(payload)
    for args in (("decompress", str(bad), str(out)), ("info", str(bad))):
        result = cli(*args)
        assert result.returncode == 2
        lines = result.stderr.decode().strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("aecodec: error:") and "Traceback" not in lines[0]
    assert not out.exists()


def test_missing_input_and_bad_image(tmp_path: Path, model_file: Path) -> None:
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    for source in (tmp_path / "missing.png", junk, tmp_path):
        result = cli("compress", str(source), str(tmp_path / "o.aec"), "--model", str(model_file))
        assert result.returncode == 2 and len(result.stderr.decode().strip().splitlines()) == 1
    assert not (tmp_path / "o.aec").exists()


def test_help_everywhere() -> None:
    for args in ([], ["compress"], ["decompress"], ["info"]):
        result = cli(*args, "--help")
        assert result.returncode == 0 and b"usage" in result.stdout.lower()
