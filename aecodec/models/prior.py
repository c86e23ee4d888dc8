"""Learned categorical prior over VQ indices: a checkerboard context model per level (float, for training).

For every residual stage of a level the model sees, at each position, a sum of learned embeddings of
what the decoder already knows there (earlier stages of this level, the coarser level's stages
upsampled) plus, in the second checkerboard pass, the embeddings of the already-decoded anchor
neighbours. Two network passes per stage decode a whole level in parallel. The exact integer twin
used for coding lives in :mod:`aecodec.models.integer_prior`.
"""

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class PriorConfig:
    """Context-model sizes (kept small: the integer runtime runs them on CPU at decode time)."""

    embed: int = 16
    hidden: int = 48

    def to_dict(self) -> dict:
        return asdict(self)


def anchor_mask(height: int, width: int, device: torch.device | None = None) -> Tensor:
    """Checkerboard of the first pass: True where (row + col) is even."""
    rows = torch.arange(height, device=device)[:, None]
    cols = torch.arange(width, device=device)[None, :]
    return (rows + cols) % 2 == 0


def conditioning_stages(stage: int, coarser_stages: int) -> int:
    """How many coarser-level stages condition ``stage``: the ones present at every quality using it."""
    return min(stage + 1, coarser_stages)


class LevelPrior(nn.Module):
    """Checkerboard context model for the residual stages of one level."""

    def __init__(self, num_codes: int, num_stages: int, coarser_stages: int, config: PriorConfig) -> None:
        super().__init__()
        e, h = config.embed, config.hidden
        self.num_codes, self.num_stages, self.coarser_stages = num_codes, num_stages, coarser_stages
        self.stage_bias = nn.Parameter(torch.zeros(num_stages, e))
        self.previous = nn.ModuleList(nn.Embedding(num_codes, e) for _ in range(num_stages - 1))
        self.coarser = nn.ModuleList(nn.Embedding(num_codes, e) for _ in range(coarser_stages))
        self.anchors = nn.ModuleList(nn.Embedding(num_codes, e) for _ in range(num_stages))
        for table in [*self.previous, *self.coarser, *self.anchors]:
            nn.init.normal_(table.weight, std=0.5)
        self.conv1 = nn.Conv2d(2 * e, h, 3, padding=1)
        self.conv2 = nn.Conv2d(h, h, 3, padding=1)
        self.head = nn.Conv2d(h, num_codes, 1)

    def context(self, stage: int, previous: list[Tensor], coarser: list[Tensor], shape: torch.Size) -> Tensor:
        """Known-information embedding (B, E, H, W) for a ``stage`` of index shape (B, H, W)."""
        ctx = self.stage_bias[stage].view(1, -1, 1, 1).expand(shape[0], -1, shape[1], shape[2])
        for table, idx in zip(self.previous, previous[:stage]):
            ctx = ctx + table(idx).permute(0, 3, 1, 2)
        for table, idx in zip(self.coarser, coarser[: conditioning_stages(stage, self.coarser_stages)]):
            up = table(idx).permute(0, 3, 1, 2).repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
            ctx = ctx + up
        return ctx

    def logits(self, stage: int, context: Tensor, anchors: Tensor | None) -> Tensor:
        """Logits (B, K, H, W); ``anchors`` are this stage's indices, visible only at anchor positions."""
        height, width = context.shape[-2:]
        if anchors is None:
            neighbours = torch.zeros_like(context)
        else:
            mask = anchor_mask(height, width, context.device).to(context.dtype)
            neighbours = self.anchors[stage](anchors).permute(0, 3, 1, 2) * mask
        x = F.relu(self.conv1(torch.cat([context, neighbours], dim=1)))
        return self.head(F.relu(self.conv2(x)))

    def bits(self, indices: list[Tensor], coarser: list[Tensor]) -> Tensor:
        """Bits (B, S, H, W) of each stage's indices under the two-pass checkerboard model."""
        out = []
        for s, idx in enumerate(indices):
            ctx = self.context(s, indices, coarser, idx.shape)
            mask = anchor_mask(*idx.shape[-2:], idx.device)
            first = F.cross_entropy(self.logits(s, ctx, None), idx, reduction="none")
            second = F.cross_entropy(self.logits(s, ctx, idx), idx, reduction="none")
            out.append(torch.where(mask, first, second) / torch.log(torch.tensor(2.0)))
        return torch.stack(out, dim=1)


class HierarchicalPrior(nn.Module):
    """Priors of both VQ-VAE-2 levels: the top is coded first, the bottom conditioned on it."""

    def __init__(self, num_codes: int, top_stages: int, bottom_stages: int, config: PriorConfig) -> None:
        super().__init__()
        self.config = config
        self.top = LevelPrior(num_codes, top_stages, 0, config)
        self.bottom = LevelPrior(num_codes, bottom_stages, top_stages, config)

    def bits(self, top: list[Tensor], bottom: list[Tensor]) -> tuple[Tensor, Tensor]:
        """Per-index bits of both levels: (B, S_top, h, w) and (B, S_bottom, H, W)."""
        return self.top.bits(top, []), self.bottom.bits(bottom, top)
