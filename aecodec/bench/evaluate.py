"""Measure one codec model on a folder of images and record the numbers in a model manifest.

``aecodec evaluate MODEL DIR [--manifest FILE] [--json]`` codes every image at every quality of the
model (real file sizes, PSNR and MS-SSIM on 8-bit RGB, per-image means) and prints a table (JSON with
``--json``); it is how the shipped models' manifest gets its Kodak figures. ``--probe`` instead
measures where the model's limits lie: the integer prior's bits per index at the top quality, and
the PSNR of the unquantized latents decoded (the autoencoder's ceiling) beside that of the top
quality. ``aecodec export --evaluate DIR`` does the same as the default for a new model; the manifest writer is
:func:`aecodec.training.export.record_in_manifest`.
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from aecodec.bench.baselines import AecAdapter
from aecodec.bench.datasets import load_dataset
from aecodec.bench.metrics import psnr
from aecodec.bench.runner import run_benchmark
from aecodec.codec.api import Codec
from aecodec.codec.tiling import pad_to_multiple, to_tensor
from aecodec.models.integer_prior import code_length
from aecodec.models.model_files import CodecModel, resolve_model
from aecodec.training.export import record_in_manifest
from aecodec.training.loop import text_table

METRICS = ("bpp", "psnr", "ms_ssim")


def evaluation(model: CodecModel, folder: Path, progress: bool = True) -> dict:
    """Mean bpp, PSNR and MS-SSIM per quality of ``model`` over the images of ``folder``."""
    images = load_dataset(folder)
    run = run_benchmark([AecAdapter(Codec(model), name=model.name)], images, folder.name, progress=progress)
    result = run.codecs[0]
    return {
        "dataset": folder.name,
        "images": len(images),
        "quality": result.qualities,
        **{metric: [round(value, 4) for value in result.mean(metric)] for metric in METRICS},
    }


def _pixels(image: torch.Tensor, height: int, width: int) -> np.ndarray:
    """A decoded (1, 3, H', W') tensor as the (height, width, 3) uint8 image it stands for."""
    return (image[0, :, :height, :width].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


@torch.no_grad()
def probe(model: CodecModel, folder: Path) -> dict:
    """Bits per index under the integer prior and PSNR of the top quality and of the unquantized latents.

    Each image is one tile (no tiling), so use images within the model's tile size, such as Kodak's.
    """
    network, quality = model.network, model.network.num_qualities
    bits, count, quantized, ceiling = 0.0, 0, [], []
    for image in load_dataset(folder):
        height, width = image.pixels.shape[:2]
        x = pad_to_multiple(to_tensor(image.pixels), network.stride)
        top, bottom = network.encode(x, quality)
        tile_bits, tile_count = code_length(model.prior, top, bottom)
        bits, count = bits + tile_bits, count + tile_count
        quantized.append(psnr(image.pixels, _pixels(network.decode(top, bottom), height, width)))
        hidden = network.encode_bottom(x - 0.5)
        top_latent = network.encode_top(hidden)
        bottom_latent = network.pre_bottom(torch.cat([hidden, network.decode_top(top_latent)], 1))
        ceiling.append(psnr(image.pixels, _pixels(network.synthesize(top_latent, bottom_latent), height, width)))
    return {
        "dataset": folder.name,
        "images": len(quantized),
        "quality": quality,
        "integer_bits_per_index": round(bits / count, 4),
        "psnr_top_quality": round(float(np.mean(quantized)), 3),
        "psnr_unquantized": round(float(np.mean(ceiling)), 3),
    }


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """Command-line options of ``aecodec evaluate``."""
    parser.add_argument("model", help="shipped model name or .safetensors path")
    parser.add_argument("dataset", type=Path, help="folder of images, e.g. ../shared/data/kodak")
    parser.add_argument("--manifest", type=Path, help="also store the numbers in this manifest's entry for the model")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON, not as a table")
    parser.add_argument(
        "--probe", action="store_true", help="only bits per index and the unquantized ceiling (no --manifest)"
    )


def evaluation_table(model_name: str, result: dict) -> str:
    """An :func:`evaluation` as a title line and a row per quality: bpp, PSNR, MS-SSIM."""
    rows = [
        [quality, f"{bpp:.4f}", f"{psnr:.2f}", f"{ssim:.4f}"]
        for quality, bpp, psnr, ssim in zip(result["quality"], *(result[m] for m in METRICS))
    ]
    title = f"{model_name} on {result['dataset']} ({result['images']} images)"
    return title + "\n" + text_table(["quality", "bpp", "PSNR dB", "MS-SSIM"], rows)


def run_evaluate(args: argparse.Namespace) -> int:
    """Entry point of ``aecodec evaluate``: prints (and optionally records) the model's measured curve."""
    model = resolve_model(args.model)
    if args.probe:
        print(json.dumps(probe(model, args.dataset), indent=1))
        return 0
    result = evaluation(model, args.dataset)
    if args.manifest:
        record_in_manifest(args.manifest, model.name, {"evaluation": result}, replace=False)
    print(json.dumps(result, indent=1) if args.json else evaluation_table(model.name, result))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aecodec evaluate", description=__doc__.splitlines()[0])
    add_evaluate_arguments(parser)
    return run_evaluate(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
