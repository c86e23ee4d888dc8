"""Encoder effort: every effort is validated, decodes with the one decoder, and never loses in D + lambda R."""

import itertools
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from aecodec.bench.baselines import get_codec
from aecodec.cli import main
from aecodec.codec.api import Codec
from aecodec.codec.effort import EFFORTS, effort_plan, encode_tile, rd_cost
from aecodec.codec.options import DEFAULT_EFFORT
from aecodec.codec.tiling import to_tensor
from aecodec.errors import InputError
from aecodec.models.model_files import CodecModel


def image(seed: int = 0, size: tuple[int, int] = (96, 80)) -> np.ndarray:
    """A smooth random image (the tiny model's analysis is not trained, any content serves)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (size[0] // 8, size[1] // 8, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((size[1], size[0]), Image.Resampling.BILINEAR))


def test_efforts_are_validated_with_their_range(codec: Codec) -> None:
    assert codec.efforts == tuple(range(1, len(EFFORTS) + 1)) and codec.efforts[0] == 1
    for bad in (0, len(EFFORTS) + 1, 1.5, True, "2"):
        with pytest.raises(InputError, match=rf"effort must be an integer in 1\.\.{len(EFFORTS)}"):
            codec.compress(image(), 2, effort=bad)


def test_every_effort_decodes_with_the_same_decoder(codec: Codec, one_thread) -> None:
    pixels = image()
    plain = codec.compress(pixels, 3)
    assert codec.compress(pixels, 3, effort=DEFAULT_EFFORT) == plain
    for effort in codec.efforts:
        data = codec.compress(pixels, 3, effort=effort)
        assert np.asarray(codec.decompress(data)).shape == pixels.shape


def test_higher_effort_never_costs_more(model: CodecModel, one_thread) -> None:
    x = to_tensor(image(1, (64, 64)))
    for quality in (1, 3):
        costs = [
            rd_cost(
                model.network, model.prior, x, encode_tile(model.network, model.prior, x, quality, "psnr", e), quality
            )
            for e in EFFORTS
        ]
        assert all(later <= earlier for earlier, later in itertools.pairwise(costs)), costs
    assert effort_plan(len(EFFORTS)).refine_steps > effort_plan(1).refine_steps == 0


def test_cli_compress_takes_an_effort(model_file, tmp_path) -> None:
    Image.fromarray(image()).save(tmp_path / "in.png")
    command = [sys.executable, "-m", "aecodec", "compress", str(tmp_path / "in.png"), "--model", str(model_file)]
    done = subprocess.run([*command, str(tmp_path / "x.aec"), "--effort", "2"], capture_output=True, check=False)
    assert done.returncode == 0, done.stderr
    bad = subprocess.run(
        [*command, str(tmp_path / "y.aec"), "--effort", "9"], capture_output=True, text=True, check=False
    )
    assert bad.returncode == 2 and f"effort must be an integer in 1..{len(EFFORTS)}" in bad.stderr
    assert not (tmp_path / "y.aec").exists()


@pytest.mark.parametrize(
    ("name", "tune", "effort"),
    [("aec@effort=1", "psnr", 1), ("aec@ms-ssim", "ms-ssim", 2), ("aec:vqvae2-base@ms-ssim@effort=3", "ms-ssim", 3)],
)
def test_bench_names_carry_the_effort(name: str, tune: str, effort: int) -> None:
    codec = get_codec(name)
    assert (codec.name, codec.tune, codec.effort) == (name, tune, effort)


def test_bench_refuses_a_bad_effort() -> None:
    for name in ("aec@effort=9", "aec@effort=x"):
        with pytest.raises(ValueError, match="effort"):
            get_codec(name)


def test_effort_runs_under_no_grad_and_leaves_the_weights(model: CodecModel, one_thread) -> None:
    before = {k: v.clone() for k, v in model.network.state_dict().items()}
    with torch.no_grad():
        encode_tile(model.network, model.prior, to_tensor(image(2, (48, 48))), 2, "psnr", EFFORTS[-1])
    assert all(p.grad is None for p in model.network.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.network.state_dict().items())


def test_probe_reports_bits_per_index_and_the_unquantized_ceiling(model_file, tmp_path, capsys) -> None:
    for seed in (0, 1):
        Image.fromarray(image(seed, (48, 64))).save(tmp_path / f"{seed}.png")
    assert main(["evaluate", str(model_file), str(tmp_path), "--probe"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 2 and report["quality"] == 3
    assert 0 < report["integer_bits_per_index"] < 8 and report["psnr_unquantized"] > 0
