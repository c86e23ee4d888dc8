"""The family report's studies measure what they claim, on cases with a known answer."""

import json

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from aecodec.bench.datasets import DatasetImage
from aecodec.bench.metrics import DB_CAP
from aecodec.bench.runner import CodecResult, ImageResult
from aecodec.family.kmeans_vq import BlockVQ, BlockVQConfig
from aecodec.family.studies import (
    Corruption,
    bracketing_qualities,
    codebook_usage,
    denoising_study,
    final_train_psnr,
)


class Identity(nn.Module):
    """A 'model' that returns its input: its output PSNR must equal the corrupted input's."""

    stride = 8

    def forward(self, x: Tensor) -> Tensor:
        return x


@pytest.fixture()
def images() -> list[DatasetImage]:
    rng = np.random.default_rng(0)
    return [DatasetImage(f"{i}.png", rng.integers(0, 256, (20, 28, 3), dtype=np.uint8)) for i in range(2)]


def test_denoising_study_of_an_identity_model_is_the_corrupted_input(images: list[DatasetImage]) -> None:
    corruptions = (Corruption("clean"), Corruption("noise", noise_sigma=0.1), Corruption("mask", mask_fraction=0.5))
    rows = denoising_study({"identity": Identity()}, images, corruptions=corruptions)
    assert [r.corruption for r in rows] == ["clean", "noise", "mask"]
    assert rows[0].corrupted_psnr == DB_CAP == rows[0].model_psnr["identity"]
    for row in rows[1:]:
        assert row.corrupted_psnr < 40
        assert row.model_psnr["identity"] == pytest.approx(row.corrupted_psnr)
    again = denoising_study({"identity": Identity()}, images, corruptions=corruptions)
    assert again == rows  # seeded: both models of a study see the same corruptions


def test_codebook_usage_counts_codes_and_entropy() -> None:
    model = BlockVQ(BlockVQConfig(num_codes=4, block=4))
    with torch.no_grad():
        model.quantizer.codebook.copy_(torch.stack([torch.full((48,), v) for v in (0.0, 0.33, 0.66, 1.0)]))
    halves = np.zeros((8, 16, 3), dtype=np.uint8)
    halves[:, 8:] = 255  # two blocks of 0 and two of 255: codes 0 and 3, once each per row
    usage = codebook_usage(model, [DatasetImage("halves.png", halves)])
    assert usage.num_codes == 4 and usage.used_share == 0.5
    assert usage.perplexity == pytest.approx(2.0) and usage.bits_per_index == pytest.approx(1.0)


def _result(points: dict[int, list[float]]) -> CodecResult:
    images = [
        ImageResult(f"{i}.png", q, 1, bpp, 30.0, 0.9, 0.0, 0.0, 1)
        for q, bpps in points.items()
        for i, bpp in enumerate(bpps)
    ]
    return CodecResult("c", "test", list(points), images)


def test_bracketing_qualities_compare_mean_bpp() -> None:
    result = _result({1: [0.1, 0.3], 2: [0.25, 0.35], 3: [0.6, 0.8]})  # means 0.2, 0.3, 0.7
    assert bracketing_qualities(result, 0.25) == [1, 2]
    assert bracketing_qualities(result, 0.3) == [2, 3]
    assert bracketing_qualities(result, 0.1) == [1]
    assert bracketing_qualities(result, 5.0) == [3]


def test_final_train_psnr_averages_the_last_rows(tmp_path) -> None:
    rows = [{"step": 10 * (i + 1), "loss": 0.0, "psnr": float(i)} for i in range(20)]
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    step, mean = final_train_psnr(tmp_path, tail=4)
    assert step == 200 and mean == pytest.approx((16 + 17 + 18 + 19) / 4)
