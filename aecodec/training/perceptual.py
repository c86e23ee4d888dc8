"""Optional perceptual distance: ST-LPIPS (shift-tolerant LPIPS, Ghildyal & Liu 2022), AlexNet or VGG trunk.

Reports score with the AlexNet trunk (the usual LPIPS metric). VQ-GAN trains with the VGG trunk, as
the paper's LPIPS loss does, so that its score is not measured by the very network it minimised.

Comes from the optional ``stlpips-pytorch`` wheel, which ships its weights (nothing is downloaded)
but imports torchvision, IPython and torchsummary without declaring them. Where any of it is
missing, callers get ``None`` and a one-line warning, and train without the perceptual term.
"""

import warnings
from functools import cache
from typing import Literal

from torch import Tensor, nn

Trunk = Literal["alex", "vgg"]
TRUNKS: tuple[Trunk, ...] = ("alex", "vgg")


@cache
def _st_lpips(net: Trunk, device: str) -> nn.Module | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torchvision's "pretrained is deprecated" noise
            from stlpips_pytorch import stlpips

            metric = stlpips.LPIPS(net=net, variant="shift_tolerant", verbose=False)
    except (ImportError, OSError, RuntimeError) as exc:
        message = f"ST-LPIPS unavailable ({type(exc).__name__}: {exc}); training without a perceptual loss"
        warnings.warn(message, stacklevel=2)
        return None
    return metric.eval().requires_grad_(False).to(device)


def st_lpips(x: Tensor, y: Tensor, net: Trunk = "alex") -> Tensor | None:
    """Mean ST-LPIPS distance between [0, 1] image batches (differentiable), or None if unavailable."""
    metric = _st_lpips(net, str(x.device))
    return None if metric is None else metric(x, y, normalize=True).mean()
