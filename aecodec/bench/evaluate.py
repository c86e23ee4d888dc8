"""Measure one codec model on a folder of images and record the numbers in a model manifest.

``aecodec evaluate MODEL DIR [--manifest FILE]`` codes every image at every quality of the model
(real file sizes, PSNR and MS-SSIM on 8-bit RGB, per-image means); it is how the shipped models'
manifest gets its Kodak figures. ``aecodec export --evaluate DIR`` does the same for a new model;
the manifest writer is :func:`aecodec.training.export.record_in_manifest`.
"""

import argparse
import json
from pathlib import Path

from aecodec.bench.baselines import AecAdapter
from aecodec.bench.datasets import load_dataset
from aecodec.bench.runner import run_benchmark
from aecodec.codec.api import Codec
from aecodec.models.model_files import CodecModel, resolve_model
from aecodec.training.export import record_in_manifest

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aecodec evaluate", description=__doc__.splitlines()[0])
    add_evaluate_arguments(parser)
    return run_evaluate(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
