"""Rank-r weight deltas on every convolution of the post-filter, on top of the biases, judged as the product judges
a file: after the decoder's bound and the corrections (Wiener filter, correction field) refitted to each candidate.

Per point (an effort-2 file of a 768x512 crop): the shared filter; effort 5's bias tuning (:func:`tune_filter`);
biases and rank-r deltas trained together (bf16 Adam, the factors rounded to steps of 2^-e of their largest
magnitude and every value exponential-Golomb coded, the delta bytes added to the file). Prints each candidate's
squared error plus lambda times its bits, saved against the shared filter, in % of the file's bits.

    PYTHONPATH=. python research/postfilter/deltas_corrected.py IMAGE:Q STEPS RANK LR [WEIGHT [FORM [skip]]]

WEIGHT (default 0) adds a rate term to the training: WEIGHT * lambda times an L1 proxy of the deltas' bits.
FORM: ``lr`` (default, (o x r)(r x 9i) factors) or ``cp`` (o, i and 3x3 factors per rank); a seventh argument
skips the bias-only candidate. Environment BIAS_FIRST=N: the first N steps move the biases only, and those
biases are a candidate too (effort 5's chunk at steps 2^-8).
"""

import copy
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from aecodec.bitstream.format import CORRECTION_FIELD, FILTER_TUNING, WIENER_FILTER, pack, unpack
from aecodec.bitstream.golomb import best_order, code_bits
from aecodec.codec import filter_tuning as ft
from aecodec.codec.api import Codec
from aecodec.codec.distortion import squared_error
from aecodec.codec.wiener_filter import Guides
from aecodec.models.postfilter import FilterTuning, one_onednn_thread
from research.postfilter.low_rank import convolutions, effort2_point, offset_correction

BIAS_EXPONENT = 8


def rounded(deltas, exponent):
    """The deltas on their grid and their bits: factors at 2^-exponent of their largest magnitude (a 16-bit scale
    each), bias offsets at 2^-BIAS_EXPONENT."""
    out, bits = [], 0
    for factors, d in deltas:
        parts = []
        for factor in factors:
            scale = float(factor.abs().max()) or 1.0
            steps = torch.round(factor / scale * 2**exponent)
            parts.append(steps * scale / 2**exponent)
            values = [int(v) for v in steps.flatten()]
            bits += code_bits(values, best_order(values)) + 16
        steps = torch.round(d * 2**BIAS_EXPONENT)
        values = [int(v) for v in steps.flatten()]
        bits += code_bits(values, best_order(values))
        out.append((parts, steps / 2**BIAS_EXPONENT))
    return out, bits


def with_offsets(pf, weight_offsets, bias_offsets):
    """A copy of ``pf`` with offsets added to every convolution's weights and biases."""
    moved = copy.deepcopy(pf)
    for conv, w, d in zip(convolutions(moved), weight_offsets, bias_offsets, strict=True):
        conv.weight.data += w
        conv.bias.data += d
    return moved


def with_deltas(pf, deltas):
    """A copy of ``pf`` with the deltas folded into its weights and biases."""
    return with_offsets(pf, delta_weights(pf, deltas), [d for _, d in deltas])


def delta_weight(factors, shape):
    """A convolution's weight delta from its factors: ``(a, b)`` rank-r (o x r) @ (r x i*9), or ``(a, b, k)`` the
    canonical-polyadic form sum_r a[o,r] b[i,r] k[s,r] (o + i + 9 values per rank)."""
    if len(factors) == 2:
        return (factors[0] @ factors[1]).reshape(shape)
    a, b, k = factors
    return torch.einsum("or,ir,sr->ois", a, b, k).reshape(shape)


def delta_weights(pf, deltas):
    """Every convolution's weight delta from its deltas' factors."""
    return [delta_weight(factors, conv.weight.shape) for conv, (factors, _) in zip(convolutions(pf), deltas)]


def initial_factors(shape, rank, form):
    o, i = shape[:2]
    if form == "lr":
        return [torch.zeros(o, rank), torch.randn(rank, i * 9) * 0.01]
    return [torch.zeros(o, rank), torch.randn(i, rank) * 0.1, torch.randn(9, rank) * 0.1]


def filtered_correction(pf, x, q, deltas):
    """The filter's correction of ``x`` with the deltas added to its weights and biases."""
    return offset_correction(pf, x, q, delta_weights(pf, deltas), [d for _, d in deltas])


