"""Measure one codec model on a folder of images and record the numbers in a model manifest.

``aecodec evaluate MODEL DIR [--manifest FILE] [--json]`` codes every image at every quality of the
model (real file sizes, PSNR and MS-SSIM on 8-bit RGB, per-image means) and prints a table (JSON with
``--json``); it is how the shipped models' manifest gets its Kodak figures. ``aecodec export
--evaluate DIR`` does the same for a new model; the manifest writer is
:func:`aecodec.training.export.record_in_manifest`.
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


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """Command-line options of ``aecodec evaluate``."""
    parser.add_argument("model", help="shipped model name or .safetensors path")
    parser.add_argument("dataset", type=Path, help="folder of images, e.g. ../shared/data/kodak")
    parser.add_argument("--manifest", type=Path, help="also store the numbers in this manifest's entry for the model")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON, not as a table")


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
