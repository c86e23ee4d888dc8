"""The GAN pieces of a VQ-GAN objective: the PatchGAN discriminator, hinge losses, the adaptive weight.

Used by the decoder fine-tune (:mod:`aecodec.training.finetune`) and the family's VQ-GAN.
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class PatchDiscriminator(nn.Module):
    """PatchGAN (Isola et al. 2017): one real/fake logit per overlapping image patch.

    ``layers`` stride-2 convolutions (BatchNorm, LeakyReLU) then two stride-1 ones, as in pix2pix and VQGAN.
    """

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


def hinge_discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Hinge loss of the discriminator, halved as in Esser et al.'s code: 0.5 (E relu(1-D(x)) + E relu(1+D(G)))."""
    return 0.5 * (F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean())


def hinge_generator_loss(fake_logits: Tensor) -> Tensor:
    """Generator side of the hinge GAN: -E D(G(x))."""
    return -fake_logits.mean()


def adaptive_generator_weight(rec_loss: Tensor, gan_loss: Tensor, last_layer: Tensor) -> Tensor:
    """lambda = ||grad_last L_rec|| / (||grad_last L_GAN|| + 1e-4), clamped to [0, 1e4] and detached (VQGAN)."""
    (rec_grad,) = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)
    (gan_grad,) = torch.autograd.grad(gan_loss, last_layer, retain_graph=True)
    return (rec_grad.norm() / (gan_grad.norm() + 1e-4)).clamp(0, 1e4).detach()
