"""Smoke test of the whole model pipeline: train a tiny VQ-VAE-2, resume, export, code an image."""

import json
from pathlib import Path

import numpy as np
from PIL import Image

from aecodec.codec.api import Codec
from aecodec.codec.cli import main
from aecodec.models.registry import load_model_file

TINY = ["--channels", "16", "--latent-dim", "8", "--num-codes", "16", "--top-stages", "1",
        "--bottom-stages", "2", "--res-blocks", "1", "--prior-embed", "4", "--prior-hidden", "8",
        "--batch", "2", "--crop", "64", "--threads", "1"]


def test_train_resume_export_and_code(tmp_path: Path) -> None:
    data = tmp_path / "images"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (80, 96, 3), dtype=np.uint8)).save(data / f"{i}.png")
    run = tmp_path / "run"
    common = ["train", "--data", str(data), "--out", str(run), *TINY, "--val-every", "2", "--checkpoint-every", "2"]
    assert main([*common, "--steps", "2"]) == 0
    assert main([*common, "--steps", "4", "--resume"]) == 0
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4]
    assert all(np.isfinite(q["psnr"]) and q["bpp"] > 0 for r in log for q in r["val"].values())

    model_file, manifest = tmp_path / "tiny.safetensors", tmp_path / "manifest.json"
    assert main(["export", str(run / "checkpoint.pt"), str(model_file), "--name", "tiny",
                 "--calibration", str(data), "--manifest", str(manifest), "--default"]) == 0
    entry = json.loads(manifest.read_text())["models"]["tiny"]
    assert entry["steps"] == 4 and entry["hash"] == load_model_file(model_file).digest.hex()

    codec = Codec(str(model_file))
    pixels = rng.integers(0, 256, (33, 47, 3), dtype=np.uint8)
    for quality in codec.qualities:
        assert codec.decompress(codec.compress(pixels, quality)).size == (47, 33)


def test_family_member_trains_through_the_cli(tmp_path: Path) -> None:
    data = tmp_path / "images"
    data.mkdir()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(data / "a.png")
    run = tmp_path / "ae"
    assert main(["train", "--model", "ae", "--data", str(data), "--out", str(run), "--steps", "2",
                 "--batch", "2", "--crop", "32", "--threads", "1"]) == 0
    assert (run / "checkpoint.pt").exists()
