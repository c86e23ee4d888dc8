"""Exact integer runtime of the prior: the only code that makes the coder's probabilities.

Float networks round differently on different machines, so the prior used for coding is an integer
network: int8 weights and embeddings, int64 accumulation, requantization by an integer multiply and
shift, and softmax through a fixed integer exponential table. Every machine computes bit-identical
frequency tables, which is what keeps range decoding in step with encoding. The integer tensors are
made once by :func:`quantize_prior` and stored in the model file; nothing is re-derived at load time.
"""

from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from functools import cache, lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

from aecodec.bitstream.entropy import PRECISION_BITS
from aecodec.models.prior import (
    CHECKERBOARD,
    HierarchicalPrior,
    LevelPrior,
    check_order,
    conditioning_stages,
    decoded_before,
    pass_count,
    pass_masks,
)

LOGIT_SCALE = 32  # fixed-point logits are in units of 1/32 nat
ACTIVATION_MAX = 127  # hidden activations are unsigned 7-bit after ReLU
MULTIPLIER_BITS = 20  # precision of requantization multipliers
LOGIT_LIMIT = 1 << 24  # logits are clamped to +-this, far beyond any useful range
FLOAT64_EXACT = 1 << 53  # every integer of smaller magnitude is a float64
_MATMUL_ROWS = 4096


def exact_matmul(rows: Tensor, weight: Tensor) -> Tensor:
    """``rows @ weight.t()`` of int64 tensors, exactly, by float64 BLAS when that is provably exact.

    If max|rows| times the largest L1 norm of a weight row is below 2**53, every product and every
    partial sum, in whatever order a BLAS adds them (FMA included), is an integer a float64 holds, so
    the result is the integer one on every machine. Torch's own int64 matmul is ~15x slower. Rows go
    a block at a time, so the float copy stays small (a 1024-px tile's patches are ~150 MB).
    """
    if not rows.numel():
        return rows @ weight.t()
    largest = max(int(rows.max()), -int(rows.min()))
    if largest * int(weight.abs().sum(1).max()) >= FLOAT64_EXACT:
        return rows @ weight.t()
    transposed, out = weight.double().t(), torch.empty(rows.shape[0], weight.shape[0], dtype=torch.int64)
    for start in range(0, rows.shape[0], _MATMUL_ROWS):
        out[start : start + _MATMUL_ROWS] = rows[start : start + _MATMUL_ROWS].double() @ transposed
    return out


@cache
def exp_table(num_codes: int) -> Tensor:
    """Integer table T[d] = round(peak * exp(-d / LOGIT_SCALE)), at least 1, for d >= 0.

    Computed with :mod:`decimal` (exactly specified, correctly rounded) rather than libm, so the
    table is the same on every platform. ``peak * num_codes <= 2**24`` bounds each row's sum.
    """
    peak = 1 << (PRECISION_BITS - (num_codes - 1).bit_length())  # rows sum to at most the coder's 2**24
    values = []
    with localcontext() as ctx:
        ctx.prec = 40
        d = 0
        while True:
            value = int((Decimal(peak) * (Decimal(-d) / LOGIT_SCALE).exp()).to_integral_value(ROUND_HALF_EVEN))
            values.append(max(value, 1))
            if value < 1:
                break
            d += 1
    return torch.tensor(values, dtype=torch.int32)


def frequencies(logits: Tensor) -> Tensor:
    """Integer frequency rows (N, K) from fixed-point logits (N, K) via the exponential table."""
    table = exp_table(logits.shape[1])
    gap = (logits.max(dim=1, keepdim=True).values - logits).clamp(max=len(table) - 1)
    return table[gap]


@lru_cache(maxsize=64)
def patch_index(height: int, width: int, order: str | None = None, number: int = 0) -> Tensor:
    """(N, 9) row numbers of each 3x3 neighbourhood in the zero-padded, flattened (H+2)(W+2) map.

    The centres are every position (``order`` None) or those of pass ``number`` of ``order``, in raster order.
    """
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    rows, cols = rows.flatten(), cols.flatten()
    if order is not None:
        keep = pass_masks(order, height, width)[number].flatten()
        rows, cols = rows[keep], cols[keep]
    dy, dx = torch.meshgrid(torch.arange(3), torch.arange(3), indexing="ij")
    return (rows[:, None] + dy.flatten()) * (width + 2) + cols[:, None] + dx.flatten()


