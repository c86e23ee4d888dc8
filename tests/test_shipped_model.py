"""The shipped default model: it loads with no download, matches its manifest, and codes a real photo."""

import numpy as np
from PIL import Image

import aecodec
from aecodec.benchmarks.metrics import psnr
from aecodec.models.registry import default_model_name, manifest, shipped_model


def test_default_model_matches_manifest() -> None:
    name = default_model_name()
    entry = manifest()["models"][name]
    model = shipped_model(name)
    assert model.digest.hex() == entry["hash"] and model.name == name
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
