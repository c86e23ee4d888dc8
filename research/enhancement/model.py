"""The enhancement layer's networks: latent pyramid, checkerboard context model (ARM), synthesis.

Shapes: the image is (1, 3, H, W) in [0, 1]; level ``l`` of the pyramid is (1, 1, ceil(H/2^l),
ceil(W/2^l)), integers once quantized. Each level is upsampled (bilinear) straight to (H, W).
The synthesis takes [upsampled latents, base - 0.5] and outputs a residual added to the base
(or, without a base, the image minus 0.5).

Context model: one small MLP shared by all levels. Level ``l`` is decoded after level ``l + 1``, in
two passes (checkerboard): anchors ((i + j) even) see the 3x3 neighbourhood of the coarser level;
non-anchors also see their 4 anchor neighbours. Decoding is thus 2 * levels MLP passes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from research.enhancement.tables import FRAC_BITS, LATENT_MAX

N_CONTEXT = 9 + 4 + 1


@dataclass(frozen=True)
class EnhConfig:
    """Sizes of the enhancement layer."""

    levels: int = 6
    hidden: int = 24
    hidden2: int = 16
    arm_hidden: int = 8
    use_base: bool = True

    @property
    def synth_in(self) -> int:
        return self.levels + (3 if self.use_base else 0)

    def macs_per_pixel(self) -> float:
        """Synthesis + upsampling + ARM multiply-accumulates per image pixel."""
        synth = self.synth_in * self.hidden + self.hidden * self.hidden2 + 9 * self.hidden2 * 3
        upsample = 4 * self.levels
        arm = (N_CONTEXT * self.arm_hidden + self.arm_hidden**2 + 2 * self.arm_hidden) * sum(
            4.0**-lv for lv in range(self.levels)
        )
        return synth + upsample + arm


def level_shapes(height: int, width: int, levels: int) -> list[tuple[int, int]]:
    return [(-(-height // 2**lv), -(-width // 2**lv)) for lv in range(levels)]


def anchor_mask(h: int, w: int) -> Tensor:
    """(1, 1, h, w) float mask, 1 on anchors ((i + j) even)."""
    i = torch.arange(h)[:, None]
    j = torch.arange(w)[None, :]
    return ((i + j) % 2 == 0).float()[None, None]


def coarse_context(coarse: Tensor | None, h: int, w: int) -> Tensor:
    """(1, 9, h, w): the 3x3 neighbourhood of the coarser level, nearest-upsampled."""
    if coarse is None:
        return torch.zeros(1, 9, h, w)
    hc, wc = coarse.shape[-2:]
    patches = F.unfold(F.pad(coarse, (1, 1, 1, 1)), 3).view(1, 9, hc, wc)
    return patches.repeat_interleave(2, 2).repeat_interleave(2, 3)[..., :h, :w]


def same_context(y: Tensor, anchors: Tensor) -> Tensor:
    """(1, 4, h, w): up/down/left/right neighbours among the anchors (zero on the anchors themselves)."""
    a = F.pad(y * anchors, (1, 1, 1, 1))
    h, w = y.shape[-2:]
    ctx = torch.cat(
        [a[..., 0:h, 1 : w + 1], a[..., 2 : h + 2, 1 : w + 1], a[..., 1 : h + 1, 0:w], a[..., 1 : h + 1, 2 : w + 2]], 1
    )
    return ctx * (1 - anchors)


def contexts(latents: list[Tensor]) -> list[Tensor]:
    """Per level, the (1, N_CONTEXT, h, w) context the ARM sees."""
    out = []
    for lv, y in enumerate(latents):
        h, w = y.shape[-2:]
        anchors = anchor_mask(h, w)
        coarse = latents[lv + 1] if lv + 1 < len(latents) else None
        out.append(torch.cat([coarse_context(coarse, h, w), same_context(y, anchors), 1 - anchors], 1))
    return out


def fixed_round(x: Tensor) -> Tensor:
    """Round to the fixed-point grid 2^-FRAC_BITS with a straight-through gradient."""
    s = float(1 << FRAC_BITS)
    return x + (torch.floor(x * s + 0.5) / s - x).detach()


class Arm(nn.Module):
    """Context MLP: N_CONTEXT -> hidden -> hidden -> (mu, log-scale), ReLU, applied per position."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(N_CONTEXT, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, 2)])
        with torch.no_grad():
            self.layers[-1].weight.mul_(0.1)
            self.layers[-1].bias.copy_(torch.tensor([0.0, 0.0]))
        self.emulate_integer = False

    def forward(self, ctx: Tensor) -> tuple[Tensor, Tensor]:
        """ctx (n, N_CONTEXT) -> mu (n,), log-scale (n,)."""
        x = ctx
        for k, layer in enumerate(self.layers):
            x = layer(x)
            if self.emulate_integer:
                x = fixed_round(x)
            if k < len(self.layers) - 1:
                x = torch.relu(x)
        return x[:, 0], x[:, 1]


