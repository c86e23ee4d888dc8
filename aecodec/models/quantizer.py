"""Vector quantizers: one codebook (VQ-VAE) and residual stacks of them (several rates per model).

The codebook learns by exponential moving averages (VQ-VAE paper, appendix), starts from k-means
on the first batch, and re-seeds codes that fall out of use with encoder outputs.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class QuantizerOutput:
    """What a quantizer returns: straight-through output, indices, commitment loss, usage stats."""

    quantized: Tensor
    indices: list[Tensor]
    loss: Tensor
    perplexity: list[float]
    usage: list[float]


def lloyd(samples: Tensor, centroids: Tensor, iterations: int) -> Tensor:
    """Lloyd iterations on rows of ``samples`` from ``centroids``; a centroid that loses all its samples stays."""
    for _ in range(iterations):
        assign = torch.cdist(samples, centroids).argmin(dim=1)
        sums = torch.zeros_like(centroids).index_add_(0, assign, samples)
        counts = torch.bincount(assign, minlength=len(centroids)).unsqueeze(1).to(samples.dtype)
        centroids = torch.where(counts > 0, sums / counts.clamp(min=1), centroids)
    return centroids


def kmeans(samples: Tensor, k: int, iterations: int = 10) -> Tensor:
    """Plain k-means on rows of ``samples`` from ``k`` seeded random rows; returns ``k`` centroids."""
    generator = torch.Generator(device="cpu").manual_seed(0)
    pick = torch.randint(0, samples.shape[0], (k,), generator=generator).to(samples.device)
    return lloyd(samples, samples[pick].clone(), iterations)


class VectorQuantizer(nn.Module):
    """Nearest-codebook quantization with straight-through gradients and an EMA codebook."""

    def __init__(self, num_codes: int, dim: int, decay: float = 0.99, dead_threshold: float = 0.1) -> None:
        super().__init__()
        self.num_codes, self.dim, self.decay, self.dead_threshold = num_codes, dim, decay, dead_threshold
        self.register_buffer("codebook", torch.randn(num_codes, dim) * 0.1)
        self.register_buffer("ema_count", torch.ones(num_codes))
        self.register_buffer("ema_sum", self.codebook.clone())
        self.register_buffer("initialized", torch.tensor(False))

    def nearest(self, flat: Tensor) -> Tensor:
        """Index of the nearest code for every row of ``flat`` (N, dim)."""
        distances = (
            flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.codebook.t() + self.codebook.pow(2).sum(1)[None, :]
        )
        return distances.argmin(dim=1)

    def lookup(self, indices: Tensor) -> Tensor:
        """Codebook vectors for an index map (B, H, W) as a feature map (B, dim, H, W)."""
        return F.embedding(indices, self.codebook).permute(0, 3, 1, 2)

    @torch.no_grad()
    def _update(self, flat: Tensor, indices: Tensor) -> None:
        if not bool(self.initialized):
            self.codebook.copy_(kmeans(flat, self.num_codes))
            self.ema_sum.copy_(self.codebook)
            self.ema_count.fill_(1.0)
            self.initialized.fill_(True)
            return
        onehot_counts = torch.bincount(indices, minlength=self.num_codes).to(flat.dtype)
        sums = torch.zeros_like(self.codebook).index_add_(0, indices, flat)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(onehot_counts)
            torch.distributed.all_reduce(sums)
        self.ema_count.mul_(self.decay).add_(onehot_counts, alpha=1 - self.decay)
        self.ema_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        total = self.ema_count.sum()
        smoothed = (self.ema_count + 1e-5) / (total + self.num_codes * 1e-5) * total
        self.codebook.copy_(self.ema_sum / smoothed.unsqueeze(1))
        dead = self.ema_count < self.dead_threshold * total / self.num_codes
        if dead.any():
            # Re-seed unused codes with random encoder outputs so the whole codebook carries bits.
            replacement = flat[torch.randint(0, flat.shape[0], (int(dead.sum()),), device=flat.device)]
            self.codebook[dead] = replacement
            self.ema_sum[dead] = replacement
            self.ema_count[dead] = total / self.num_codes

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Quantize ``z`` (B, dim, H, W); returns (codebook vectors, indices, commitment loss).

        The returned vectors carry no gradient: callers pass it to ``z`` with :func:`straight_through`.
        """
        b, d, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, d)
        if self.training:
            self._update(flat.detach(), self.nearest(flat.detach()))
        indices = self.nearest(flat.detach())
        quantized = F.embedding(indices, self.codebook).view(b, h, w, d).permute(0, 3, 1, 2)
        commitment = F.mse_loss(z, quantized.detach())
        return quantized.detach(), indices.view(b, h, w), commitment


def straight_through(z: Tensor, quantized: Tensor) -> Tensor:
    """Forward the quantized value, backward the identity (the straight-through estimator)."""
    return z + (quantized - z).detach()


def code_stats(indices: Tensor, num_codes: int) -> tuple[float, float]:
    """Perplexity of the code histogram and the share of codes used at least once."""
    counts = torch.bincount(indices.flatten(), minlength=num_codes).float()
    probs = counts / counts.sum()
    entropy = -(probs[probs > 0] * probs[probs > 0].log()).sum()
    return float(entropy.exp()), float((counts > 0).float().mean())


class ResidualVQ(nn.Module):
    """A stack of quantizers, each coding what the previous ones left; a prefix of stages is a rate.

    With ``dropout`` on, every training sample keeps a random number of stages (quantizer dropout,
    as in SoundStream), so any prefix decodes to a usable image.
    """

    def __init__(self, num_stages: int, num_codes: int, dim: int, decay: float = 0.99) -> None:
        super().__init__()
        self.num_codes = num_codes
        self.stages = nn.ModuleList(VectorQuantizer(num_codes, dim, decay) for _ in range(num_stages))

    @property
    def num_stages(self) -> int:
        return len(self.stages)

    def forward(self, z: Tensor, keep: Tensor | None = None) -> QuantizerOutput:
        """Quantize ``z`` with all stages; ``keep`` (B,) says how many stages each sample uses."""
        residual, total, loss = z, torch.zeros_like(z), z.new_zeros(())
        indices, perplexity, usage = [], [], []
        for s, stage in enumerate(self.stages):
            quantized, idx, commitment = stage(residual)
            mask = (keep > s).to(z.dtype).view(-1, 1, 1, 1) if keep is not None else 1.0
            total = total + mask * quantized
            residual = residual - quantized
            loss = loss + commitment
            indices.append(idx)
            p, u = code_stats(idx, self.num_codes)
            perplexity.append(p)
            usage.append(u)
        return QuantizerOutput(straight_through(z, total), indices, loss / self.num_stages, perplexity, usage)

    def decode(self, indices: list[Tensor]) -> Tensor:
        """Sum of codebook vectors for the given prefix of stage indices."""
        return sum(stage.lookup(idx) for stage, idx in zip(self.stages, indices))
