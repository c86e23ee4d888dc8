"""How many bits would the base save if fewer of its indices were coded without neighbours?

The checkerboard prior codes half of each stage's indices (the anchors) knowing only the coarser level and the
earlier stages; the other half also see their four decoded anchor neighbours. At base quality 1 the first bottom
stage's anchors cost about 7.1 bits (of 8), the others about 4 (session 31). A hierarchy of passes, as the
residual layer's depth 2 order, leaves fewer indices without neighbours: ``grid`` with depth d codes the indices
on a grid 2^d apart first, then for each finer grid the centres of its squares, then the rest of it.

This trains float priors from scratch, the same recipe for each order (the control is the checkerboard), on the
indices of the half-resolution training photos at base quality 1 (one stage per level, the stages where the
neighbours tell most) or at the given base qualities (010/020/030/040 held out; indices from
research/prior/finetune.py's cache), and prints the bits per index of the held-out photos and Kodak:

    PYTHONPATH=. python research/prior/passes.py CACHE ORDER STEPS LR [QUALITIES] [OUT.pt]
    (ORDER: checkerboard or gridD, D the depth; QUALITIES: base qualities to train and measure on, default 1)
"""

import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aecodec.models.prior import LevelPrior, PriorConfig
from research.prior.finetune import Maps, batch, dataset, per_quality, train

LN2 = float(np.log(2))


def pass_masks(order: str, height: int, width: int) -> list[Tensor]:
    """Boolean (H, W) masks of the positions each pass codes, in coding order; together they cover the map once."""
    y, x = torch.arange(height)[:, None], torch.arange(width)[None, :]
    if order == "checkerboard":
        first = (y + x) % 2 == 0
        return [first, ~first]
    depth = int(order.removeprefix("grid"))
    step = 2**depth
    masks = [(y % step == 0) & (x % step == 0)]
    while step > 1:
        half = step // 2
        on_finer = (y % half == 0) & (x % half == 0)
        centres = (y % step == half) & (x % step == half)
        masks += [centres, on_finer & ~centres & ~((y % step == 0) & (x % step == 0))]
        step = half
    return masks


class PassPrior(LevelPrior):
    """The checkerboard model's layers, reading the embeddings of every index decoded in earlier passes (not only
    anchors), with a learned bias per pass added to the context so that it knows where its neighbours lie."""

    def __init__(self, num_codes: int, num_stages: int, coarser_stages: int, order: str, passes: int) -> None:
        super().__init__(num_codes, num_stages, coarser_stages, PriorConfig())
        self.order = order
        self.pass_bias = nn.Parameter(torch.zeros(passes, PriorConfig().embed))

    def pass_logits(self, stage: int, context: Tensor, indices: Tensor, known: Tensor, index: int) -> Tensor:
        neighbours = self.anchors[stage](indices).permute(0, 3, 1, 2) * known.to(context.dtype)
        x = F.relu(self.conv1(torch.cat([context + self.pass_bias[index].view(1, -1, 1, 1), neighbours], 1)))
        return self.head(F.relu(self.conv2(x)))

    def bits(self, indices: list[Tensor], coarser: list[Tensor]) -> Tensor:
        """Bits (B, S, H, W) of each stage's indices, each pass seeing what the earlier ones decoded."""
        out = []
        for s, idx in enumerate(indices):
            context = self.context(s, indices, coarser, idx.shape)
            bits, known = torch.zeros(idx.shape), torch.zeros(idx.shape[-2:], dtype=torch.bool)
            for index, mask in enumerate(pass_masks(self.order, *idx.shape[-2:])):
                entropy = F.cross_entropy(self.pass_logits(s, context, idx, known, index), idx, reduction="none")
                bits = torch.where(mask, entropy / LN2, bits)
                known = known | mask
            out.append(bits)
        return torch.stack(out, 1)


class Prior(nn.Module):
    def __init__(self, order: str, num_codes: int = 256, top_stages: int = 2, bottom_stages: int = 10) -> None:
        super().__init__()
        passes = len(pass_masks(order, 8, 8))
        self.top = PassPrior(num_codes, top_stages, 0, order, passes)
        self.bottom = PassPrior(num_codes, bottom_stages, top_stages, order, passes)

    def bits(self, top: list[Tensor], bottom: list[Tensor]) -> tuple[Tensor, Tensor]:
        return self.top.bits(top, []), self.bottom.bits(bottom, top)


@torch.no_grad()
def report(prior: Prior, items: list[tuple[int, Maps]]) -> str:
    """Bits per index per base quality, and of the first bottom stage alone."""
    prior.eval()
    every = per_quality(items, lambda m: float(torch.cat([t.flatten() for t in prior.bits(*batch(m))]).mean()))
    first = per_quality(items, lambda m: float(prior.bits(*batch(m))[1][:, 0].mean()))
    prior.train()
    return " ".join(f"q{q} {every[q]:.3f} (b0 {first[q]:.3f})" for q in every)


def main() -> None:
    cache, order, steps, lr = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    qualities = [int(q) for q in sys.argv[5].split(",")] if len(sys.argv) > 5 else [1]
    data = {name: [(q, maps) for q, maps in items if q in qualities] for name, items in dataset(cache).items()}
    torch.manual_seed(0)
    prior = Prior(order)
    train(prior, data["train"], steps, lr)
    for name in ("held", "kodak"):
        print(f"{order} {name}: {report(prior, data[name])}", flush=True)
    if len(sys.argv) > 6:
        torch.save(prior.state_dict(), sys.argv[6])


if __name__ == "__main__":
    main()
