"""RD plots (bpp on x): measured curves solid, our codec emphasized, published anchors dashed."""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import count
from pathlib import Path

from matplotlib import colormaps
from matplotlib.figure import Figure

from aecodec.bench.curves import RDCurve

MAX_PLOT_BPP = 2.0
Y_LABELS = {"psnr": "PSNR RGB [dB]", "ms-ssim": "MS-SSIM [dB]  (-10 log10(1 - MS-SSIM))"}


def is_ours(name: str) -> bool:
    """Whether a curve belongs to our codec ("aec", "aec:MODEL", "aec@effort=5", ...), which plots and tables
    emphasize."""
    return name == "aec" or name.startswith(("aec:", "aec@"))


OUR_LINES = ("-", "--", "-.", ":")


def _style(curve: RDCurve, index: int) -> dict:
    """Style of the index-th curve of its kind: ours thick black (solid, then dashed, ...), measured solid,
    published dashed."""
    if is_ours(curve.name):
        line = OUR_LINES[index % len(OUR_LINES)]
        return {"color": "black", "linestyle": line, "linewidth": 2.8, "marker": "o", "markersize": 5, "zorder": 10}
    if curve.published:
        color = colormaps["tab20"](index % 20)
        return {"color": color, "linestyle": "--", "linewidth": 1.0, "marker": ".", "markersize": 3, "alpha": 0.8}
    color = colormaps["tab10"](index % 10)
    return {"color": color, "linestyle": "-", "linewidth": 1.8, "marker": ".", "markersize": 7, "zorder": 5}


def plot_rd(curves: Sequence[RDCurve], metric: str, path: str | Path, title: str = "") -> None:
    """Plot quality (`metric`: "psnr" or "ms-ssim" in dB) against bpp for the curves that have it.

    The x axis ends at the largest measured bpp, at most `MAX_PLOT_BPP`; y fits the visible points.
    """
    drawn = [(c, c.quality(metric)) for c in curves if c.quality(metric) is not None]
    measured = [max(c.bpp) for c, _ in drawn if not c.published]
    x_max = min(MAX_PLOT_BPP, max(measured)) if measured else MAX_PLOT_BPP
    visible = [y for c, ys in drawn for x, y in zip(c.bpp, ys) if x <= x_max and math.isfinite(y)]
    fig = Figure(figsize=(12, 7))
    ax = fig.subplots()
    counters = {kind: count() for kind in ("ours", "published", "measured")}  # each kind cycles its styles
    for curve, ys in drawn:
        kind = "ours" if is_ours(curve.name) else "published" if curve.published else "measured"
        ax.plot(curve.bpp, ys, label=curve.label, **_style(curve, next(counters[kind])))
    ax.set_xlim(0, x_max * 1.02)
    if visible:
        pad = 0.03 * (max(visible) - min(visible) or 1.0)
        ax.set_ylim(min(visible) - pad, max(visible) + pad)
    ax.set_xlabel("bpp (bits per pixel, real file size)")
    ax.set_ylabel(Y_LABELS[metric])
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
