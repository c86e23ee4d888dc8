"""PatchGAN discriminator (Isola et al. 2017): one real/fake logit per overlapping image patch."""

from torch import Tensor, nn


class PatchDiscriminator(nn.Module):
    """``layers`` stride-2 convolutions (BatchNorm, LeakyReLU) then two stride-1 ones, as in pix2pix and VQGAN."""

    def __init__(self, channels: int = 64, layers: int = 3) -> None:
        super().__init__()
        widths = [channels * min(2**n, 8) for n in range(layers + 1)]
        blocks: list[nn.Module] = [nn.Conv2d(3, widths[0], 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        for n in range(1, layers + 1):
            stride = 2 if n < layers else 1
            blocks += [
                nn.Conv2d(widths[n - 1], widths[n], 4, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(widths[n]),
                nn.LeakyReLU(0.2),
            ]
        self.net = nn.Sequential(*blocks, nn.Conv2d(widths[layers], 1, 4, stride=1, padding=1))

    def forward(self, x: Tensor) -> Tensor:
        """Patch logits (B, 1, h, w) of images in [0, 1]."""
        return self.net(x - 0.5)
