"""Every autoencoder-family member trains, codes as a codec, and the generic trainer resumes."""

import numpy as np
import pytest
import torch
from PIL import Image

from aecodec.errors import InputError
from aecodec.family.codec import IndexCodec, batch_to_image, fit_codec, image_to_batch
from aecodec.family.compare import RECIPES
from aecodec.family.compare import main as compare_main
from aecodec.family.registry import FAMILY, build_model
from aecodec.family.trainer import FamilyTrainConfig, initialise_from, load_member, main, train_family
from aecodec.family.vae import VAE, VAEConfig
from aecodec.family.vqgan import VQGAN, VQGANConfig
from aecodec.training.data import random_crops
from aecodec.training.loop import RunOptions

TINY = {"channels": 8, "latent_dim": 4}
TINY_SETTINGS = {
    "ae": TINY,
    "dae": TINY,
    "sparse": {**TINY, "sigmoid_code": True, "kl_weight": 0.1},
    "contractive": TINY,
    "vae": TINY,
    "kmeans": {"num_codes": 16},
    "vqvae": {**TINY, "num_codes": 16},
    "vqgan": {**TINY, "num_codes": 16, "discriminator_channels": 8, "perceptual_weight": 0.0},
}


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(name, **TINY_SETTINGS[name])


@pytest.fixture(scope="module")
def photos() -> list[torch.Tensor]:
    """Two smooth random 48x40 uint8 'photos' to crop from."""
    generator = torch.Generator().manual_seed(0)
    coarse = torch.rand(2, 3, 6, 5, generator=generator)
    smooth = torch.nn.functional.interpolate(coarse, size=(48, 40), mode="bilinear", align_corners=False)
    return list((smooth * 255).round().to(torch.uint8))


def test_registry_covers_the_family() -> None:
    assert set(FAMILY) == {"ae", "dae", "sparse", "contractive", "vae", "kmeans", "vqvae", "vqgan"}


@pytest.mark.parametrize("name", list(FAMILY))
def test_member_trains_three_steps(name: str, photos: list[torch.Tensor]) -> None:
    model = tiny_model(name).train()
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(parameters, lr=1e-3) if parameters else None
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        loss, metrics = model.loss(random_crops(photos, 2, 32, generator))
        assert torch.isfinite(loss) and np.isfinite(metrics["psnr"])
        if optimizer:
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


@pytest.mark.parametrize("name", list(FAMILY))
def test_codec_round_trip(name: str, photos: list[torch.Tensor]) -> None:
    model = tiny_model(name)
    fitting = random_crops(photos, 4, 32, torch.Generator().manual_seed(1))
    codec = fit_codec(name, model, fitting, iterations=10)
    image = batch_to_image(photos[0][None].float() / 255, 37, 29)  # sides not multiples of the stride
    for quality in codec.qualities:
        data = codec.encode(image, quality)
        decoded = codec.decode(data)
        assert decoded.size == image.size and decoded.mode == "RGB"
        assert 0 < len(data) < 37 * 29 * 3
    if isinstance(codec, IndexCodec):
        # Indices round-trip exactly, so the decoder's image is the model's own reconstruction.
        x = image_to_batch(image, model.stride)
        expected = batch_to_image(model.decode_indices(model.encode_indices(x)), 37, 29)
        assert np.array_equal(np.asarray(decoded), np.asarray(expected))


def test_vae_sample_and_interpolate() -> None:
    torch.manual_seed(0)
    vae = VAE(VAEConfig(**TINY)).eval()
    assert vae.sample(3, 32, 48).shape == (3, 3, 32, 48)
    x1, x2 = torch.rand(2, 3, 32, 32).unbind(0)
    path = vae.interpolate(x1, x2, steps=5)
    assert path.shape == (5, 3, 32, 32)
    torch.testing.assert_close(path[0], vae.decode(vae.encode(x1[None]))[0].clamp(0, 1))
    torch.testing.assert_close(path[-1], vae.decode(vae.encode(x2[None]))[0].clamp(0, 1))


def test_vqgan_generator_term_leaves_the_discriminator_alone() -> None:
    torch.manual_seed(0)
    model = VQGAN(VQGANConfig(**TINY, num_codes=16, discriminator_channels=8, perceptual_weight=0.0))
    reconstruction = torch.rand(2, 3, 32, 32, requires_grad=True)
    model.generator_logits(reconstruction).mean().backward()
    assert reconstruction.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.discriminator.parameters())


def test_vqgan_discriminator_warms_up_before_the_generator_term() -> None:
    torch.manual_seed(0)
    config = VQGANConfig(**TINY, num_codes=16, discriminator_channels=8, perceptual_weight=0.0, adversarial_start=2)
    model = VQGAN(config).train()
    batch = torch.rand(2, 3, 32, 32)
    logged = [model.loss(batch)[1] for _ in range(3)]
    assert all("discriminator" in m for m in logged)
    assert ["gan_weight" in m for m in logged] == [False, False, True]
    assert "discriminator" not in model.eval().loss(batch)[1]


@pytest.mark.parametrize("stride", [8, 16])
def test_resize_decoder_keeps_the_image_size_and_a_pixel_conv(stride: int) -> None:
    model = build_model("vqgan", **TINY_SETTINGS["vqgan"], stride=stride, upsample="resize")
    assert model.reconstruct(torch.rand(1, 3, 32, 48))[0].shape == (1, 3, 32, 48)
    assert isinstance(model.decoder.last_layer, torch.nn.Conv2d) and model.decoder.last_layer.out_channels == 3
    with pytest.raises(ValueError, match="upsample"):
        build_model("ae", upsample="bilinear")


