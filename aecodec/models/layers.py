"""Small convolutional building blocks shared by the autoencoders."""

from torch import Tensor, nn


class ResBlock(nn.Module):
    """Pre-activation residual block: x + conv1x1(relu(conv3x3(relu(x))))."""

    def __init__(self, channels: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or channels // 2
        self.body = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(channels, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, channels, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def down(in_ch: int, out_ch: int) -> nn.Conv2d:
    """A stride-2 convolution halving the resolution."""
    return nn.Conv2d(in_ch, out_ch, 4, stride=2, padding=1)


def up(in_ch: int, out_ch: int) -> nn.ConvTranspose2d:
    """A stride-2 transposed convolution doubling the resolution."""
    return nn.ConvTranspose2d(in_ch, out_ch, 4, stride=2, padding=1)


def resize_up(in_ch: int, out_ch: int) -> nn.Sequential:
    """Nearest-neighbour doubling then a 3x3 convolution: no per-phase kernels, so no checkerboard."""
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(in_ch, out_ch, 3, padding=1))


# How a decoder doubles its resolution, by config name.
UPSAMPLERS = {"transposed": up, "resize": resize_up}


def check_upsample(name: str) -> None:
    """ValueError unless ``name`` names one of :data:`UPSAMPLERS`: the one check of every config's ``upsample``."""
    if not isinstance(name, str) or name not in UPSAMPLERS:
        raise ValueError(f"upsample must be one of {', '.join(UPSAMPLERS)}, got {name!r}")
