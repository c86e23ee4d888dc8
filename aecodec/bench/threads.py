"""One thread budget for the benchmark: torch, libavif and libjxl each get the same count, never more
threads than the cores this process may use (a second busy process already shares them)."""

from __future__ import annotations

import contextlib
import importlib
import math
import os
from pathlib import Path

from aecodec.codec.threads import set_threads

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
# Thread counts that Pillow plugins read as module settings (AVIF: encoder and decoder; JXL: decoder).
PLUGIN_SETTINGS = (("PIL.AvifImagePlugin", "DEFAULT_MAX_THREADS"), ("pillow_jxl.JpegXLImagePlugin", "DECODE_THREADS"))


def usable_cores() -> int:
    """CPUs this process may run on: its affinity mask, within a cgroup (container) CPU quota if set."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()
        return min(cores, max(1, math.floor(int(quota) / int(period))))
    except (OSError, ValueError):  # no cgroup v2 file, or "max" (no quota)
        return cores


def use_threads(requested: int | None = None) -> int:
    """Run torch, numpy's BLAS and the Pillow plugins' settings on `requested` threads (default and cap: usable cores).

    The JXL encoder takes its count per call instead (`get_codec(name, threads)`); returns the count.
    """
    count = set_threads(min(requested or usable_cores(), usable_cores()))
    for module, setting in PLUGIN_SETTINGS:
        with contextlib.suppress(ImportError):  # Pillow before 11.2 has no AVIF plugin; JXL's is optional
            setattr(importlib.import_module(module), setting, count)
    return count
