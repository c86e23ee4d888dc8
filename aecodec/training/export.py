"""Turn a trained checkpoint into a codec model file.

Export quantizes the float prior to the integer runtime, calibrated on indices of real image crops,
and reports what integerization costs in bits per index. ``aecodec export`` (:mod:`aecodec.cli.export`)
runs it, and with ``--evaluate DIR`` also measures the new model on DIR with :mod:`aecodec.bench.evaluate`.
"""

import hashlib
import json
from pathlib import Path

import torch
from torch import Tensor

from aecodec.codec.files import write_atomic
from aecodec.codec.images import list_images
from aecodec.models.integer_prior import IntegerPrior, code_length, quantize_prior
from aecodec.models.model_files import model_bytes
from aecodec.models.prior import HierarchicalPrior, PriorConfig
from aecodec.models.vqvae2 import VQVAE2, VQVAE2Config
from aecodec.training.data import load_image_tensor, random_crops
from aecodec.training.loop import load_checkpoint


@torch.no_grad()
def stage_indices(network: VQVAE2, batch: Tensor) -> tuple[list[Tensor], list[Tensor]]:
    """All stages' indices of an image batch at the highest quality: (B, h, w) per stage."""
    network.eval()
    out = network(batch)
    return out.top.indices, out.bottom.indices


def integer_bits_per_index(prior: IntegerPrior, top: list[Tensor], bottom: list[Tensor]) -> float:
    """Ideal code length per index under the integer prior, over a batch of index maps (B, H, W)."""
    bits, count = 0.0, 0
    for b in range(top[0].shape[0]):
        tile_bits, tile_count = code_length(prior, [t[b] for t in top], [t[b] for t in bottom])
        bits, count = bits + tile_bits, count + tile_count
    return bits / count


@torch.no_grad()
def float_bits_per_index(prior: HierarchicalPrior, top: list[Tensor], bottom: list[Tensor]) -> float:
    top_bits, bottom_bits = prior.bits(top, bottom)
    return float((top_bits.sum() + bottom_bits.sum()) / (top_bits.numel() + bottom_bits.numel()))


def export_model(
    name: str, network: VQVAE2, prior: HierarchicalPrior, calibration: Tensor, metadata: dict[str, str] | None = None
) -> tuple[bytes, dict]:
    """Model-file bytes and an integerization report, calibrating the prior on an image batch."""
    prior.eval()
    top, bottom = stage_indices(network, calibration)
    integer = quantize_prior(prior, top, bottom)
    report = {
        "float_bits_per_index": float_bits_per_index(prior, top, bottom),
        "integer_bits_per_index": integer_bits_per_index(integer, top, bottom),
    }
    return model_bytes(name, network, integer, metadata=metadata), report


def export_checkpoint(checkpoint: Path, name: str, calibration_dir: Path, out: Path, crops: int = 16) -> dict:
    """Write a model file from a training checkpoint; returns its manifest entry."""
    state = load_checkpoint(checkpoint)
    config = state["config"]
    network = VQVAE2(VQVAE2Config(**config["model"]))
    network.load_state_dict(state["model"])
    prior = HierarchicalPrior(
        network.config.num_codes,
        network.config.top_stages,
        network.config.bottom_stages,
        PriorConfig(**config["prior"]),
    )
    prior.load_state_dict(state["prior"])
    images = [load_image_tensor(f, 256) for f in list_images(calibration_dir)]
    calibration = random_crops(images, crops, 256, torch.Generator().manual_seed(1))
    finetune = config.get("finetune")  # a decoder fine-tune: say of what, so its step count reads right
    origin = {"finetune": f"{finetune['objective']} from {finetune['source']}"} if finetune else {}
    meta = {"training_data": str(config["data"]), "steps": str(state["step"]), **origin}
    data, report = export_model(name, network, prior, calibration, meta)
    write_atomic(str(out), data, force=True)
    return {
        "file": out.name,
        "hash": hashlib.sha256(data).digest()[:8].hex(),
        "steps": state["step"],
        "training_data": Path(config["data"]).name,
        **origin,
        **report,
    }


def record_in_manifest(manifest: Path, name: str, entry: dict, replace: bool = True, default: bool = False) -> None:
    """Write a model's manifest ``entry`` (``replace``) or merge it into the one there.

    With ``default``, the model also becomes the manifest's default.
    """
    data = json.loads(manifest.read_text()) if manifest.exists() else {"default": name, "models": {}}
    if replace or name not in data["models"]:
        data["models"][name] = entry
    else:
        data["models"][name].update(entry)
    if default:
        data["default"] = name
    write_atomic(str(manifest), (json.dumps(data, indent=1) + "\n").encode(), force=True)
