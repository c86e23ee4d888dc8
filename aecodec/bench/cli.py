"""Command line of the RD benchmark: `aecodec bench ...` or `python -m aecodec.bench ...`.

The main CLI wires it in with `add_bench_arguments(subparser)` and `run_bench(args)`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from aecodec.bench.anchors import load_anchors
from aecodec.bench.baselines import CODEC_NAMES, AecAdapter, CodecUnavailable, CodecUnderTest, get_codec
from aecodec.bench.datasets import DatasetImage, load_dataset
from aecodec.bench.merge import load_run, merge_runs
from aecodec.bench.report import DEFAULT_RATE_WINDOW, DEFAULT_REFERENCES, ReportInputs, write_report
from aecodec.bench.runner import run_benchmark
from aecodec.bench.threads import usable_cores, use_threads
from aecodec.errors import AecError, InputError

DEFAULT_CODECS = "aec,jpeg,webp,avif,jxl"


def _csv(kind: type) -> Callable[[str], list]:
    """An argparse type for comma-separated values of `kind`."""

    def parse(text: str) -> list:
        try:
            return [kind(item) for item in text.split(",") if item.strip()]
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__}s: {text!r}") from exc

    return parse


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _rate_window(text: str) -> tuple[float, float]:
    values = _csv(float)(text)
    if len(values) != 2 or not 0 < values[0] < values[1]:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH bpp with 0 < LOW < HIGH, got {text!r}")
    return values[0], values[1]


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the benchmark's options to `parser` (a subcommand parser or a standalone one)."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", help="folder of test images (e.g. ../shared/data/kodak)")
    source.add_argument(
        "--merge",
        nargs="+",
        metavar="RUN",
        help="instead of measuring, report on earlier runs of the same codecs on different images, joined "
        "(their results.json or output folders)",
    )
    parser.add_argument(
        "--codecs",
        type=_csv(str),
        default=DEFAULT_CODECS.split(","),
        help=f"comma-separated, from {', '.join(CODEC_NAMES)} (default: {DEFAULT_CODECS}); "
        "unavailable ones are skipped with a message",
    )
    parser.add_argument("--out", default="bench_out", help="output folder (default: %(default)s)")
    parser.add_argument("--anchors", help="published curves JSON (e.g. ../shared/anchors/kodak_published.json)")
    parser.add_argument("--limit", type=_positive, help="use only the first N images")
    parser.add_argument("--repeats", type=_positive, default=1, help="timing runs per image, median kept")
    parser.add_argument(
        "--qualities",
        type=_csv(int),
        help="comma-separated quality settings for every codec (default: each codec's own)",
    )
    parser.add_argument(
        "--aec-qualities",
        type=_csv(int),
        help="comma-separated quality settings of the aec codecs only (default: all the model offers)",
    )
    parser.add_argument(
        "--references",
        type=_csv(str),
        default=list(DEFAULT_REFERENCES),
        help="codecs the BD-rates are taken against, measured or published (default: %(default)s)",
    )
    parser.add_argument("--crop-image", help="image file name for crops.png (default: the first image)")
    parser.add_argument(
        "--crop-bpp", type=_csv(float), default=[0.25, 0.5], help="target bpps of the crop rows (default: 0.25,0.5)"
    )
    parser.add_argument(
        "--rate-window",
        type=_rate_window,
        default=DEFAULT_RATE_WINDOW,
        metavar="LOW,HIGH",
        help="bpp window of the report tables over a fixed rate window (default: {:g},{:g})".format(
            *DEFAULT_RATE_WINDOW
        ),
    )
    parser.add_argument(
        "--threads",
        type=_positive,
        help="threads for torch and the image libraries (default: all usable cores, "
        f"here {usable_cores()}; more are capped to that)",
    )
    parser.add_argument(
        "--device", default="cpu", help="device of our encoder's networks and filter tuning, e.g. cuda (default cpu)"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def resolve_codecs(
    names: Sequence[str], threads: int = 0, device: str = "cpu"
) -> tuple[list[CodecUnderTest], list[str]]:
    """Build the named codecs (encoders on `threads`, 0: default; ours on `device`); unavailable ones come back as
    one-line reasons."""
    codecs, skipped = [], []
    for name in names:
        try:
            codecs.append(get_codec(name, threads, device))
        except CodecUnavailable as exc:
            skipped.append(str(exc))
    return codecs, skipped


def _crop_image(images: Sequence[DatasetImage], name: str | None) -> DatasetImage:
    for image in images:
        if name in (None, image.name):
            return image
    raise InputError(f"crop image {name!r} is not among the benchmarked images")


def _report_on_runs(args: argparse.Namespace) -> int:
    """Write the report of the earlier runs ``args.merge`` joined (no crop grid: the runs kept no decodes)."""
    try:
        if args.crop_image:
            raise InputError("--crop-image needs decodes, which merged runs do not keep")
        run = merge_runs([load_run(path) for path in args.merge])
        anchors = load_anchors(args.anchors) if args.anchors else []
    except AecError as exc:
        print(f"aecodec bench: error: {exc}", file=sys.stderr)
        return 2
    inputs = ReportInputs(None, args.crop_bpp, anchors, (), args.rate_window, args.references)
    for path in write_report(run, inputs, args.out):
        print(path)
    return 0


def run_bench(args: argparse.Namespace) -> int:
    """Run the benchmark described by parsed `args` (or join earlier runs, ``--merge``), write the report; 0 on
    success, 2 on bad input."""
    if args.merge:
        return _report_on_runs(args)
    threads = use_threads(args.threads)
    if args.threads and threads < args.threads:
        print(f"aecodec bench: using {threads} threads, the cores this process may use", file=sys.stderr)
    try:
        images = load_dataset(args.dataset, args.limit)
        anchors = load_anchors(args.anchors) if args.anchors else []
        codecs, skipped = resolve_codecs(args.codecs, threads, args.device)
        for codec in codecs:
            if isinstance(codec, AecAdapter) and args.aec_qualities:
                codec.select(args.aec_qualities)
        crop_image = _crop_image(images, args.crop_image)
    except (AecError, ValueError) as exc:
        print(f"aecodec bench: error: {exc}", file=sys.stderr)
        return 2
    for reason in skipped:
        print(f"skipping {reason}", file=sys.stderr)
    if not codecs:
        print("aecodec bench: error: no codec available to benchmark", file=sys.stderr)
        return 2
    run = run_benchmark(
        codecs, images, str(args.dataset), args.repeats, args.qualities, not args.no_progress, [crop_image.name]
    )
    inputs = ReportInputs(crop_image, args.crop_bpp, anchors, skipped, args.rate_window, args.references)
    for path in write_report(run, inputs, args.out):
        print(path)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry point (`python -m aecodec.bench`)."""
    parser = argparse.ArgumentParser(prog="aecodec bench", description="Rate-distortion benchmark of image codecs.")
    add_bench_arguments(parser)
    return run_bench(parser.parse_args(argv))
