"""``aecodec export``: a training checkpoint to a model file, optionally measured and recorded in a manifest.

The command joins two layers that do not import each other: the exporter (:mod:`aecodec.training.export`)
and, for ``--evaluate DIR``, the benchmark's measurement (:mod:`aecodec.bench.evaluate`).
"""

import argparse
import json
from pathlib import Path


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    """Command-line options of ``aecodec export``."""
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("out", type=Path, help="model file to write (.safetensors)")
    parser.add_argument("--name", required=True, help="model name written into .aec headers (<= 16 chars)")
    parser.add_argument(
        "--calibration", type=Path, required=True, help="folder of images to calibrate the integer prior"
    )
    parser.add_argument(
        "--manifest", type=Path, help="also record the model in this manifest.json (created if missing)"
    )
    parser.add_argument("--default", action="store_true", help="with --manifest: make it the default model")
    parser.add_argument(
        "--evaluate",
        type=Path,
        help="code every image of this folder (e.g. Kodak) at every quality and record the mean bpp, PSNR and MS-SSIM",
    )


def run_export(args: argparse.Namespace) -> int:
    """Entry point of ``aecodec export``: writes the model file and prints its manifest entry."""
    from aecodec.models.model_files import load_model_file
    from aecodec.training.export import export_checkpoint, record_in_manifest

    entry = export_checkpoint(args.checkpoint, args.name, args.calibration, args.out)
    if args.evaluate:
        from aecodec.bench.evaluate import evaluation

        entry["evaluation"] = evaluation(load_model_file(args.out), args.evaluate)
    if args.manifest:
        record_in_manifest(args.manifest, args.name, entry, default=args.default)
    print(json.dumps(entry, indent=1))
    return 0