def patches(x: Tensor, index: Tensor) -> Tensor:
    """3x3 zero-padded patches of a channels-last map (H, W, C) as rows (N, 9 * C)."""
    padded = F.pad(x, (0, 0, 1, 1, 1, 1)).reshape(-1, x.shape[-1])
    return padded[index].reshape(index.shape[0], 9 * x.shape[-1])


@dataclass(frozen=True)
class IntegerConv:
    """A convolution in integers: y = clamp(((x W^T + b) * m + 2^(s-1)) >> s) per output channel.

    Inputs are patch rows (N, k*k*I) in (row, col, channel) order; weights are (O, k*k*I).
    """

    weight: Tensor  # int64 (O, k * k * I)
    bias: Tensor  # int64 (O,)
    multiplier: Tensor  # int64 (O,)
    shift: int
    low: int
    high: int

    def accumulate(self, rows: Tensor) -> Tensor:
        """Exact int64 accumulators (N, O), bias included."""
        return exact_matmul(rows, self.weight) + self.bias

    def requantize(self, acc: Tensor) -> Tensor:
        """Accumulators to output units: integer multiply, rounding shift, clamp."""
        return ((acc * self.multiplier + (1 << (self.shift - 1))) >> self.shift).clamp(self.low, self.high)

    def __call__(self, rows: Tensor) -> Tensor:
        return self.requantize(self.accumulate(rows))

    def tensors(self, prefix: str) -> dict[str, Tensor]:
        """Compact storage: int8 weights, int32 bias and multipliers, shift and bounds in one vector."""
        return {
            f"{prefix}.weight": self.weight.to(torch.int8),
            f"{prefix}.bias": self.bias.to(torch.int32),
            f"{prefix}.multiplier": self.multiplier.to(torch.int32),
            f"{prefix}.params": torch.tensor([self.shift, self.low, self.high], dtype=torch.int64),
        }

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor], prefix: str) -> "IntegerConv":
        shift, low, high = (int(v) for v in tensors[f"{prefix}.params"])
        if not 1 <= shift <= 62:
            raise ValueError(f"{prefix}: shift {shift} out of range")
        return cls(
            tensors[f"{prefix}.weight"].to(torch.int64),
            tensors[f"{prefix}.bias"].to(torch.int64),
            tensors[f"{prefix}.multiplier"].to(torch.int64),
            shift,
            low,
            high,
        )