class Synthesis(nn.Module):
    """1x1 (in -> hidden), ReLU, 1x1 (hidden -> hidden2), ReLU, 3x3 (hidden2 -> 3)."""

    def __init__(self, cfg: EnhConfig) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(cfg.synth_in, cfg.hidden, 1),
            nn.ReLU(),
            nn.Conv2d(cfg.hidden, cfg.hidden2, 1),
            nn.ReLU(),
            nn.Conv2d(cfg.hidden2, 3, 3, padding=1, padding_mode="replicate"),
        )
        with torch.no_grad():
            self.net[-1].weight.mul_(0.1)
            self.net[-1].bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class Enhancement(nn.Module):
    """Latent pyramid + ARM + synthesis for one image."""

    def __init__(self, cfg: EnhConfig, height: int, width: int) -> None:
        super().__init__()
        self.cfg, self.height, self.width = cfg, height, width
        self.latents = nn.ParameterList(
            [nn.Parameter(torch.zeros(1, 1, h, w)) for h, w in level_shapes(height, width, cfg.levels)]
        )
        self.arm = Arm(cfg.arm_hidden)
        self.synthesis = Synthesis(cfg)

    def quantized_latents(self, mode: str) -> list[Tensor]:
        """'noise': y + U(-.5, .5); 'ste': round with straight-through gradient; 'hard': round."""
        out = []
        for y in self.latents:
            y = y.clamp(-LATENT_MAX, LATENT_MAX)
            if mode == "noise":
                out.append(y + torch.rand_like(y) - 0.5)
            elif mode == "ste":
                out.append(y + (torch.round(y) - y).detach())
            else:
                out.append(torch.round(y).detach())
        return out

    def image(self, latents: list[Tensor], base: Tensor | None) -> Tensor:
        """Reconstruction (1, 3, H, W), not clamped."""
        ups = [
            y
            if y.shape[-2:] == (self.height, self.width)
            else F.interpolate(y, size=(self.height, self.width), mode="bilinear", align_corners=False)
            for y in latents
        ]
        if self.cfg.use_base:
            return base + self.synthesis(torch.cat(ups + [base - 0.5], 1))
        return 0.5 + self.synthesis(torch.cat(ups, 1))

    def rate_bits(self, latents: list[Tensor]) -> Tensor:
        """Float rate estimate: -log2 of the discretized Laplace probability of every latent."""
        total = 0.0
        for y, ctx in zip(latents, contexts(latents)):
            mu, ls = self.arm(ctx.flatten(2)[0].T)
            b = torch.exp(ls.clamp(-3.0, 4.0))
            d = -(y.flatten() - mu).abs()
            # Clamped exponents: torch.where back-propagates through both branches (inf * 0 = NaN).
            upper = torch.where(
                d + 0.5 < 0,
                0.5 * torch.exp((d + 0.5).clamp_max(0) / b),
                1 - 0.5 * torch.exp(-(d + 0.5).clamp_min(0) / b),
            )
            p = upper - 0.5 * torch.exp((d - 0.5) / b)
            total = total + (-torch.log2(p.clamp_min(2.0**-16))).sum()
        return total


def integer_arm(weights: list[tuple[np.ndarray, np.ndarray]], ctx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact ARM on int64: ``weights`` are (W, b) integers at scale 2^FRAC_BITS; ``ctx`` (n, C) integer latents.

    Returns (mu_fp, ls_fp) at scale 2^FRAC_BITS. Rounding is half-up, as in :func:`fixed_round`.
    """
    half = 1 << (FRAC_BITS - 1)
    x = ctx.astype(np.int64) << FRAC_BITS
    for k, (w, b) in enumerate(weights):
        x = (x @ w.T + (b << FRAC_BITS) + half) >> FRAC_BITS
        if k < len(weights) - 1:
            x = np.maximum(x, 0)
    return x[:, 0], x[:, 1]
