"""Turn a trained checkpoint (or a random network, for tests) into a codec model file.

Export quantizes the float prior to the integer runtime, calibrated on indices of real image crops,
and reports what integerization costs in bits per index. ``--evaluate DIR`` also records the model's
measured curve on DIR (see :mod:`aecodec.benchmarks.evaluate`).
"""

import argparse
import hashlib
import json
from pathlib import Path

import torch
from torch import Tensor

from aecodec.benchmarks.evaluate import evaluation, record_in_manifest
from aecodec.models.data import image_files, load_rgb, random_crops
from aecodec.models.integer_prior import IntegerPrior, code_length, quantize_prior
from aecodec.models.prior import HierarchicalPrior, PriorConfig
from aecodec.models.registry import CodecModel, model_bytes, model_from_bytes
from aecodec.models.vqvae2 import VQVAE2, VQVAE2Config


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


def build_model(
    name: str, network: VQVAE2, prior: HierarchicalPrior, calibration: Tensor, metadata: dict[str, str] | None = None
) -> tuple[bytes, dict]:
    """Model-file bytes and an integerization report, calibrating the prior on an image batch."""
    prior.eval()
    top, bottom = stage_indices(network, calibration)
    integer = quantize_prior(prior, top, bottom)
    report = {"float_bits_per_index": float_bits_per_index(prior, top, bottom),
              "integer_bits_per_index": integer_bits_per_index(integer, top, bottom)}
    return model_bytes(name, network, integer, metadata), report


def random_model_bytes(name: str = "random", config: VQVAE2Config | None = None, seed: int = 0, image_size: int = 64) -> bytes:
    """Model-file bytes of an untrained model with a correctly built integer prior (for tests)."""
    torch.manual_seed(seed)
    config = config or VQVAE2Config(channels=16, latent_dim=8, num_codes=32, top_stages=2, bottom_stages=3, res_blocks=1)
    network = VQVAE2(config)
    prior = HierarchicalPrior(config.num_codes, config.top_stages, config.bottom_stages, PriorConfig(embed=8, hidden=16))
    network.train()
    network(torch.rand(2, 3, image_size, image_size))  # k-means codebook initialisation
    data, _ = build_model(name, network, prior, torch.rand(2, 3, image_size, image_size))
    return data


def random_model(name: str = "random", config: VQVAE2Config | None = None, seed: int = 0) -> CodecModel:
    """An untrained, tiny model: fast tests of the whole codec."""
    return model_from_bytes(random_model_bytes(name, config, seed), name)


def export_checkpoint(
    checkpoint: Path, name: str, calibration_dir: Path, out: Path, evaluate: Path | None = None, crops: int = 16
) -> dict:
    """Write a model file from a training checkpoint; returns its manifest entry (with ``evaluate``'s results)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    config = state["config"]
    network = VQVAE2(VQVAE2Config(**config["model"]))
    network.load_state_dict(state["model"])
    prior = HierarchicalPrior(network.config.num_codes, network.config.top_stages, network.config.bottom_stages,
                              PriorConfig(**config["prior"]))
    prior.load_state_dict(state["prior"])
    images = [load_rgb(f, 256) for f in image_files(calibration_dir)]
    calibration = random_crops(images, crops, 256, torch.Generator().manual_seed(1))
    finetune = config.get("finetune")  # a decoder fine-tune: say of what, so its step count reads right
    origin = {"finetune": f"{finetune['objective']} from {finetune['source']}"} if finetune else {}
    meta = {"training_data": str(config["data"]), "steps": str(state["step"]), **origin}
    data, report = build_model(name, network, prior, calibration, meta)
    out.write_bytes(data)
    measured = {"evaluation": evaluation(model_from_bytes(data, name), evaluate)} if evaluate else {}
    return {"file": out.name, "hash": hashlib.sha256(data).digest()[:8].hex(), "steps": state["step"],
            "training_data": Path(config["data"]).name, **origin, **report, **measured}


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    """Command-line options of ``aecodec export``."""
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("out", type=Path, help="model file to write (.safetensors)")
    parser.add_argument("--name", required=True, help="model name written into .aec headers (<= 16 chars)")
    parser.add_argument("--calibration", type=Path, required=True, help="folder of images to calibrate the integer prior")
    parser.add_argument("--manifest", type=Path, help="also record the model in this manifest.json (created if missing)")
    parser.add_argument("--default", action="store_true", help="with --manifest: make it the default model")
    parser.add_argument("--evaluate", type=Path, help="code every image of this folder (e.g. Kodak) at every quality "
                        "and record the mean bpp, PSNR and MS-SSIM")


def run_export(args: argparse.Namespace) -> int:
    """Entry point of ``aecodec export``: writes the model file and prints its manifest entry."""
    entry = export_checkpoint(args.checkpoint, args.name, args.calibration, args.out, args.evaluate)
    if args.manifest:
        record_in_manifest(args.manifest, args.name, entry, default=args.default)
    print(json.dumps(entry, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aecodec export", description="Export a training checkpoint as a codec model file.")
    add_export_arguments(parser)
    return run_export(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