@dataclass(frozen=True)
class IntegerLevelPrior:
    """Integer twin of :class:`LevelPrior`: frequency tables for one level's stages.

    Maps are channels-last (H, W, C). The first layer is split into its context part, computed once
    per stage, and its decoded-neighbour part (``conv1_neighbours``, same scales), added in every pass
    after the first together with the pass's bias (``pass_bias``, accumulator units; zero for the
    checkerboard, whose files store none).
    """

    order: str  # the pass order (:func:`aecodec.models.prior.pass_masks`)
    stage_bias: Tensor  # int64 (S, E)
    previous: tuple[Tensor, ...]  # int64 (K, E) per earlier stage
    coarser: tuple[Tensor, ...]  # int64 (K, E) per coarser-level stage
    anchors: tuple[Tensor, ...]  # int64 (K, E) per stage: indices decoded in earlier passes
    conv1: IntegerConv  # context channels
    conv1_neighbours: Tensor  # int64 (O, 9 * E), the decoded-neighbour channels of the first layer
    conv2: IntegerConv
    head: IntegerConv
    pass_bias: Tensor  # int64 (P, O), added to the first layer's accumulators in pass p

    @property
    def num_stages(self) -> int:
        return self.stage_bias.shape[0]

    def context(self, stage: int, previous: list[Tensor], coarser: list[Tensor], shape: tuple[int, int]) -> Tensor:
        """First-layer accumulators (H*W, O) from what is known before ``stage`` is decoded."""
        ctx = self.stage_bias[stage].expand(*shape, -1).clone()
        for table, idx in zip(self.previous, previous[:stage]):
            ctx += table[idx]
        for table, idx in zip(self.coarser, coarser[: conditioning_stages(stage, len(self.coarser))]):
            ctx += table[idx].repeat_interleave(2, dim=0).repeat_interleave(2, dim=1)
        return self.conv1.accumulate(patches(ctx, patch_index(*shape)))

    def frequencies(self, stage: int, context: Tensor, indices: Tensor, number: int) -> Tensor:
        """Frequency rows (N, K) for the positions of pass ``number``, in raster order.

        ``indices`` (H, W) holds this stage's indices; only those decoded in earlier passes are read.
        """
        height, width = indices.shape
        acc = context + self.pass_bias[number]
        if number:
            known = decoded_before(self.order, height, width, number)
            neighbours = self.anchors[stage][indices] * known[:, :, None]
            acc = acc + exact_matmul(patches(neighbours, patch_index(height, width)), self.conv1_neighbours)
        hidden = self.conv1.requantize(acc).view(height, width, -1)
        hidden = self.conv2(patches(hidden, patch_index(height, width, self.order, number)))
        return frequencies(self.head(hidden))

    def tensors(self, prefix: str) -> dict[str, Tensor]:
        out = {f"{prefix}.stage_bias": self.stage_bias.to(torch.int8)}
        for name in ("previous", "coarser", "anchors"):
            for i, table in enumerate(getattr(self, name)):
                out[f"{prefix}.{name}.{i}"] = table.to(torch.int8)
        for name in ("conv1", "conv2", "head"):
            out.update(getattr(self, name).tensors(f"{prefix}.{name}"))
        out[f"{prefix}.conv1_neighbours.weight"] = self.conv1_neighbours.to(torch.int8)
        if self.order != CHECKERBOARD:
            out[f"{prefix}.pass_bias"] = self.pass_bias.to(torch.int32)
        return out

    @classmethod
    def from_tensors(
        cls,
        tensors: dict[str, Tensor],
        prefix: str,
        num_stages: int,
        coarser_stages: int,
        num_codes: int,
        order: str = CHECKERBOARD,
    ) -> "IntegerLevelPrior":
        """Load from stored tensors, checking every dtype and shape (ValueError if one is wrong)."""

        def tables(name: str, count: int) -> tuple[Tensor, ...]:
            return tuple(tensors[f"{prefix}.{name}.{i}"].to(torch.int64) for i in range(count))

        if any(t.is_floating_point() or t.is_complex() for k, t in tensors.items() if k.startswith(prefix)):
            raise ValueError(f"{prefix}: integer prior tensors must have integer dtypes")
        conv1 = IntegerConv.from_tensors(tensors, f"{prefix}.conv1")
        check_order(order)
        if order == CHECKERBOARD:
            if f"{prefix}.pass_bias" in tensors:
                raise ValueError(f"{prefix}: a checkerboard prior has no pass biases")
            pass_bias = torch.zeros(pass_count(order), conv1.weight.shape[0], dtype=torch.int64)
        else:
            pass_bias = tensors[f"{prefix}.pass_bias"].to(torch.int64)
        level = cls(
            order,
            tensors[f"{prefix}.stage_bias"].to(torch.int64),
            tables("previous", num_stages - 1),
            tables("coarser", coarser_stages),
            tables("anchors", num_stages),
            conv1,
            tensors[f"{prefix}.conv1_neighbours.weight"].to(torch.int64),
            IntegerConv.from_tensors(tensors, f"{prefix}.conv2"),
            IntegerConv.from_tensors(tensors, f"{prefix}.head"),
            pass_bias,
        )
        level._check_shapes(num_codes)
        return level

    def _check_shapes(self, num_codes: int) -> None:
        embed = self.stage_bias.shape[1]
        hidden1, hidden2 = self.conv1.weight.shape[0], self.conv2.weight.shape[0]
        expected = [
            (self.stage_bias, (self.num_stages, embed)),
            *((t, (num_codes, embed)) for t in (*self.previous, *self.coarser, *self.anchors)),
            (self.conv1.weight, (hidden1, 9 * embed)),
            (self.conv1_neighbours, (hidden1, 9 * embed)),
            (self.conv2.weight, (hidden2, 9 * hidden1)),
            (self.pass_bias, (pass_count(self.order), hidden1)),
            (self.head.weight, (num_codes, hidden2)),
            *((t, (c.weight.shape[0],)) for c in (self.conv1, self.conv2, self.head) for t in (c.bias, c.multiplier)),
        ]
        for tensor, shape in expected:
            if tuple(tensor.shape) != shape:
                raise ValueError(f"integer prior tensor of shape {tuple(tensor.shape)} where {shape} is expected")


