"""The benchmark report: results JSON, RD plots, crop grid and report.md with BD-rate and speed tables.

BD-rates compare each curve (measured, then published) with two references when available: JPEG
(our measured `jpeg`, else the published "JPEG" anchor) and our default codec `aec`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aecodec.bench.baselines import CodecUnderTest
from aecodec.bench.bdrate import bd_rate
from aecodec.bench.crops import write_crop_grid
from aecodec.bench.curves import RDCurve
from aecodec.bench.datasets import DatasetImage
from aecodec.bench.plots import plot_rd
from aecodec.bench.results_json import write_results
from aecodec.bench.runner import BenchRun, CodecResult

METRIC_TITLES = {"psnr": "PSNR (RGB)", "ms-ssim": "MS-SSIM, in dB"}


@dataclass(frozen=True)
class ReportInputs:
    """What a report needs besides the run: codecs (to re-code crops), the crop image, anchors, notes."""

    codecs: Sequence[CodecUnderTest]
    crop_image: DatasetImage
    crop_targets: Sequence[float] = (0.25, 0.5)
    anchors: Sequence[RDCurve] = ()
    skipped: Sequence[str] = ()


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table as lines: header, separator, one line per row."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _bd_cell(curve: RDCurve, reference: RDCurve, metric: str) -> str:
    quality, ref_quality = curve.quality(metric), reference.quality(metric)
    if quality is None or ref_quality is None:
        return "n/a"
    try:
        return f"{bd_rate(reference.bpp, ref_quality, curve.bpp, quality):+.1f}%"
    except ValueError:
        return "n/a"


def references(measured: Sequence[RDCurve], anchors: Sequence[RDCurve]) -> list[RDCurve]:
    """The BD-rate references: JPEG (measured, else published) and `aec` when measured."""
    by_name = {c.name: c for c in anchors} | {c.name: c for c in measured}
    jpeg = by_name.get("jpeg") or by_name.get("JPEG")
    return [c for c in (jpeg, by_name.get("aec")) if c is not None]


def bd_table(curves: Sequence[RDCurve], refs: Sequence[RDCurve], metric: str) -> list[str]:
    """Markdown table of BD-rate (%) of every curve against each reference for one metric."""
    header = ["codec", *(f"vs {r.label}" for r in refs)]
    return markdown_table(header, [[c.label, *(_bd_cell(c, r, metric) for r in refs)] for c in curves])


def speed_table(results: Sequence[CodecResult]) -> list[str]:
    """Markdown table of encode/decode throughput (MP/s) and mean milliseconds per image."""
    timings = ("encode_s", "decode_s")
    rows = [
        [
            r.name,
            *(f"{r.megapixels_per_second(t):.2f}" for t in timings),
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


def markdown(run: BenchRun, inputs: ReportInputs) -> str:
    """report.md: setup, BD-rate tables (PSNR and MS-SSIM), speed, mean RD points, figures."""
    measured = [r.curve() for r in run.codecs]
    curves = [*measured, *inputs.anchors]
    refs = references(measured, inputs.anchors)
    lines = [
        "# Rate-distortion benchmark",
        "",
        f"Dataset `{run.dataset}`: {len(run.image_names)} images. Codecs: "
        + ", ".join(f"`{r.name}` ({r.description})" for r in run.codecs)
        + ".",
        (
            f"Timing: median of {run.repeats} run(s) per image, torch threads {run.torch_threads}, "
            f"CPU count {run.cpu_count}."
        ),
    ]
    lines += [f"Skipped: {s}" for s in inputs.skipped]
    for metric, title in METRIC_TITLES.items():
        lines += ["", f"## BD-rate, {title}", ""]
        lines += [
            (
                "Piecewise-cubic (PCHIP) Bjontegaard delta rate, in % of the reference's bits at equal "
                "quality (negative: fewer bits). n/a: no overlap, too few points, or metric not published."
            ),
            "",
        ]
        lines += bd_table(curves, refs, metric) if refs else ["No reference curve (JPEG or aec) available."]
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
        "![Crops](crops.png)",
        "",
    ]
    return "\n".join(lines)


def write_report(run: BenchRun, inputs: ReportInputs, out_dir: str | Path) -> list[Path]:
    """Write results JSON, rd_psnr.png, rd_msssim.png, crops.png and report.md; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = write_results(run, out)
    curves = [*(r.curve() for r in run.codecs), *inputs.anchors]
    for metric, name in (("psnr", "rd_psnr.png"), ("ms-ssim", "rd_msssim.png")):
        plot_rd(curves, metric, out / name, title=f"{METRIC_TITLES[metric]} on {Path(run.dataset).name}")
        written.append(out / name)
    by_name = {r.name: r for r in run.codecs}
    coded = [(c, by_name[c.name]) for c in inputs.codecs if c.name in by_name]
    write_crop_grid(coded, inputs.crop_image, inputs.crop_targets, out / "crops.png")
    (out / "report.md").write_text(markdown(run, inputs))
    return [*written, out / "crops.png", out / "report.md"]
