"""Encoder efforts 3 and up: the residual coded toward what the post-filter will make of its decode.

RDOQ weighs each coefficient's error in the unfiltered decode ``d``, but the viewer sees ``F(d)``,
and the filter undoes some errors and not others. One Gauss-Newton step on ``|F(d) - x|^2`` with
the filter's Jacobian ``J`` kept in the gradient and taken as the identity in the curvature says that
near a decode ``d``, the filtered error is, up to a constant, the plain squared error to the target
``x' = d - J^T (F(d) - x)``. Coding the residual against ``x'`` instead of the original ``x`` lets
RDOQ drop what the filter restores and keep what it cannot; repeated from each new decode, a few
passes gain 2-3% BD-rate (research/residual/README.md). The decoder is unchanged.
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from aecodec.models.postfilter import FilterTuning, PostFilter, one_onednn_thread

# Rows of the image differentiated at a time: the activations and their gradients of a two-block
# filter take ~2 KB per pixel. Each strip recomputes the filter's halo on both sides.
STRIP_PIXELS = 1 << 16
MIN_STRIP_ROWS = 32


def filter_target(
    postfilter: PostFilter,
    decoded: np.ndarray,
    original: np.ndarray,
    quality: int,
    tuning: FilterTuning | None = None,
) -> np.ndarray:
    """The target ``d - J^T (F(d) - x)`` (H, W, 3) int16 for an unfiltered decode ``d`` ((H, W, 3) uint8) and the
    original ``x`` (H, W, 3) in 8-bit units (uint8, or float where the encoder aims elsewhere), with the filter
    ``F`` the decoder applies at ``quality`` (and ``tuning``)."""
    gain = float(postfilter.gain[quality - 1]) if tuning is None else tuning.gain
    height, width = decoded.shape[:2]
    rows, q = max(MIN_STRIP_ROWS, STRIP_PIXELS // width), torch.tensor([quality])

    def strip_gradient(strip: tuple[int, int, int, int]) -> tuple[slice, np.ndarray]:
        """J^T (F(d) - x) of a strip's own output rows, over the input rows they depend on."""
        low, start, stop, high = strip
        d = torch.from_numpy(decoded[low:high].astype(np.float32) / 255).permute(2, 0, 1)[None].requires_grad_()
        filtered = (d + gain * postfilter.correction(d, q, tuning))[:, :, start - low : stop - low]
        error = 255 * filtered.detach() - torch.from_numpy(original[start:stop].astype(np.float32)).permute(2, 0, 1)
        (gradient,) = torch.autograd.grad(filtered, d, error)  # in 8-bit units: d/255 in, error in 8-bit units
        return slice(low, high), gradient[0].permute(1, 2, 0).numpy()

    target = decoded.astype(np.float32)
    with one_onednn_thread() as threads, torch.enable_grad(), ThreadPoolExecutor(max(1, threads)) as pool:
        for lines, gradient in pool.map(strip_gradient, postfilter.strips(height, rows)):
            target[lines] -= gradient  # strips overlap in their halos: their gradients add
    return np.round(target).astype(np.int16)
