"""The conv encoder/decoder pair every family member shares: stride 8 or 16, small enough for a CPU."""

import math
from dataclasses import asdict, dataclass

from torch import Tensor, nn

from aecodec.models.layers import ResBlock, down, up


@dataclass(frozen=True)
class BackboneConfig:
    """Backbone sizes; each member's config extends it with that member's own knobs."""

    channels: int = 64
    latent_dim: int = 16
    stride: int = 16
    res_blocks: int = 1

    def __post_init__(self) -> None:
        if self.stride not in (8, 16):
            raise ValueError(f"stride must be 8 or 16, got {self.stride}")

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
        c = config.channels
        layers: list[nn.Module] = [nn.Conv2d(config.latent_dim, c, 3, padding=1)]
        layers += [ResBlock(c) for _ in range(config.res_blocks)]
        for _ in range(_resampling_steps(config) - 1):
            layers += [nn.ReLU(), up(c, c)]
        self.last_layer = up(c, 3)
        self.net = nn.Sequential(*layers, nn.ReLU(), self.last_layer)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z) + 0.5
