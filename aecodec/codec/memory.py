"""Peak memory of large images: freed work memory handed back to the system between and within phases.

glibc keeps freed heap pages, and raises its mmap threshold each time a large block is freed (up to
32 MiB), so the thousands of work arrays of a large image's tiles and residual passes come from a
heap that fragments and grows. For images of at least ``LARGE_IMAGE_PIXELS``, the codec returns the
heap's free pages to the system after each tile and before the residual passes (``malloc_trim``),
and holds the threshold at 1 MiB during those passes, so every larger array there is mapped on its
own and unmapped when freed. Not around the networks: their buffers, mapped afresh each time, made
a 24 MP encode 1.9x slower. Measured with ``python -m aecodec.bench.large --sizes 24``: README.
"""

import ctypes
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

LARGE_IMAGE_PIXELS = 4_000_000  # smaller images keep the allocator as it is
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
_PASSES_THRESHOLD = 1 << 20
_STEADY_THRESHOLD = 32 << 20  # where glibc's own threshold ends up after the first large free


@cache
def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (it has ``malloc_trim``), else None."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None)
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


def release(width: int, height: int) -> None:
    """Hand the heap's free pages back to the system, during the work of a large ``width`` x ``height`` image."""
    libc = _glibc() if width * height >= LARGE_IMAGE_PIXELS else None
    if libc is not None:
        libc.malloc_trim(0)


@contextmanager
def unfragmented(width: int, height: int) -> Iterator[None]:
    """Around the residual passes of a large image: free pages released first, the mmap threshold at 1 MiB within."""
    libc = _glibc() if width * height >= LARGE_IMAGE_PIXELS else None
    if libc is None:
        yield
        return
    libc.malloc_trim(0)
    libc.mallopt(_M_MMAP_THRESHOLD, _PASSES_THRESHOLD)
    try:
        yield
    finally:
        libc.mallopt(_M_MMAP_THRESHOLD, _STEADY_THRESHOLD)