@dataclass(frozen=True)
class IntegerPrior:
    """Integer priors of both levels of a VQ-VAE-2 model."""

    top: IntegerLevelPrior
    bottom: IntegerLevelPrior

    @property
    def order(self) -> str:
        """The pass order of both levels (a model file's ``prior_order``)."""
        return self.top.order

    def tensors(self) -> dict[str, Tensor]:
        return {**self.top.tensors("prior.top"), **self.bottom.tensors("prior.bottom")}

    @classmethod
    def from_tensors(
        cls, tensors: dict[str, Tensor], top_stages: int, bottom_stages: int, num_codes: int, order: str = CHECKERBOARD
    ) -> "IntegerPrior":
        return cls(
            IntegerLevelPrior.from_tensors(tensors, "prior.top", top_stages, 0, num_codes, order),
            IntegerLevelPrior.from_tensors(tensors, "prior.bottom", bottom_stages, top_stages, num_codes, order),
        )


# code_group(level, stage, positions, freqs) -> the symbols at those positions, raster order.
GroupCoder = Callable[[int, int, Tensor, Tensor], Tensor]

TOP, BOTTOM = 0, 1


def _traverse_level(
    prior: IntegerLevelPrior,
    level: int,
    shape: tuple[int, int],
    stages: int,
    coarser: list[Tensor],
    code_group: GroupCoder,
) -> list[Tensor]:
    decoded: list[Tensor] = []
    for stage in range(stages):
        context = prior.context(stage, decoded, coarser, shape)
        indices = torch.zeros(shape, dtype=torch.int64)
        for number, positions in enumerate(pass_masks(prior.order, *shape)):
            if positions.any():  # a small map may leave a grid's pass empty
                freqs = prior.frequencies(stage, context, indices, number)
                indices[positions] = code_group(level, stage, positions, freqs)
        decoded.append(indices)
    return decoded


