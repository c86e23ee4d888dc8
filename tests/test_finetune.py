"""Decoder fine-tunes: the synthesis changes, the bits do not; the resize decoder round-trips a model file."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load, save
from test_training import TINY, random_images

from aecodec.cli import main
from aecodec.errors import ModelError
from aecodec.models import model_files
from aecodec.models.model_files import load_model_file, model_from_bytes
from aecodec.models.vqvae2 import VQVAE2Config


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[Path, Path]:
    """(image folder, checkpoint) of a tiny VQ-VAE-2 trained for 2 steps."""
    root = tmp_path_factory.mktemp("finetune")
    data = random_images(root / "images", 3, (72, 80), seed=2)
    assert main(["train", "--data", str(data), "--out", str(root / "run"), *TINY, "--steps", "2"]) == 0
    return data, root / "run" / "checkpoint.pt"


def analysis_and_prior(state: dict) -> dict[str, torch.Tensor]:
    """Every tensor that decides the bits: all but the synthesis, plus the prior."""
    weights = {k: v for k, v in state["model"].items() if not k.startswith(("decoder.", "upsample_top."))}
    return {**weights, **{f"prior.{k}": v for k, v in state["prior"].items()}}


@pytest.mark.parametrize("objective", ["mse", "gan"])
def test_finetune_changes_only_the_synthesis(objective: str, tiny_run: tuple[Path, Path], tmp_path: Path) -> None:
    data, source = tiny_run
    extra = ["--upsample", "resize", "--adversarial-start", "1"] if objective == "gan" else []
    finetune = ["finetune", "--from", str(source), "--data", str(data), "--out", str(tmp_path)]
    options = ["--objective", objective, *"--steps 2 --batch 2 --crop 64 --val-every 2".split(), *extra]
    assert main([*finetune, *options]) == 0
    before = torch.load(source, weights_only=False)
    after = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    frozen_before, frozen_after = analysis_and_prior(before), analysis_and_prior(after)
    assert frozen_before.keys() == frozen_after.keys()
    assert all(torch.equal(frozen_before[k], frozen_after[k]) for k in frozen_before)
    assert not torch.equal(before["model"]["decoder.0.weight"], after["model"]["decoder.0.weight"])
    record = json.loads((tmp_path / "log.jsonl").read_text().splitlines()[-1])
    assert record["step"] == 2 and all(0 < q["ms_ssim"] <= 1 for q in record["val"].values())
    if objective == "gan":
        assert after["config"]["model"]["upsample"] == "resize" and record["gan_weight"] >= 0


def test_resize_decoder_exports_and_codes_the_same_indices(tiny_run: tuple[Path, Path], tmp_path: Path) -> None:
    data, source = tiny_run
    finetune = ["finetune", "--from", str(source), "--data", str(data), "--out", str(tmp_path / "ft")]
    assert main([*finetune, *"--upsample resize --steps 1 --batch 2 --crop 64".split()]) == 0
    files = []
    for name, checkpoint in (("base", source), ("resized", tmp_path / "ft" / "checkpoint.pt")):
        files.append(tmp_path / f"{name}.safetensors")
        export = ["export", str(checkpoint), str(files[-1]), "--name", name, "--calibration", str(data)]
        assert main([*export, "--manifest", str(tmp_path / "manifest.json")]) == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())["models"]
    assert "finetune" not in manifest["base"] and manifest["resized"]["finetune"] == f"mse from {source}"
    base, resized = (load_model_file(f) for f in files)
    assert resized.network.config.upsample == "resize"
    image = torch.rand(1, 3, 64, 48)
    for quality in (1, base.num_qualities):
        top_and_bottom = [[i for level in m.network.encode(image, quality) for i in level] for m in (base, resized)]
        assert all(torch.equal(a, b) for a, b in zip(*top_and_bottom, strict=True))


def test_model_file_without_upsample_is_a_transposed_decoder(model_bytes: bytes) -> None:
    meta = model_files._metadata(model_bytes)
    config = json.loads(meta["config"])
    del config["upsample"]
    old = model_from_bytes(save(load(model_bytes), metadata={**meta, "config": json.dumps(config)}))
    assert old.network.config.upsample == "transposed"
    config["upsample"] = "pixelshuffle"
    with pytest.raises(ModelError, match="malformed"):
        model_from_bytes(save(load(model_bytes), metadata={**meta, "config": json.dumps(config)}))


def test_unknown_upsampler_is_refused() -> None:
    with pytest.raises(ValueError, match="upsample"):
        VQVAE2Config(upsample="bilinear")