def test_vqgan_with_st_lpips() -> None:
    pytest.importorskip("stlpips_pytorch")
    torch.manual_seed(0)
    model = VQGAN(VQGANConfig(**TINY, num_codes=16, discriminator_channels=8)).train()
    loss, metrics = model.loss(torch.rand(2, 3, 64, 64))
    loss.backward()
    assert torch.isfinite(loss) and metrics["st_lpips"] > 0


def write_photos(folder, photos: list[torch.Tensor]) -> None:
    folder.mkdir()
    for i, photo in enumerate(photos):
        Image.fromarray(photo.permute(1, 2, 0).numpy()).save(folder / f"{i}.png")


def test_trainer_checkpoints_and_resumes(tmp_path, photos: list[torch.Tensor]) -> None:
    write_photos(tmp_path / "data", photos)
    common = {
        "model": "dae",
        "data": str(tmp_path / "data"),
        "settings": TINY,
        "batch": 2,
        "crop": 32,
        "checkpoint_every": 1,
        "log_every": 1,
    }
    straight = train_family(FamilyTrainConfig(out=str(tmp_path / "straight"), steps=3, **common))
    train_family(FamilyTrainConfig(out=str(tmp_path / "resumed"), steps=2, **common))
    resumed = train_family(FamilyTrainConfig(out=str(tmp_path / "resumed"), steps=3, **common), RunOptions(resume=True))
    assert torch.load(resumed, weights_only=False)["step"] == 3
    name, model = load_member(resumed)
    _, reference = load_member(straight)
    assert name == "dae" and not model.training
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value)
    assert len((tmp_path / "resumed" / "log.jsonl").read_text().splitlines()) == 3


def test_trainer_command_line(tmp_path, photos: list[torch.Tensor]) -> None:
    write_photos(tmp_path / "data", photos)
    paths = ["--data", str(tmp_path / "data"), "--out", str(tmp_path / "run")]
    argv = ["--model", "kmeans", *paths, *"--steps 1 --batch 2 --crop 32 --num-codes 8".split()]
    assert main(argv) == 0
    assert load_member(tmp_path / "run" / "checkpoint.pt")[1].num_codes == 8
    with pytest.raises(InputError, match="beta"):
        main([*argv, "--beta", "0.1"])


def test_initialise_from_copies_shared_weights(tmp_path, photos: list[torch.Tensor]) -> None:
    write_photos(tmp_path / "data", photos)
    config = FamilyTrainConfig(
        model="vqvae",
        data=str(tmp_path / "data"),
        out=str(tmp_path / "vqvae"),
        settings=TINY_SETTINGS["vqvae"],
        steps=1,
        batch=2,
        crop=32,
    )
    checkpoint = train_family(config)
    vqgan = tiny_model("vqgan")
    initialise_from(vqgan, checkpoint)
    _, vqvae = load_member(checkpoint)
    for key, value in vqvae.state_dict().items():
        torch.testing.assert_close(vqgan.state_dict()[key], value)
    with pytest.raises(InputError, match="does not fit"):
        initialise_from(tiny_model("kmeans"), checkpoint)
    with pytest.raises(InputError, match="does not fit"):
        initialise_from(tiny_model("ae"), checkpoint)


def test_compare_trains_missing_members_and_writes_the_page(tmp_path, photos: list[torch.Tensor]) -> None:
    """Tiny members stand in for the recipes' finished runs; the one command measures and writes the page."""
    big = [
        torch.nn.functional.interpolate(p[None].float(), size=(64, 64), mode="bilinear")[0].to(torch.uint8)
        for p in photos
    ]
    write_photos(tmp_path / "data", big)
    steps = 10
    for name, recipe in RECIPES.items():
        config = FamilyTrainConfig(
            model=name,
            data=str(tmp_path / "data"),
            out=str(tmp_path / "runs" / name),
            settings={**TINY_SETTINGS[name], "stride": 8} if name != "kmeans" else TINY_SETTINGS[name],
            steps=max(1, round(steps * recipe.step_share)),
            batch=2,
            crop=32,
            log_every=1,
        )
        train_family(config)
    page = tmp_path / "docs" / "models.md"
    data, runs, out = (str(path) for path in (tmp_path / "data", tmp_path / "runs", tmp_path / "docs" / "models"))
    argv = ["--train-data", data, "--runs", runs, "--steps", str(steps), "--dataset", data, "--out", out]
    argv += ["--page", str(page), "--limit", "1"]
    assert compare_main(argv) == 0
    text = page.read_text()
    for section in (
        "Members and training",
        "As codecs",
        "Denoising",
        "VAE samples",
        "Codebook usage",
        "Hierarchical VQ-GAN against VQ-VAE-2",
        "Single-level VQ-GAN against VQ-VAE-2",
    ):
        assert f"## {section}" in text
    assert "| vqgan | 1 |" in text and "| aec |" in text and "(models/vae_samples.png)" in text
    assert "| aec:vqvae2-gan | 1 |" in text and "| aec:vqvae2-base |" in text
    for figure in ("rd_psnr.png", "vae_samples.png", "vae_interpolation.png", "report.md"):
        assert (tmp_path / "docs" / "models" / figure).exists()
    assert list((tmp_path / "docs" / "models").glob("matched_*.png"))
