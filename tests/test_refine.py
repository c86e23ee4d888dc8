"""Encoder tuning: ``tune="ms-ssim"`` changes only the encoder's choice of indices, never the decoder."""

import numpy as np
import pytest
import torch
from conftest import without_corrections
from PIL import Image

from aecodec.bench.metrics import ms_ssim
from aecodec.bitstream.format import pack, unpack
from aecodec.cli import main
from aecodec.codec.api import Codec
from aecodec.codec.effort import EFFORTS, encode_tile
from aecodec.codec.options import MS_SSIM_MIN_SIDE
from aecodec.models.model_files import CodecModel


def tuned_encode(model: CodecModel, x: torch.Tensor, quality: int, tune: str) -> tuple[list, list]:
    """A tile's indices for ``tune`` at effort 1."""
    return encode_tile(model.network, model.prior, x, quality, tune, EFFORTS[0])


def test_psnr_tune_and_small_tiles_keep_the_plain_analysis(model: CodecModel, one_thread) -> None:
    network = model.network
    for side, tune in ((176, "psnr"), (MS_SSIM_MIN_SIDE - 1, "ms-ssim")):
        x = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(side))
        plain, tuned = network.encode(x, 2), tuned_encode(model, x, 2, tune)
        assert all(torch.equal(a, b) for a, b in zip([*plain[0], *plain[1]], [*tuned[0], *tuned[1]], strict=True))


def test_ms_ssim_tune_keeps_the_layout_and_leaves_the_weights_alone(model: CodecModel, one_thread) -> None:
    network = model.network
    x = torch.rand(1, 3, 176, 192, generator=torch.Generator().manual_seed(0))
    before = {k: v.clone() for k, v in network.state_dict().items()}
    with torch.no_grad():  # the refinement enables gradients for itself
        plain, tuned = network.encode(x, 3), tuned_encode(model, x, 3, "ms-ssim")
    assert [i.shape for i in plain[0] + plain[1]] == [i.shape for i in tuned[0] + tuned[1]]
    assert all(torch.equal(a, b) for a, b in zip(plain[0], tuned[0], strict=True))  # top level as analysed
    assert all(p.grad is None for p in network.parameters())
    assert all(torch.equal(before[k], v) for k, v in network.state_dict().items())
    with pytest.raises(ValueError, match="tune"):
        tuned_encode(model, x, 3, "ssim")


def test_ms_ssim_tune_raises_ms_ssim_on_a_kodak_crop(kodak_dir) -> None:
    """The default model's network, whose qualities are its base's alone, on a real photo: the tuned file decodes
    with the same decoder and scores higher (under a residual level the tune reaches only the half-size base of a
    crop this size, too small for MS-SSIM). Both without the corrections fitted in squared error after the tune's
    indices: at this size a Wiener filter's bytes are a tenth of the file."""
    original = Image.open(kodak_dir / "kodim01.png").convert("RGB").crop((256, 128, 512, 320))
    codec, pixels = Codec("vqvae2-wide"), np.asarray(original)
    plain, tuned = (
        pack(without_corrections(unpack(codec.compress(original, 1, tune)))) for tune in ("psnr", "ms-ssim")
    )
    scores = [ms_ssim(pixels, np.asarray(codec.decompress(data))) for data in (plain, tuned)]
    assert scores[1] > scores[0]
    assert len(tuned) < 1.1 * len(plain)


def test_cli_compress_takes_a_tune(kodak_dir, tmp_path) -> None:
    out = tmp_path / "crop.aec"
    Image.open(kodak_dir / "kodim23.png").convert("RGB").crop((0, 0, 176, 176)).save(tmp_path / "crop.png")
    assert main(["compress", str(tmp_path / "crop.png"), str(out), "-q", "2", "--tune", "ms-ssim"]) == 0
    assert main(["decompress", str(out), str(tmp_path / "back.png")]) == 0
    assert Image.open(tmp_path / "back.png").size == (176, 176)
    with pytest.raises(SystemExit) as error:
        main(["compress", str(tmp_path / "crop.png"), str(tmp_path / "x.aec"), "--tune", "ssim"])
    assert error.value.code == 2