def traverse(
    prior: IntegerPrior, bottom_shape: tuple[int, int], stages: tuple[int, int], code_group: GroupCoder
) -> tuple[list[Tensor], list[Tensor]]:
    """Visit every symbol group of a tile in coding order; returns the (top, bottom) stage indices.

    Order: levels coarse to fine, residual stages in order, and per stage the passes of the prior's
    order, each one integer-network evaluation whose frequency rows serve all symbols of that pass.
    """
    top_shape = (bottom_shape[0] // 2, bottom_shape[1] // 2)
    top = _traverse_level(prior.top, TOP, top_shape, stages[0], [], code_group)
    bottom = _traverse_level(prior.bottom, BOTTOM, bottom_shape, stages[1], top, code_group)
    return top, bottom


def code_length(prior: IntegerPrior, top: list[Tensor], bottom: list[Tensor]) -> tuple[float, int]:
    """Ideal bits (cross-entropy under the integer tables) and symbol count of one tile's indices."""
    bits, count = 0.0, 0

    def measure(level: int, stage: int, positions: Tensor, freqs: Tensor) -> Tensor:
        nonlocal bits, count
        symbols = (top, bottom)[level][stage][positions]
        f = freqs.double()
        bits += float((f.sum(1).log2() - f[torch.arange(len(symbols)), symbols].log2()).sum())
        count += len(symbols)
        return symbols

    traverse(prior, tuple(bottom[0].shape), (len(top), len(bottom)), measure)
    return bits, count


def _flat_weight(conv: torch.nn.Conv2d) -> Tensor:
    """A convolution's weights as float64 rows (O, k * k * I) in (row, col, channel) order."""
    return conv.weight.detach().double().permute(0, 2, 3, 1).flatten(1)


def _weight_scale(conv: torch.nn.Conv2d) -> Tensor:
    """Per-output-channel scale of the int8 weights (O,)."""
    return _flat_weight(conv).abs().amax(dim=1).clamp(min=1e-12) / 127


def _integer_bias(bias: Tensor, unit: Tensor) -> Tensor:
    """Biases in accumulator units (``unit`` per output channel), checked to fit their int32 storage."""
    out = torch.round(bias.detach().double() / unit).to(torch.int64)
    if out.abs().max() >= 1 << 31:
        raise ValueError("a bias does not fit the int32 storage; the layer's weights are degenerate")
    return out


def _quantize_conv(conv: torch.nn.Conv2d, input_scale: float, output_scale: float, low: int, high: int) -> IntegerConv:
    """Per-output-channel int8 weights in (row, col, channel) order; the multiplier maps accumulator
    units to output units."""
    weight_scale = _weight_scale(conv)
    ratio = input_scale * weight_scale / output_scale
    shift = MULTIPLIER_BITS - int(torch.floor(torch.log2(ratio.max())))
    return IntegerConv(
        weight=torch.round(_flat_weight(conv) / weight_scale[:, None]).to(torch.int64),
        bias=_integer_bias(conv.bias, input_scale * weight_scale),
        multiplier=torch.round(ratio * 2.0**shift).to(torch.int64).clamp(min=1),
        shift=shift,
        low=low,
        high=high,
    )


@torch.no_grad()
def _activation_ranges(level: LevelPrior, indices: list[Tensor], coarser: list[Tensor]) -> tuple[float, float]:
    """Largest hidden activations of both layers over calibration indices (99.99th percentile)."""
    first, second = [], []
    for s, idx in enumerate(indices):
        ctx = level.context(s, indices, coarser, idx.shape)
        for number in range(pass_count(level.order)):
            h1, h2 = level.hidden(s, ctx, idx, number)
            first.append(h1.flatten()), second.append(h2.flatten())

    def top(values: list[Tensor]) -> float:
        v = torch.cat(values)
        v = v[torch.randperm(len(v), generator=torch.Generator().manual_seed(0))[: 1 << 24]]
        return max(float(torch.quantile(v.float(), 0.9999)), 1e-6)

    return top(first), top(second)


def quantize_level(level: LevelPrior, indices: list[Tensor], coarser: list[Tensor]) -> IntegerLevelPrior:
    """Convert a trained float level prior to integers, calibrating activations on ``indices``."""
    tables = [
        level.stage_bias.detach(),
        *(t.weight.detach() for t in [*level.previous, *level.coarser, *level.anchors]),
    ]
    embed_scale = max(float(t.abs().max()) for t in tables) / 127

    def q(t: Tensor) -> Tensor:
        return torch.round(t.detach().double() / embed_scale).to(torch.int64)

    range1, range2 = _activation_ranges(level, indices, coarser)
    scale1, scale2 = range1 / ACTIVATION_MAX, range2 / ACTIVATION_MAX
    conv1 = _quantize_conv(level.conv1, embed_scale, scale1, 0, ACTIVATION_MAX)
    # Split the first layer's (row, col, channel) weights into context and neighbour channels.
    taps = conv1.weight.view(conv1.weight.shape[0], 9, 2, -1)
    return IntegerLevelPrior(
        stage_bias=q(level.stage_bias),
        previous=tuple(q(t.weight) for t in level.previous),
        coarser=tuple(q(t.weight) for t in level.coarser),
        anchors=tuple(q(t.weight) for t in level.anchors),
        order=level.order,
        conv1=IntegerConv(taps[:, :, 0].flatten(1), conv1.bias, conv1.multiplier, conv1.shift, conv1.low, conv1.high),
        conv1_neighbours=taps[:, :, 1].flatten(1),
        conv2=_quantize_conv(level.conv2, scale1, scale2, 0, ACTIVATION_MAX),
        head=_quantize_conv(level.head, scale2, 1 / LOGIT_SCALE, -LOGIT_LIMIT, LOGIT_LIMIT),
        pass_bias=(
            torch.zeros(pass_count(level.order), conv1.weight.shape[0], dtype=torch.int64)
            if level.pass_bias is None
            else _integer_bias(level.pass_bias, embed_scale * _weight_scale(level.conv1))
        ),
    )


def quantize_prior(prior: HierarchicalPrior, top: list[Tensor], bottom: list[Tensor]) -> IntegerPrior:
    """Integer prior from a float one, calibrated on batches of stage indices (B, H, W) per stage."""
    return IntegerPrior(quantize_level(prior.top, top, []), quantize_level(prior.bottom, bottom, top))
