"""The benchmark report: results JSON, RD plots, crop grid and report.md with BD-rate and speed tables.

BD-rates compare each curve (measured, then published) with the references asked for, by default
JPEG (our measured `jpeg`, else the published "JPEG" anchor) and our default codec `aec`. Each
BD-rate says the quality interval it averages over and whether a saturated curve shapes it; a second
table per metric compares mean quality over a fixed rate window, where saturation counts against a
codec; a third gives our codecs' BD-rates image by image against the measured references.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aecodec.bench.bdrate import bd_rate, saturation_start, shared_range, window_mean
from aecodec.bench.crops import write_crop_grid
from aecodec.bench.curves import RDCurve
from aecodec.bench.datasets import DatasetImage
from aecodec.bench.plots import is_ours, plot_rd
from aecodec.bench.results_json import write_results
from aecodec.bench.runner import MERGED_DATASETS, BenchRun, CodecResult

METRIC_TITLES = {"psnr": "PSNR (RGB)", "ms-ssim": "MS-SSIM, in dB"}
# Fixed rate window (bpp) of the window tables: on Kodak every measured codec reaches down to 0.25 bpp.
DEFAULT_RATE_WINDOW = (0.25, 1.5)
DEFAULT_REFERENCES = ("jpeg", "aec")
BD_NOTE = (
    "Piecewise-cubic (PCHIP) Bjontegaard delta rate, in % of the reference's bits at equal quality "
    "(negative: fewer bits), averaged over the quality interval where both curves overlap, given in "
    "each cell. †: the interval reaches a curve's saturated tail, where a BD-rate grows without bound. "
    "Saturates from: the point after which every step gains under 0.1 dB per 0.1 bpp. "
    "n/a: no overlap, too few points, or metric not published."
)

PER_IMAGE_NOTE = (
    "Each image's BD-rate against a reference measured in the same run, over the PSNR interval both of that "
    "image's curves cover (given in each cell); the mean is over the images where it is defined. The "
    "tables above pool the images first (a curve of per-quality means), so the two can differ."
)


@dataclass(frozen=True)
class ReportInputs:
    """What a report needs besides the run: the crop image (benchmarked among ``crop_images``; None: no crop
    grid, as for merged runs), anchors, the references' names, notes."""

    crop_image: DatasetImage | None
    crop_targets: Sequence[float] = (0.25, 0.5)
    anchors: Sequence[RDCurve] = ()
    skipped: Sequence[str] = ()
    rate_window: tuple[float, float] = DEFAULT_RATE_WINDOW
    references: Sequence[str] = DEFAULT_REFERENCES


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table as lines: header, separator, one line per row."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _saturation(curve: RDCurve, metric: str) -> tuple[float, float] | None:
    quality = curve.quality(metric)
    if quality is None or not all(math.isfinite(q) for q in quality):
        return None
    return saturation_start(curve.bpp, quality)


def _bd(curve: RDCurve, reference: RDCurve, metric: str) -> tuple[float, float, float] | None:
    """BD-rate of ``curve`` against ``reference`` and the quality interval it covers; None where undefined."""
    quality, ref_quality = curve.quality(metric), reference.quality(metric)
    if quality is None or ref_quality is None:
        return None
    try:
        return bd_rate(reference.bpp, ref_quality, curve.bpp, quality), *shared_range(ref_quality, quality)
    except ValueError:
        return None


def _bd_text(
    bd: tuple[float, float, float] | None, curve: RDCurve, reference: RDCurve, metric: str, digits: int
) -> str:
    """:func:`_bd`'s result as a table cell: the value, its interval, † if a saturated tail shapes it."""
    if bd is None:
        return "n/a"
    value, lo, hi = bd
    saturated = any(s is not None and s[1] < hi for s in (_saturation(curve, metric), _saturation(reference, metric)))
    return f"{value:+.{digits}f}% over {lo:.1f}-{hi:.1f} dB" + (" †" if saturated else "")


def _bd_cell(curve: RDCurve, reference: RDCurve, metric: str) -> str:
    return _bd_text(_bd(curve, reference, metric), curve, reference, metric, 1)


def _saturation_cell(curve: RDCurve, metric: str) -> str:
    start = _saturation(curve, metric)
    return "-" if start is None else f"{start[0]:.2f} bpp ({start[1]:.2f} dB)"


