"""Peak resident memory of this process, resettable on Linux so that one step's own peak can be read."""

import contextlib
import resource
from pathlib import Path


def peak_rss_mb() -> float:
    """Peak resident set size in MiB since the process started or the last :func:`reset_peak_rss`."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> None:
    """Restart the peak from the current RSS (Linux ``clear_refs``); elsewhere the peak only grows."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
