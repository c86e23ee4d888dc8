"""The shipped default model: it loads with no download, matches its manifest, and codes a real photo."""

import numpy as np
import torch
from PIL import Image

import aecodec
from aecodec.bench.metrics import psnr
from aecodec.models.manifest import default_model_name, manifest
from aecodec.models.model_files import shipped_model


def test_default_model_matches_manifest() -> None:
    name = default_model_name()
    entry = manifest()["models"][name]
    model = shipped_model(name)
    assert model.digest.hex() == entry["hash"] and model.name == name
    if "fit_prior" in entry:  # a prior retrained by `aecodec fit-prior`: fewer bits on its validation photos
        fit = entry["fit_prior"]
        assert fit["order"] == model.prior.order
        assert all(
            a < b for a, b in zip(fit["validation_bits_per_index_after"], fit["validation_bits_per_index_before"])
        )
    else:  # the prior exported with the network: integerization costs under 1%
        assert entry["integer_bits_per_index"] < entry["float_bits_per_index"] * 1.01


def test_default_round_trip_on_a_kodak_crop(kodak_dir) -> None:
    original = Image.open(kodak_dir / "kodim23.png").convert("RGB").crop((200, 100, 456, 356))
    low, high = aecodec.compress(original, quality=1), aecodec.compress(original, quality=6)
    assert len(low) < len(high)
    decoded = [aecodec.decompress(data) for data in (low, high)]
    assert all(d.size == original.size and d.mode == "RGB" for d in decoded)
    quality = [psnr(np.asarray(original), np.asarray(d)) for d in decoded]
    # A trained model: far above the ~10 dB of an untrained one, and better with more bits.
    assert 20 < quality[0] < quality[1]


def test_every_shipped_model_matches_its_manifest_entry() -> None:
    for name, entry in manifest()["models"].items():
        model = shipped_model(name)
        assert model.digest.hex() == entry["hash"]
        # Its measured Kodak curve (`aecodec evaluate`, or `aecodec bench` for models with dozens of
        # qualities): qualities of the model in order, more bits for each step up.
        kodak = entry["evaluation"]
        assert kodak["dataset"] == "kodak" and kodak["images"] == 24
        assert kodak["quality"] == sorted(set(kodak["quality"])) and set(kodak["quality"]) <= set(
            range(1, model.num_qualities + 1)
        )
        assert len(kodak["quality"]) == len(kodak["bpp"]) == len(kodak["psnr"])
        assert all(a < b for a, b in zip(kodak["bpp"], kodak["bpp"][1:]))


def test_gan_model_codes_the_same_indices_as_its_source(kodak_dir) -> None:
    gan, base = shipped_model("vqvae2-gan").network, shipped_model("vqvae2-base").network
    assert gan.config.upsample == "resize" and base.config.upsample == "transposed"
    pixels = np.asarray(Image.open(kodak_dir / "kodim13.png").convert("RGB").crop((0, 0, 128, 96)))
    image = torch.from_numpy(pixels.copy()).permute(2, 0, 1)[None].float() / 255
    for quality in (1, 3):
        top_and_bottom = [[i for level in m.encode(image, quality) for i in level] for m in (base, gan)]
        assert all(torch.equal(a, b) for a, b in zip(*top_and_bottom, strict=True))
