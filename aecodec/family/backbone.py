"""The conv encoder/decoder pair every family member shares: stride 8 or 16, small enough for a CPU."""

import math
from dataclasses import asdict, dataclass

from torch import Tensor, nn

from aecodec.models.layers import UPSAMPLERS, ResBlock, check_upsample, down


@dataclass(frozen=True)
class BackboneConfig:
    """Backbone sizes and the decoder's upsampling; each member's config extends it with its own knobs.

    ``upsample`` is "transposed" (stride-2 transposed convolutions) or "resize" (nearest-neighbour
    then convolution, the VQGAN paper's decoder): adversarial and perceptual gradients turn the
    transposed convolutions' four phase kernels into a checkerboard grid on the images.
    """

    channels: int = 64
    latent_dim: int = 16
    stride: int = 16
    res_blocks: int = 1
    upsample: str = "transposed"

    def __post_init__(self) -> None:
        if self.stride not in (8, 16):
            raise ValueError(f"stride must be 8 or 16, got {self.stride}")
        check_upsample(self.upsample)

    def to_dict(self) -> dict:
        return asdict(self)


def _resampling_steps(config: BackboneConfig) -> int:
    return int(math.log2(config.stride))


class Encoder(nn.Module):
    """Image in [0, 1] (B, 3, H, W) -> latent (B, out_channels, H/stride, W/stride)."""

    def __init__(self, config: BackboneConfig, out_channels: int) -> None:
        super().__init__()
        c = config.channels
        layers: list[nn.Module] = [down(3, c)]
        for _ in range(_resampling_steps(config) - 1):
            layers += [nn.ReLU(), down(c, c)]
        layers += [ResBlock(c) for _ in range(config.res_blocks)]
        self.net = nn.Sequential(*layers, nn.ReLU(), nn.Conv2d(c, out_channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x - 0.5)


class Decoder(nn.Module):
    """Latent (B, latent_dim, h, w) -> image (B, 3, h*stride, w*stride), centred on 0.5 (not clamped)."""

    def __init__(self, config: BackboneConfig) -> None:
        super().__init__()
        c, upsample = config.channels, UPSAMPLERS[config.upsample]
        layers: list[nn.Module] = [nn.Conv2d(config.latent_dim, c, 3, padding=1)]
        layers += [ResBlock(c) for _ in range(config.res_blocks)]
        for _ in range(_resampling_steps(config) - 1):
            layers += [nn.ReLU(), upsample(c, c)]
        final = upsample(c, 3)
        # The convolution that makes the pixels: VQGAN's adaptive weight compares gradients there.
        self.last_layer = final[-1] if isinstance(final, nn.Sequential) else final
        self.net = nn.Sequential(*layers, nn.ReLU(), final)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z) + 0.5
