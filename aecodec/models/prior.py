"""Learned categorical prior over VQ indices: a context model per level, decoded in passes (float, for training).

For every residual stage of a level the model sees, at each position, a sum of learned embeddings of
what the decoder already knows there (earlier stages of this level, the coarser level's stages
upsampled) plus the embeddings of the neighbours decoded in earlier passes of this stage. A pass
order (:func:`pass_masks`) splits each stage into a few passes, one network evaluation each, that
decode a whole level in parallel: the checkerboard (two passes, every shipped model) or a grid of
depth d (2d + 1 passes, fewer indices coded without neighbours). The exact integer twin used for
coding lives in :mod:`aecodec.models.integer_prior`.
"""

from dataclasses import asdict, dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn

CHECKERBOARD = "checkerboard"
ORDERS = (CHECKERBOARD, "grid1", "grid2", "grid3", "grid4")  # a grid's depth d: 2d + 1 passes


@dataclass(frozen=True)
class PriorConfig:
    """Context-model sizes (kept small: the integer runtime runs them on CPU at decode time)."""

    embed: int = 16
    hidden: int = 48
    order: str = CHECKERBOARD

    def __post_init__(self) -> None:
        check_order(self.order)

    def to_dict(self) -> dict:
        return asdict(self)


def check_order(order: object) -> None:
    """ValueError unless ``order`` is one of :data:`ORDERS`."""
    if order not in ORDERS:
        raise ValueError(f"prior order must be one of {', '.join(ORDERS)}, got {order!r}")


@lru_cache(maxsize=64)
def pass_masks(order: str, height: int, width: int) -> tuple[Tensor, ...]:
    """Boolean (H, W) masks of the positions each pass codes, in coding order; together they cover the map once.

    The checkerboard codes the positions where row + col is even, then the rest. A grid of depth d codes
    the positions 2^d apart, then for each finer grid (spacing 2^(d-1) down to 1) the centres of the
    coarser grid's squares, then the rest of the finer grid: every later index has decoded neighbours
    on all four sides or diagonals (the residual layer's depth order, docs/FORMAT.md).
    """
    check_order(order)
    y, x = torch.arange(height)[:, None], torch.arange(width)[None, :]
    if order == CHECKERBOARD:
        first = (y + x) % 2 == 0
        return first, ~first
    step = 2 ** int(order.removeprefix("grid"))
    masks = [(y % step == 0) & (x % step == 0)]
    while step > 1:
        half = step // 2
        on_coarser = (y % step == 0) & (x % step == 0)
        centres = (y % step == half) & (x % step == half)
        on_finer = (y % half == 0) & (x % half == 0)
        masks += [centres, on_finer & ~centres & ~on_coarser]
        step = half
    return tuple(masks)


def pass_count(order: str) -> int:
    """Number of passes per stage of ``order``."""
    return len(pass_masks(order, 1, 1))


@lru_cache(maxsize=64)
def decoded_before(order: str, height: int, width: int, number: int) -> Tensor:
    """Boolean (H, W) mask of the positions decoded in the passes before pass ``number``."""
    known = torch.zeros(height, width, dtype=torch.bool)
    for mask in pass_masks(order, height, width)[:number]:
        known |= mask
    return known


def conditioning_stages(stage: int, coarser_stages: int) -> int:
    """How many coarser-level stages condition ``stage``: the ones present at every quality using it."""
    return min(stage + 1, coarser_stages)


class LevelPrior(nn.Module):
    """Context model for the residual stages of one level, decoded in the passes of ``config.order``.

    ``anchors[stage]`` embeds the indices of the stage decoded in earlier passes (the checkerboard's
    anchors). Orders other than the checkerboard also learn a first-layer bias per pass (``pass_bias``),
    which tells the network where its decoded neighbours lie.
    """

    def __init__(self, num_codes: int, num_stages: int, coarser_stages: int, config: PriorConfig) -> None:
        super().__init__()
        e, h = config.embed, config.hidden
        self.num_codes, self.num_stages, self.coarser_stages = num_codes, num_stages, coarser_stages
        self.order = config.order
        self.stage_bias = nn.Parameter(torch.zeros(num_stages, e))
        # The checkerboard's passes need no bias of their own (and its checkpoints predate them).
        passes = pass_count(config.order)
        self.pass_bias = nn.Parameter(torch.zeros(passes, h)) if config.order != CHECKERBOARD else None
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

    def hidden(self, stage: int, context: Tensor, indices: Tensor, number: int) -> tuple[Tensor, Tensor]:
        """Both hidden layers' activations (B, h, H, W) in pass ``number``; of ``indices`` (B, H, W), this
        stage's, only the positions decoded in earlier passes are read."""
        known = decoded_before(self.order, *indices.shape[-2:], number).to(context.device, context.dtype)
        neighbours = self.anchors[stage](indices).permute(0, 3, 1, 2) * known
        first = self.conv1(torch.cat([context, neighbours], dim=1))
        if self.pass_bias is not None:
            first = first + self.pass_bias[number].view(1, -1, 1, 1)
        first = F.relu(first)
        return first, F.relu(self.conv2(first))

    def logits(self, stage: int, context: Tensor, indices: Tensor, number: int) -> Tensor:
        """Logits (B, K, H, W) of pass ``number`` (valid at that pass's positions)."""
        return self.head(self.hidden(stage, context, indices, number)[1])

    def bits(self, indices: list[Tensor], coarser: list[Tensor]) -> Tensor:
        """Bits (B, S, H, W) of each stage's indices, each pass seeing what the earlier ones decoded."""
        out = []
        for s, idx in enumerate(indices):
            ctx = self.context(s, indices, coarser, idx.shape)
            bits = torch.zeros(idx.shape, device=idx.device)
            for number, mask in enumerate(pass_masks(self.order, *idx.shape[-2:])):
                entropy = F.cross_entropy(self.logits(s, ctx, idx, number), idx, reduction="none")
                bits = torch.where(mask.to(idx.device), entropy, bits)
            out.append(bits / torch.log(torch.tensor(2.0)))
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
