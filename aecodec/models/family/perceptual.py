"""Optional perceptual distance: ST-LPIPS (shift-tolerant LPIPS, Ghildyal & Liu 2022), AlexNet trunk.

Comes from the optional ``stlpips-pytorch`` wheel, which ships its weights (nothing is downloaded)
but imports torchvision, IPython and torchsummary without declaring them. Where any of it is
missing, callers get ``None`` and a one-line warning, and train without the perceptual term.
"""

import warnings
from functools import cache

from torch import Tensor, nn


@cache
def _st_lpips_alex(device: str) -> nn.Module | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torchvision's "pretrained is deprecated" noise
            from stlpips_pytorch import stlpips

            metric = stlpips.LPIPS(net="alex", variant="shift_tolerant", verbose=False)
    except (ImportError, OSError, RuntimeError) as exc:
        message = f"ST-LPIPS unavailable ({type(exc).__name__}: {exc}); training without a perceptual loss"
        warnings.warn(message, stacklevel=2)
        return None
    return metric.eval().requires_grad_(False).to(device)


def st_lpips(x: Tensor, y: Tensor) -> Tensor | None:
    """Mean ST-LPIPS distance between [0, 1] image batches (differentiable), or None if unavailable."""
    metric = _st_lpips_alex(str(x.device))
    return None if metric is None else metric(x, y, normalize=True).mean()
