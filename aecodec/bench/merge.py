"""Several benchmark runs of the same codecs on different images, read back and joined into one run.

A top-effort encode takes minutes, so a benchmark of a whole dataset may be run in parts (an image or
a few per run, several runs side by side). Every image is still measured with every codec side by
side in its run; joining the runs' ``results.json`` gives the per-quality means, BD-rates and tables
one run over all the images would have given (timings come from several processes: compare them as
ratios within a run). The runs must agree on the codecs, their descriptions and qualities, the
timing repeats and threads; an image may appear in one run only.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from aecodec.bench.runner import MERGED_DATASETS, BenchRun, CodecResult, ImageResult
from aecodec.errors import InputError

IMAGE_FIELDS = ("image", "quality", "num_bytes", "bpp", "psnr", "ms_ssim", "encode_s", "decode_s", "num_pixels")


def _results_path(path: str | Path) -> Path:
    """``path`` itself, or the ``results.json`` in it when it is a benchmark's output folder."""
    path = Path(path)
    return path / "results.json" if path.is_dir() else path


def _image_result(row: Any, source: Path) -> ImageResult:
    """One per-image row of a results document (null MS-SSIM read as nan, as the run had it)."""
    if not isinstance(row, dict) or not set(IMAGE_FIELDS) <= set(row):
        raise InputError(f"{source}: a per-image row lacks some of {', '.join(IMAGE_FIELDS)}")
    values = {name: row[name] for name in IMAGE_FIELDS}
    if values["ms_ssim"] is None:
        values["ms_ssim"] = math.nan
    numbers = [values[name] for name in IMAGE_FIELDS[1:]]
    if not isinstance(values["image"], str) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in numbers
    ):
        raise InputError(f"{source}: a per-image row has a value of the wrong type")
    return ImageResult(**values)


def load_run(path: str | Path) -> BenchRun:
    """A finished run read back from its ``results.json`` (or the folder holding it); InputError if unreadable."""
    source = _results_path(path)
    try:
        document = json.loads(source.read_text())
        meta, entries = document["meta"], document["codecs"]
        run = BenchRun(
            dataset=str(meta["dataset"]),
            image_names=[str(name) for name in meta["images"]],
            repeats=int(meta["repeats"]),
            torch_threads=int(meta["torch_threads"]),
            cpu_count=meta["cpu_count"],
            codecs=[
                CodecResult(
                    str(entry["name"]),
                    str(entry["description"]),
                    [int(q) for q in entry["results"]["quality"]],
                    [_image_result(row, source) for row in entry["per_image"]],
                )
                for entry in entries
            ],
        )
    except InputError:
        raise
    except OSError as exc:
        raise InputError(f"cannot read benchmark results {source}: {exc.strerror or exc}") from None
    except (ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
        raise InputError(f"{source} is not a benchmark's results.json ({type(exc).__name__}: {exc})") from None
    for codec in run.codecs:
        measured = {(r.image, r.quality) for r in codec.images}
        expected = {(image, q) for image in run.image_names for q in codec.qualities}
        if measured != expected or len(codec.images) != len(expected):
            raise InputError(f"{source}: {codec.name} does not have one result per image and quality")
    return run


def _agreeing(runs: list[BenchRun], what: str, value: Any) -> None:
    """InputError unless every run gives the same ``value(run)``, naming ``what`` differs."""
    values = {json.dumps(value(run)) for run in runs}
    if len(values) > 1:
        raise InputError(f"the runs differ in {what}: {' / '.join(sorted(values))}")


def merge_runs(runs: list[BenchRun]) -> BenchRun:
    """One run over all the runs' images, in the order given; InputError where the runs cannot be joined."""
    if not runs:
        raise InputError("no benchmark runs to merge")
    _agreeing(runs, "codecs", lambda run: [(c.name, c.description, c.qualities) for c in run.codecs])
    _agreeing(runs, "timing repeats and threads", lambda run: (run.repeats, run.torch_threads))
    names = [name for run in runs for name in run.image_names]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InputError(f"images measured in more than one run: {', '.join(repeated)}")
    codecs = []
    for position, first in enumerate(runs[0].codecs):
        images = [r for run in runs for r in run.codecs[position].images]
        images.sort(key=lambda r: first.qualities.index(r.quality))  # quality-major, as a run keeps them
        codecs.append(CodecResult(first.name, first.description, first.qualities, images))
    datasets = list(dict.fromkeys(run.dataset for run in runs))
    counts = {run.cpu_count for run in runs}
    return BenchRun(
        dataset=MERGED_DATASETS.join(datasets),
        image_names=names,
        repeats=runs[0].repeats,
        torch_threads=runs[0].torch_threads,
        cpu_count=counts.pop() if len(counts) == 1 else None,
        codecs=codecs,
    )
