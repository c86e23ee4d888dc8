"""The codec's one thread count reaches both of its pools: torch's and numpy's BLAS."""

import numpy as np
import torch
from threadpoolctl import threadpool_info, threadpool_limits

from aecodec.codec.threads import set_threads


def blas_threads() -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_set_threads_limits_torch_and_numpy_blas() -> None:
    np.ones((64, 64)) @ np.ones((64, 64))  # numpy's BLAS is loaded
    before = torch.get_num_threads()
    with threadpool_limits():  # restores every pool's count on exit
        try:
            assert set_threads(1) == 1
            assert torch.get_num_threads() == 1
            assert blas_threads() and set(blas_threads()) == {1}
        finally:
            torch.set_num_threads(before)
