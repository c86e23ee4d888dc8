"""Smoke test of the whole model pipeline: train a tiny VQ-VAE-2, resume, export, code an image."""

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from aecodec.cli import main
from aecodec.codec.api import Codec
from aecodec.models.model_files import load_model_file
from aecodec.training.data import downscaled
from aecodec.training.train import load_matching_modules

TINY = (
    "--channels 16 --latent-dim 8 --num-codes 16 --top-stages 1 --bottom-stages 2 --res-blocks 1 "
    "--prior-embed 4 --prior-hidden 8 --batch 2 --crop 64 --threads 1"
).split()


def random_images(folder: Path, count: int, shape: tuple[int, int], seed: int) -> Path:
    """``folder`` filled with ``count`` random RGB PNGs of (height, width) ``shape``."""
    folder.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def test_train_resume_export_and_code(tmp_path: Path) -> None:
    data = random_images(tmp_path / "images", 4, (80, 96), seed=0)
    run = tmp_path / "run"
    common = ["train", "--data", str(data), "--out", str(run), *TINY, "--val-every", "2", "--checkpoint-every", "2"]
    assert main([*common, "--steps", "2"]) == 0
    assert main([*common, "--steps", "4", "--resume"]) == 0
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4]
    assert all(np.isfinite(q["psnr"]) and q["bpp"] > 0 for r in log for q in r["val"].values())

    model_file, manifest = tmp_path / "tiny.safetensors", tmp_path / "manifest.json"
    export = ["export", str(run / "checkpoint.pt"), str(model_file), "--name", "tiny", "--calibration", str(data)]
    assert main([*export, "--manifest", str(manifest), "--default", "--evaluate", str(data)]) == 0
    entry = json.loads(manifest.read_text())["models"]["tiny"]
    assert entry["steps"] == 4 and entry["hash"] == load_model_file(model_file).digest.hex()

    codec = Codec(str(model_file))
    measured = entry["evaluation"]
    assert measured["dataset"] == "images" and measured["images"] == 4 and measured["quality"] == codec.qualities
    sizes = [len(codec.compress(Image.open(f), 1)) for f in sorted(data.glob("*.png"))]
    assert measured["bpp"][0] == round(8 * sum(sizes) / len(sizes) / (80 * 96), 4)
    assert all(np.isfinite(measured["psnr"]))
    # `aecodec evaluate` measures a model file alike and adds to its manifest entry, keeping the rest.
    entry["evaluation"] = {}
    manifest.write_text(json.dumps({"default": "tiny", "models": {"tiny": entry}}))
    assert main(["evaluate", str(model_file), str(data), "--manifest", str(manifest)]) == 0
    assert json.loads(manifest.read_text())["models"]["tiny"] == {**entry, "evaluation": measured}
    pixels = np.random.default_rng(0).integers(0, 256, (33, 47, 3), dtype=np.uint8)
    for quality in codec.qualities:
        assert codec.decompress(codec.compress(pixels, quality)).size == (47, 33)


def test_family_member_trains_through_the_cli(tmp_path: Path) -> None:
    data = random_images(tmp_path / "images", 1, (64, 64), seed=1)
    run = tmp_path / "ae"
    options = "--steps 2 --batch 2 --crop 32 --threads 1".split()
    assert main(["train", "--model", "ae", "--data", str(data), "--out", str(run), *options]) == 0
    assert (run / "checkpoint.pt").exists()


def test_warm_start_into_a_wider_latent_reuses_the_trunk(tmp_path: Path) -> None:
    data = random_images(tmp_path / "images", 2, (160, 128), seed=2)
    narrow, wide = tmp_path / "narrow", tmp_path / "wide"
    common = ["train", "--data", str(data), *TINY, "--steps", "1", "--val-every", "1", "--checkpoint-every", "1"]
    assert main([*common, "--out", str(narrow)]) == 0
    widened = list(TINY)
    widened[widened.index("--latent-dim") + 1] = "12"
    options = "--steps 1 --val-every 1 --checkpoint-every 1 --scales 1,0.5 --lr 0".split()
    warm = ["--out", str(wide), "--init", str(narrow / "checkpoint.pt")]
    assert main(["train", "--data", str(data), *widened, *options, *warm]) == 0
    before = torch.load(narrow / "checkpoint.pt", weights_only=False)["model"]
    after = torch.load(wide / "checkpoint.pt", weights_only=False)["model"]
    # With lr 0 only the EMA codebooks move: the trunk is copied, the resized latent layers are new.
    torch.testing.assert_close(after["encode_bottom.0.weight"], before["encode_bottom.0.weight"])
    assert after["pre_bottom.weight"].shape[0] == 12 != before["pre_bottom.weight"].shape[0]
    assert bool(after["quantize_bottom.stages.0.initialized"])


def test_load_matching_modules_keeps_a_resized_module_whole() -> None:
    source = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    target = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 5))
    fresh_bias = target[1].bias.detach().clone()
    assert load_matching_modules(target, source.state_dict()) == ["1"]
    torch.testing.assert_close(target[0].weight, source[0].weight)
    torch.testing.assert_close(target[1].bias, fresh_bias)


def test_downscaled_keeps_scales_that_fit_the_crop() -> None:
    image = torch.from_numpy(np.random.default_rng(3).integers(0, 256, (3, 100, 60), dtype=np.uint8))
    sizes = [tuple(t.shape) for t in downscaled(image, (1.0, 0.5, 0.25), min_side=30)]
    assert sizes == [(3, 100, 60), (3, 50, 30)]