def references(
    measured: Sequence[RDCurve], anchors: Sequence[RDCurve], names: Sequence[str] = DEFAULT_REFERENCES
) -> list[RDCurve]:
    """The BD-rate references named: each a measured curve of that name, else a published one whatever its case
    ("jpeg" finds the published "JPEG"); names that match neither are left out."""
    found = [
        next((c for c in measured if c.name == name), None)
        or next((c for c in anchors if c.name.lower() == name.lower()), None)
        for name in names
    ]
    return [c for c in found if c is not None]


def bd_table(curves: Sequence[RDCurve], refs: Sequence[RDCurve], metric: str) -> list[str]:
    """Markdown table of BD-rate (%) of every curve against each reference, with its interval, for one metric."""
    header = ["codec", "saturates from", *(f"vs {r.label}" for r in refs)]
    rows = [[c.label, _saturation_cell(c, metric), *(_bd_cell(c, r, metric) for r in refs)] for c in curves]
    return markdown_table(header, rows)


def per_image_table(results: Sequence[CodecResult], images: Sequence[str], refs: Sequence[CodecResult]) -> list[str]:
    """Markdown table of each of our codecs' PSNR BD-rate against each measured reference, image by image (each
    over its own interval), and their mean over the images where it is defined."""
    pairs = [(ours, ref) for ours in results if is_ours(ours.name) for ref in refs if ref is not ours]
    values: list[list[float]] = [[] for _ in pairs]
    rows = []
    for image in images:
        row = [image]
        for column, (ours, ref) in zip(values, pairs):
            curve, reference = ours.image_curve(image), ref.image_curve(image)
            bd = _bd(curve, reference, "psnr")
            column += [] if bd is None else [bd[0]]
            row.append(_bd_text(bd, curve, reference, "psnr", 2))
        rows.append(row)
    means = [f"**{sum(v) / len(v):+.2f}%** ({len(v)} images)" if v else "n/a" for v in values]
    header = ["image", *(f"{ours.name} vs {ref.name}" for ours, ref in pairs)]
    return markdown_table(header, [*rows, ["mean", *means]])


def _window_mean(curve: RDCurve, metric: str, window: tuple[float, float]) -> float | None:
    quality = curve.quality(metric)
    try:
        return None if quality is None else window_mean(curve.bpp, quality, *window)
    except ValueError:
        return None


def _held_flat(bpp: Sequence[float], window: tuple[float, float]) -> str:
    """The parts of `window` outside a curve's measured rates, where the window table holds it flat."""
    (lo, hi), first, last = window, min(bpp), max(bpp)
    parts = [(lo, min(first, hi))] if first > lo else []
    parts += [(max(last, lo), hi)] if last < hi else []
    return ", ".join(f"{a:.2f}-{b:.2f}" for a, b in parts) or "-"


def window_table(
    curves: Sequence[RDCurve], refs: Sequence[RDCurve], metric: str, window: tuple[float, float]
) -> list[str]:
    """Markdown table of each curve's mean quality over a fixed rate window and its gain over each reference."""
    means = [_window_mean(c, metric, window) for c in curves]
    ref_means = [_window_mean(r, metric, window) for r in refs]
    rows = [
        [
            c.label,
            f"{min(c.bpp):.3f}-{max(c.bpp):.3f}",
            _held_flat(c.bpp, window),
            "n/a" if m is None else f"{m:.2f}",
            *("n/a" if m is None or r is None else f"{m - r:+.2f} dB" for r in ref_means),
        ]
        for c, m in zip(curves, means, strict=True)
    ]
    header = ["codec", "measured bpp", "held flat over bpp", "mean dB", *(f"vs {r.label}" for r in refs)]
    return markdown_table(header, rows)


def speed_table(results: Sequence[CodecResult]) -> list[str]:
    """Markdown table of encode/decode throughput (MP/s) and mean milliseconds per image."""
    timings = ("encode_s", "decode_s")
    rows = [
        [
            r.name,
            *(f"{r.megapixels_per_second(t):.3g}" for t in timings),
            *(f"{1e3 * r.seconds_per_image(t):.1f}" for t in timings),
        ]
        for r in results
        if r.images
    ]
    return markdown_table(["codec", "encode MP/s", "decode MP/s", "encode ms/image", "decode ms/image"], rows)