def train(pf, decoded, original, quality, steps, rank, lr, rate_weight, lam, form="lr", bias_first=0):
    """The deltas after ``steps`` Adam steps, the first ``bias_first`` of them on the biases only; and the biases as
    they were after those (None if ``bias_first`` is 0)."""
    torch.manual_seed(0)
    deltas = []
    for c in convolutions(pf):
        factors = [f.requires_grad_(True) for f in initial_factors(c.weight.shape, rank, form)]
        deltas.append((factors, torch.zeros(c.weight.shape[0], requires_grad=True)))
    groups = [
        {"params": [p for factors, _ in deltas for p in factors], "lr": lr},
        {"params": [deltas[0][1]], "lr": ft.LEARNING_RATE},
        {"params": [d for _, d in deltas[1:]], "lr": ft.LAYER_LEARNING_RATE},
    ]
    optimizer = torch.optim.Adam(groups)
    x, y = ft._as_tensor(decoded), ft._as_tensor(original)
    q, gain = torch.tensor([quality]), float(pf.gain[quality - 1]) or 1.0
    with one_onednn_thread(), torch.enable_grad():
        snapshot = None
        for step in range(steps):
            if step == bias_first and bias_first:
                snapshot = [d.detach().clone() for _, d in deltas]
            optimizer.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                c = filtered_correction(pf, x, q, deltas)
            loss = F.mse_loss(x + gain * c.float(), y)
            if rate_weight:
                # L1 of each factor relative to its largest magnitude: a proxy of its values' bits on the grid
                proxy = sum(
                    (f.abs() / f.abs().max().detach().clamp(min=1e-8)).sum() for factors, _ in deltas for f in factors
                )
                loss = loss + rate_weight * lam * proxy / (x.numel() * 255**2 / 3)
            loss.backward()
            if step < bias_first:
                for factors, _ in deltas:
                    for f in factors:
                        f.grad = None  # Adam leaves them as they are
            optimizer.step()
    return [([f.detach() for f in factors], d.detach()) for factors, d in deltas], snapshot


def judged(codec, file, pf, tuning, unfiltered, original, quality, extra_bytes):
    """Squared error after the bound and the corrections plus lambda times the bits, and the dB before them."""
    level, lam = codec.model.quality_plan(quality)[1], codec._lagrangian(quality)
    filtered = codec.model.residual.bound_correction(pf.apply(unfiltered, quality, tuning), unfiltered, level)
    base = codec._decoded(file)[0]
    corrected, shown = codec._corrected(file, filtered, Guides(unfiltered, base), original, lam)
    size = len(pack(corrected, codec.max_pixels)) + extra_bytes
    return squared_error(shown, original) + lam * 8 * size, squared_error(filtered, original), size


if __name__ == "__main__":
    torch.set_num_threads(1)
    codec = Codec()
    pf = codec.model.postfilter
    steps, rank, lr = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    rate_weight = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
    form = sys.argv[6] if len(sys.argv) > 6 else "lr"
    only_deltas = len(sys.argv) > 7
    bias_first = int(os.environ.get("BIAS_FIRST", "0"))
    quality, original, data, unfiltered, _ = effort2_point(codec, sys.argv[1])
    gain = float(pf.gain[quality - 1]) or 1.0
    file, lam = unpack(data), codec._lagrangian(quality)
    file = file.without_chunk(WIENER_FILTER).without_chunk(CORRECTION_FIELD)  # refitted per candidate
    name = sys.argv[1].split("/")[-1]
    bits = 8 * len(data)  # the effort-2 file, corrections included
    rows = []
    shared_cost, se0, size0 = judged(codec, file, pf, None, unfiltered, original, quality, 0)
    rows.append(("shared", shared_cost, se0, size0))
    t = time.time()
    payload = None if only_deltas else ft.tune_filter(pf, unfiltered, original, quality, steps, lam)
    t_bias = time.time() - t
    if payload is not None:
        biased = file.with_chunk(FILTER_TUNING, payload)
        tuning = ft.unpack_tuning(payload, pf)
        rows.append(("biases", *judged(codec, biased, pf, tuning, unfiltered, original, quality, 0)))
    t = time.time()
    deltas, snapshot = train(pf, unfiltered, original, quality, steps, rank, lr, rate_weight, lam, form, bias_first)
    t_delta = time.time() - t
    if snapshot is not None:  # the biases before the deltas moved, as effort 5's chunk (version 2, steps 2^-8)
        layers = tuple(ft._on_grid(d, 8) for d in snapshot[1:])
        tuning = FilterTuning(torch.round(snapshot[0] / ft.BIAS_STEP).clamp(-128, 127) * ft.BIAS_STEP, gain, layers)
        biased = file.with_chunk(FILTER_TUNING, ft.pack_tuning(tuning, 8))
        rows.append((f"biases@{bias_first}", *judged(codec, biased, pf, tuning, unfiltered, original, quality, 0)))
    for exponent in (2, 3, 4, 5):
        grid, delta_bits = rounded(deltas, exponent)
        moved = with_deltas(pf, grid)
        cost = judged(codec, file, moved, None, unfiltered, original, quality, 2 + (delta_bits + 7) // 8)
        rows.append((f"{form}{rank} e{exponent} ({(delta_bits + 7) // 8} B)", *cost))
    line = f"{name} q{quality} {len(data)} B rank {rank} lr {lr} w {rate_weight} ({t_bias:.0f}s/{t_delta:.0f}s):"
    for label, cost, se, _ in rows:
        saved = (shared_cost - cost) / lam / bits
        line += f" | {label}: {saved:+.2%} (filt {10 * np.log10(se0 / se):+.3f} dB)"
    print(line, flush=True)
