"""One thread count for every pool the codec computes in: torch's, and the BLAS under numpy's linear algebra.

numpy's OpenBLAS starts a thread per core and spins while it waits for work, whatever torch was told: two
one-thread benchmarks side by side on two cores ran four BLAS threads, the Wiener filter's small least-squares
solves took several times as long, and each encode half again as long (README, Threads and habits).
"""

import torch
from threadpoolctl import threadpool_limits


def set_threads(count: int) -> int:
    """Run torch and numpy's BLAS on ``count`` threads from now on; returns ``count``."""
    torch.set_num_threads(count)
    threadpool_limits(count, user_api="blas")
    return count