def points_table(result: CodecResult) -> list[str]:
    """Markdown table of one codec's mean bpp, PSNR and MS-SSIM per quality setting."""
    columns = zip(result.qualities, result.mean("bpp"), result.mean("psnr"), result.mean("ms_ssim"), strict=True)
    rows = [[str(q), f"{b:.4f}", f"{p:.2f}", f"{m:.4f}"] for q, b, p, m in columns]
    return markdown_table(["quality", "bpp", "PSNR dB", "MS-SSIM"], rows)


def window_note(window: tuple[float, float]) -> str:
    """What the window table shows and how curves are extended to fill the window."""
    return (
        f"Mean quality over log-rate in the fixed window {window[0]:g}-{window[1]:g} bpp (BD-PSNR over a "
        "common window: vs columns are differences of means, positive: better). Beyond its measured "
        "points a curve is held at its end points' quality: flat past the last point counts saturation, "
        "or a curve that stops early, against a codec; flat below the first point flatters it."
    )


def _codec_list(results: Sequence[CodecResult]) -> str:
    return ", ".join(f"`{r.name}` ({r.description})" for r in results)


def dataset_name(dataset: str) -> str:
    """A run's dataset folder by its last part; merged runs' (joined by ``MERGED_DATASETS``) each so."""
    return ", ".join(Path(part).name for part in dataset.split(MERGED_DATASETS))


def markdown(run: BenchRun, inputs: ReportInputs) -> str:
    """report.md: setup, BD-rate and rate-window tables (PSNR and MS-SSIM), speed, mean RD points, figures."""
    measured = [r.curve() for r in run.codecs]
    curves = [*measured, *inputs.anchors]
    refs = references(measured, inputs.anchors, inputs.references)
    measured_refs = [r for r in run.codecs if any(r.name == c.name and not c.published for c in refs)]
    ours = [r for r in run.codecs if is_ours(r.name)]
    names = ", ".join(inputs.references)
    lines = [
        "# Rate-distortion benchmark",
        "",
        f"Dataset `{run.dataset}`: {len(run.image_names)} images.",
        *([f"Our codec: {_codec_list(ours)}."] if ours else []),
        f"Other codecs: {_codec_list([r for r in run.codecs if r not in ours]) or 'none'}.",
        (
            f"Timing: median of {run.repeats} run(s) per image, torch threads {run.torch_threads} "
            f"(`--threads` gives libavif and libjxl as many), CPU count {run.cpu_count}."
        ),
    ]
    lines += [f"Skipped: {s}" for s in inputs.skipped]
    low, high = inputs.rate_window
    for metric, title in METRIC_TITLES.items():
        lines += ["", f"## BD-rate, {title}", "", BD_NOTE, ""]
        lines += bd_table(curves, refs, metric) if refs else [f"No reference curve ({names}) available."]
        lines += ["", f"## {title} over {low:g}-{high:g} bpp", "", window_note(inputs.rate_window), ""]
        lines += window_table(curves, refs, metric, inputs.rate_window)
    if len(run.image_names) > 1 and ours and measured_refs:
        lines += ["", "## BD-rate per image, PSNR (RGB)", "", PER_IMAGE_NOTE, ""]
        lines += per_image_table(run.codecs, run.image_names, measured_refs)
    lines += ["", "## Speed", ""] + speed_table(run.codecs)
    for result in run.codecs:
        lines += ["", f"## Mean RD points: {result.name}", ""] + points_table(result)
    lines += [
        "",
        "## Figures",
        "",
        "![RD PSNR](rd_psnr.png)",
        "",
        "![RD MS-SSIM](rd_msssim.png)",
        "",
        *(["![Crops](crops.png)", ""] if inputs.crop_image is not None else []),
    ]
    return "\n".join(lines)


def write_report(run: BenchRun, inputs: ReportInputs, out_dir: str | Path) -> list[Path]:
    """Write results JSON, rd_psnr.png, rd_msssim.png, crops.png and report.md; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = write_results(run, out)
    curves = [*(r.curve() for r in run.codecs), *inputs.anchors]
    for metric, name in (("psnr", "rd_psnr.png"), ("ms-ssim", "rd_msssim.png")):
        plot_rd(curves, metric, out / name, title=f"{METRIC_TITLES[metric]} on {dataset_name(run.dataset)}")
        written.append(out / name)
    if inputs.crop_image is not None:
        write_crop_grid(run.codecs, inputs.crop_image, inputs.crop_targets, out / "crops.png")
        written.append(out / "crops.png")
    (out / "report.md").write_text(markdown(run, inputs))
    return [*written, out / "report.md"]
