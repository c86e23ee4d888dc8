"""Measure one codec model on a folder of images and record the numbers in a model manifest.

``aecodec evaluate MODEL DIR [--manifest FILE]`` codes every image at every quality of the model
(real file sizes, PSNR and MS-SSIM on 8-bit RGB, per-image means); it is how the shipped models'
manifest gets its Kodak figures. ``aecodec export --evaluate DIR`` does the same for a new model.
"""

import argparse
import json
from pathlib import Path

from aecodec.benchmarks.baselines import AecAdapter
from aecodec.benchmarks.datasets import load_dataset
from aecodec.benchmarks.runner import run_benchmark
from aecodec.codec.api import Codec
from aecodec.models.registry import CodecModel, resolve_model

METRICS = ("bpp", "psnr", "ms_ssim")


def evaluation(model: CodecModel, folder: Path, progress: bool = True) -> dict:
    """Mean bpp, PSNR and MS-SSIM per quality of ``model`` over the images of ``folder``."""
    images = load_dataset(folder)
    run = run_benchmark([AecAdapter(Codec(model), name=model.name)], images, folder.name, progress=progress)
    result = run.codecs[0]
    return {"dataset": folder.name, "images": len(images), "quality": result.qualities,
            **{metric: [round(value, 4) for value in result.mean(metric)] for metric in METRICS}}


def record_in_manifest(manifest: Path, name: str, fields: dict, replace: bool = True, default: bool = False) -> None:
    """Write a model's manifest entry (``replace``) or add ``fields`` to it; optionally make it the default."""
    data = json.loads(manifest.read_text()) if manifest.exists() else {"default": name, "models": {}}
    if replace or name not in data["models"]:
        data["models"][name] = fields
    else:
        data["models"][name].update(fields)
    if default:
        data["default"] = name
    manifest.write_text(json.dumps(data, indent=1) + "\n")


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """Command-line options of ``aecodec evaluate``."""
    parser.add_argument("model", help="shipped model name or .safetensors path")
    parser.add_argument("dataset", type=Path, help="folder of images, e.g. ../shared/data/kodak")
    parser.add_argument("--manifest", type=Path, help="also store the numbers in this manifest's entry for the model")


def run_evaluate(args: argparse.Namespace) -> int:
    """Entry point of ``aecodec evaluate``: prints (and optionally records) the model's measured curve."""
    model = resolve_model(args.model)
    result = evaluation(model, args.dataset)
    if args.manifest:
        record_in_manifest(args.manifest, model.name, {"evaluation": result}, replace=False)
    print(json.dumps(result, indent=1))
    return 0
