"""Compare trained family members as codecs on a dataset (Kodak) with the project's RD benchmark.

``python -m aecodec.models.family.compare --runs runs/ae runs/vae ... --fit-data TRAIN_DIR
--dataset ../shared/data/kodak --out docs/models`` writes report.md (the models page), RD plots,
a crop grid and results JSON; JPEG is measured alongside as the BD-rate reference.
"""

import argparse
from collections.abc import Sequence
from pathlib import Path

from aecodec.benchmarks.baselines import get_codec
from aecodec.benchmarks.datasets import load_dataset
from aecodec.benchmarks.report import ReportInputs, write_report
from aecodec.benchmarks.runner import run_benchmark
from aecodec.models.family.codec import codec_from_checkpoint
from aecodec.models.family.trainer import CHECKPOINT


def compare_members(runs: Sequence[str | Path], fit_data: str | Path, dataset: str | Path, out: str | Path,
                    limit: int | None = None, iterations: int = 300) -> list[Path]:
    """Benchmark each run folder's member (codec fitted on ``fit_data``) and JPEG on ``dataset``; report paths."""
    codecs = [codec_from_checkpoint(Path(run) / CHECKPOINT, fit_data, iterations=iterations) for run in runs]
    codecs.append(get_codec("jpeg"))
    images = load_dataset(dataset, limit)
    run = run_benchmark(codecs, images, str(dataset))
    return write_report(run, ReportInputs(codecs, crop_image=images[0]), out)


def main(argv: list[str] | None = None) -> int:
    prog = "python -m aecodec.models.family.compare"
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", required=True, help="training run folders (each with checkpoint.pt)")
    parser.add_argument("--fit-data", required=True, help="training images to fit the entropy models on (not Kodak)")
    parser.add_argument("--dataset", required=True, help="evaluation images, e.g. Kodak")
    parser.add_argument("--out", required=True, help="report folder")
    parser.add_argument("--limit", type=int, help="only the first N images of the dataset")
    args = parser.parse_args(argv)
    for path in compare_members(args.runs, args.fit_data, args.dataset, args.out, args.limit):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
