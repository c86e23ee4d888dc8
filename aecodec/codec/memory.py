"""Peak memory of large images: the residual layer's work arrays handed back to the system when freed.

glibc raises its mmap threshold each time a large block is freed (up to 32 MiB), so the thousands of
work arrays of the residual layer's passes on a large image come from the heap, which fragments and
keeps freed pages: a 24 MP compress peaked ~480 MiB higher that way. Around those passes the
threshold is held at 1 MiB, so every larger array is mapped on its own and unmapped when freed; not
around the networks, whose tile-sized buffers would then be mapped afresh each time (40% slower).
"""

import ctypes
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

LARGE_IMAGE_PIXELS = 4_000_000  # smaller images keep the allocator as it is
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
_PASSES_THRESHOLD = 1 << 20
_STEADY_THRESHOLD = 32 << 20  # where glibc's own threshold ends up after the first large free


def _mallopt() -> Callable[[int, int], int] | None:
    """glibc's ``mallopt``, or None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    return getattr(ctypes.CDLL(None), "mallopt", None)


@contextmanager
def unfragmented(width: int, height: int) -> Iterator[None]:
    """Hold glibc's mmap threshold at 1 MiB within the block, for the work of a large ``width`` x ``height`` image."""
    mallopt = _mallopt() if width * height >= LARGE_IMAGE_PIXELS else None
    if mallopt is None:
        yield
        return
    mallopt(_M_MMAP_THRESHOLD, _PASSES_THRESHOLD)
    try:
        yield
    finally:
        mallopt(_M_MMAP_THRESHOLD, _STEADY_THRESHOLD)
