"""The training and measuring commands as a user meets them: runs kept safe, defaults in the help, tables, chunks."""

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin
from test_cli_habits import ROOT, cli
from test_training import TINY, random_images

from aecodec.cli import main
from aecodec.family.trainer import add_family_arguments
from aecodec.training.finetune import add_finetune_arguments
from aecodec.training.loop import trainer_parser
from aecodec.training.train import add_train_arguments


def test_train_refuses_an_existing_run_says_where_it_saved_and_starts_over_with_force(tmp_path: Path, capsys) -> None:
    data, run = random_images(tmp_path / "images", 2, (64, 64), seed=0), tmp_path / "run"
    train = ["train", "--data", str(data), "--out", str(run), *TINY, "--steps", "1", "--val-every", "1"]
    assert main(train) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == f"saved {run / 'checkpoint.pt'}"
    assert "psnr" in lines[0] and not any(line.startswith("{") for line in lines)  # text, not JSON
    assert any(line.split()[:1] == ["q1"] for line in lines)  # the validation table has a row per quality
    saved = (run / "checkpoint.pt").read_bytes()

    refused = cli(*train)
    message = refused.stderr.decode().strip()
    assert refused.returncode == 2 and len(message.splitlines()) == 1
    assert str(run) in message and "--resume" in message and "--force" in message
    assert (run / "checkpoint.pt").read_bytes() == saved

    assert main([*train, "--force", "--json"]) == 0
    out, err = capsys.readouterr()
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["step"] for r in records] == [1] and set(records[0]["val"]) == {"q1", "q2"}
    assert err.strip().splitlines()[-1] == f"saved {run / 'checkpoint.pt'}"
    assert len((run / "log.jsonl").read_text().splitlines()) == 1  # started over, not appended


@pytest.mark.parametrize(
    "command",
    [["train", "--model", "ae"], ["finetune", "--from", "missing.pt"]],
    ids=["family", "finetune"],
)
def test_every_trainer_refuses_an_existing_run(command: list[str], tmp_path: Path, capsys) -> None:
    (tmp_path / "checkpoint.pt").write_bytes(b"an earlier run")
    assert main([*command, "--data", str(tmp_path), "--out", str(tmp_path)]) == 2
    message = capsys.readouterr().err
    assert message.startswith(f"aecodec: error: {tmp_path} already holds a run") and "--resume" in message
    assert (tmp_path / "checkpoint.pt").read_bytes() == b"an earlier run"


@pytest.mark.parametrize("add_arguments", [add_train_arguments, add_family_arguments, add_finetune_arguments])
def test_every_training_option_states_its_default(add_arguments: Callable[[argparse.ArgumentParser], None]) -> None:
    parser = trainer_parser("aecodec train", "doc", add_arguments)
    formatter = parser._get_formatter()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, action.option_strings
        assert action.required or "default" in formatter._get_help_string(action), action.option_strings
    assert f"(default: {parser.get_default('steps')})" in parser.format_help()


def test_evaluate_prints_a_table_or_json(model_file: Path, tmp_path: Path, capsys) -> None:
    data = random_images(tmp_path / "images", 1, (32, 48), seed=4)
    table = cli("evaluate", str(model_file), str(data))
    assert table.returncode == 0, table.stderr
    assert main(["evaluate", str(model_file), str(data), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    lines = table.stdout.decode().splitlines()
    assert lines[0] == "random on images (1 images)" and lines[1].split() == ["quality", "bpp", "PSNR", "dB", "MS-SSIM"]
    rows = [line.split() for line in lines[2:]]
    assert [int(row[0]) for row in rows] == result["quality"]
    assert [float(row[1]) for row in rows] == result["bpp"]
    assert [float(row[2]) for row in rows] == pytest.approx(
        result["psnr"], abs=0.0051
    )  # two decimals: half a unit, and float error


def test_info_lists_the_chunks(codec, tmp_path: Path) -> None:
    image = tmp_path / "in.png"
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta>info</x:xmpmeta>")
    rgba = np.random.default_rng(5).integers(0, 256, (20, 30, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(image, pnginfo=info)
    data = codec.compress(str(image), 1)
    (tmp_path / "x.aec").write_bytes(data)
    lines = cli("info", str(tmp_path / "x.aec")).stdout.decode().splitlines()
    assert "   format: aecodec .aec version 3" in lines
    assert f"    model: not shipped ({codec.model.digest.hex()})" in lines  # a test model, known by its hash only
    chunks = next(line for line in lines if line.strip().startswith("chunks:")).split(": ", 1)[1]
    assert chunks.startswith("ALPH ") and chunks.endswith(f", xmp {len('<x:xmpmeta>info</x:xmpmeta>')} B")
    old = cli("info", str(ROOT / "tests/data/synthetic-48x32-v1.aec")).stdout.decode()
    assert "version 1" in old and "   chunks: none" in old
