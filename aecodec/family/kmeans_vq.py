"""Classic block vector quantization: a k-means codebook of 4x4 RGB blocks, the pre-neural baseline.

Each image block is one 48-dimensional vector (``pixel_unshuffle``), coded as the index of its
nearest centroid. ``fit`` runs full-batch k-means (k-means++ seeding, Lloyd iterations, fixed seed);
the generic trainer instead calls ``loss``, which updates the codebook online through the EMA
:class:`VectorQuantizer` (mini-batch k-means with dead-code re-seeding).
"""

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aecodec.models.quantizer import VectorQuantizer, code_stats, lloyd
from aecodec.training.loop import batch_psnr


@dataclass(frozen=True)
class BlockVQConfig:
    """Codebook size, block side in pixels, and the full-batch k-means settings of ``fit``."""

    num_codes: int = 256
    block: int = 4
    fit_iterations: int = 20
    fit_seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def kmeans_plus_plus(samples: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """k-means++ seeding: each new centroid drawn with probability proportional to its squared distance."""
    centroids = samples[torch.randint(len(samples), (1,), generator=generator)]
    nearest = torch.cdist(samples, centroids).squeeze(1).pow(2)
    for _ in range(k - 1):
        if nearest.sum() > 0:
            pick = torch.multinomial(nearest / nearest.sum(), 1, generator=generator)
        else:  # fewer distinct samples than centroids: the rest duplicate samples
            pick = torch.randint(len(samples), (1,), generator=generator)
        centroids = torch.cat([centroids, samples[pick]])
        nearest = torch.minimum(nearest, (samples - samples[pick]).pow(2).sum(1))
    return centroids


class BlockVQ(nn.Module):
    """Block VQ codec model on [0, 1] images whose sides are multiples of ``config.block``."""

    def __init__(self, config: BlockVQConfig) -> None:
        super().__init__()
        self.config = config
        self.stride = config.block
        self.num_codes = config.num_codes
        self.quantizer = VectorQuantizer(config.num_codes, 3 * config.block**2)

    def blocks(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) images as (B, 3 * block^2, H / block, W / block) block vectors."""
        return F.pixel_unshuffle(x, self.config.block)

    def block_rows(self, x: Tensor) -> Tensor:
        """All block vectors of ``x`` as rows (B * H * W / block^2, 3 * block^2), in raster order."""
        return self.blocks(x).permute(0, 2, 3, 1).reshape(-1, self.quantizer.dim)

    @torch.no_grad()
    def fit(self, images: Tensor) -> None:
        """Full-batch k-means of the blocks of ``images`` (B, 3, H, W); deterministic for a given seed."""
        samples = self.block_rows(images)
        generator = torch.Generator().manual_seed(self.config.fit_seed)
        seeds = kmeans_plus_plus(samples.cpu(), self.num_codes, generator).to(samples.device)
        codebook = lloyd(samples, seeds, self.config.fit_iterations)
        self.quantizer.codebook.copy_(codebook)
        self.quantizer.ema_sum.copy_(codebook)
        self.quantizer.ema_count.fill_(1.0)
        self.quantizer.initialized.fill_(True)

    @torch.no_grad()
    def encode_indices(self, x: Tensor) -> Tensor:
        """Nearest-centroid index of every block: (B, H / block, W / block) int64."""
        indices = self.quantizer.nearest(self.block_rows(x))
        return indices.view(x.shape[0], x.shape[2] // self.stride, x.shape[3] // self.stride)

    @torch.no_grad()
    def decode_indices(self, indices: Tensor) -> Tensor:
        """Images (B, 3, H, W) assembled from the centroids of an index map."""
        return F.pixel_shuffle(self.quantizer.lookup(indices), self.config.block)

    def forward(self, x: Tensor) -> Tensor:
        return self.decode_indices(self.encode_indices(x))

    def loss(self, batch: Tensor) -> tuple[Tensor, dict[str, float]]:
        """Reconstruction MSE (no gradient: the codebook learns by k-means, in training mode online)."""
        with torch.no_grad():
            quantized, indices, _ = self.quantizer(self.blocks(batch))
            reconstruction = F.pixel_shuffle(quantized, self.config.block)
            mse = F.mse_loss(reconstruction, batch)
        perplexity, usage = code_stats(indices, self.num_codes)
        metrics = {
            "mse": mse.item(),
            "psnr": batch_psnr(reconstruction, batch),
            "perplexity": perplexity,
            "usage": usage,
        }
        return mse, metrics
