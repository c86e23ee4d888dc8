"""The prior's pass orders: what each pass codes, exact coding in every order, model files that carry one."""

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load, save

from aecodec.bitstream.format import unpack
from aecodec.codec.api import Codec
from aecodec.errors import InputError, ModelError
from aecodec.models import model_files
from aecodec.models.integer_prior import code_length
from aecodec.models.model_files import CodecModel, model_from_bytes
from aecodec.models.prior import ORDERS, HierarchicalPrior, PriorConfig, decoded_before, pass_count, pass_masks
from aecodec.testing import random_model_bytes
from aecodec.training.export import export_model
from aecodec.training.prior import main as fit_prior_main


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (5, 7), (16, 16), (17, 9)])
def test_passes_code_every_position_once(order: str, shape: tuple[int, int]) -> None:
    masks = pass_masks(order, *shape)
    assert len(masks) == pass_count(order) and torch.equal(
        sum(m.int() for m in masks), torch.ones(shape, dtype=torch.int)
    )
    assert all(
        torch.equal(decoded_before(order, *shape, n), sum(m.int() for m in masks[:n]) > 0) for n in range(1, len(masks))
    )


def test_grid_depth_2_passes() -> None:
    """Positions 4 apart, then the centres of their squares, the rest of the spacing-2 grid, its centres, the rest."""
    y, x = torch.arange(8)[:, None], torch.arange(8)[None, :]
    expected = [
        (y % 4 == 0) & (x % 4 == 0),
        (y % 4 == 2) & (x % 4 == 2),
        (y % 2 == 0) & (x % 2 == 0) & ((y % 4 == 2) ^ (x % 4 == 2)),
        (y % 2 == 1) & (x % 2 == 1),
        (y + x) % 2 == 1,
    ]
    assert all(torch.equal(a, b) for a, b in zip(pass_masks("grid2", 8, 8), expected, strict=True))


@pytest.mark.parametrize("height,width", [(1, 1), (17, 33), (70, 131)])
def test_grid_model_round_trips_indices(grid_model: CodecModel, height: int, width: int) -> None:
    codec = Codec(grid_model, tile_size=64, overlap=8)
    pixels = np.random.default_rng(height * width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    for quality in codec.qualities:
        data = codec.compress(pixels, quality)
        sent = codec.analyze(pixels, quality)
        received = [indices for _, indices in codec.tile_indices(unpack(data))]
        assert all(
            torch.equal(a, b)
            for s, r in zip(sent, received, strict=True)
            for a, b in zip(s.top + s.bottom, r.top + r.bottom)
        )


def test_integer_prior_codes_within_a_little_of_its_float_twin() -> None:
    """The integerization of a grid prior (random, with random pass biases) costs under 1% of its float bits."""
    torch.manual_seed(0)
    network = model_from_bytes(random_model_bytes()).network
    config = network.config
    prior = HierarchicalPrior(config.num_codes, config.top_stages, config.bottom_stages, PriorConfig(8, 16, "grid2"))
    for level in (prior.top, prior.bottom):
        level.pass_bias.data.normal_(std=0.5)
    _, report = export_model("grid", network, prior, torch.rand(2, 3, 64, 64))
    assert abs(report["integer_bits_per_index"] / report["float_bits_per_index"] - 1) < 0.01


def forged(order: str | None, change) -> bytes:
    """The grid model's bytes with its metadata's order set to ``order`` (None: absent) and ``change`` applied to
    its tensors."""
    data = random_model_bytes("random-grid", order="grid2")
    tensors, meta = load(data), model_files._metadata(data)
    meta.pop("prior_order")
    change(tensors)
    return save(tensors, metadata=meta if order is None else {**meta, "prior_order": order})


def test_pass_biases_change_the_tables(grid_model: CodecModel) -> None:
    """A grid model's pass biases are read: zeroing them changes the code length."""
    tile = Codec(grid_model).analyze(np.random.default_rng(1).integers(0, 256, (32, 48, 3), np.uint8), 3)[0]
    top, bottom = tile.top, tile.bottom
    zeroed = model_from_bytes(forged("grid2", lambda t: t["prior.bottom.pass_bias"].zero_()))
    assert code_length(zeroed.prior, top, bottom)[0] != code_length(grid_model.prior, top, bottom)[0]


@pytest.mark.parametrize(
    "order,change",
    [
        ("grid9", lambda t: None),  # an unknown order
        (None, lambda t: None),  # a checkerboard file holding pass biases
        ("grid3", lambda t: None),  # too few pass biases for the order
        ("grid2", lambda t: t.pop("prior.top.pass_bias")),
        ("grid2", lambda t: t.update({"prior.top.pass_bias": t["prior.top.pass_bias"][:, :-1].contiguous()})),
        ("grid2", lambda t: t.update({"prior.top.pass_bias": t["prior.top.pass_bias"].float()})),
    ],
)
def test_bad_pass_orders_are_model_errors(order: str | None, change) -> None:
    with pytest.raises(ModelError):
        model_from_bytes(forged(order, change))


def test_fit_prior_changes_only_the_bits(model_file, tmp_path) -> None:
    """``aecodec fit-prior`` writes a grid model whose indices and pixels are its source's."""
    data = tmp_path / "photos"
    data.mkdir()
    for i in range(3):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(data / f"{i}.png")
    out = tmp_path / "grid.safetensors"
    args = ["--model", str(model_file), "--data", str(data), "--out", str(out), "--name", "random-fit", "--steps", "3"]
    assert fit_prior_main(args) == 0
    with pytest.raises(InputError, match="exists"):  # refused before any work
        fit_prior_main(args)
    source, fitted = (model_files.load_model_file(p) for p in (model_file, out))
    assert fitted.prior.order == "grid2" and fitted.name == "random-fit"
    pixels = np.random.default_rng(9).integers(0, 256, (30, 44, 3), dtype=np.uint8)
    a, b = Codec(source), Codec(fitted)
    decoded = [np.asarray(codec.decompress(codec.compress(pixels, 2))) for codec in (a, b)]
    assert np.array_equal(*decoded)
    assert all(torch.equal(x, y) for x, y in zip(*(c.analyze(pixels, 2)[0].bottom for c in (a, b)), strict=True))
