"""Per-image low-rank weight deltas on every convolution of the post-filter (plus every bias), free of cost:
dB over the shared filter after STEPS bf16 Adam steps. IMAGE:Q STEPS RANK LR"""

import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from aecodec.bitstream.golomb import best_order, code_bits
from aecodec.codec import filter_tuning as ft
from aecodec.codec.api import Codec
from aecodec.codec.distortion import squared_error
from aecodec.models.postfilter import one_onednn_thread
from research.crops import load


def convolutions(pf):
    """Every convolution of the filter, in their order."""
    return [pf.first, pf.middle, *(c for b in pf.blocks for c in (b.inner, b.outer)), pf.last]


def offset_correction(pf, x, q, weight_offsets, bias_offsets):
    """The filter's correction of ``x`` with offsets added to every convolution's weights and biases."""
    convs = convolutions(pf)

    def conv(i, h):
        return F.conv2d(h, convs[i].weight + weight_offsets[i], convs[i].bias + bias_offsets[i], padding=1)

    h = F.relu(conv(0, x) + pf.quality_bias[q - 1][:, :, None, None])
    h = F.relu(conv(1, h))
    k = 2
    for _ in pf.blocks:
        inner = F.relu(conv(k, h))
        h = F.relu(h + conv(k + 1, inner))
        k += 2
    return conv(k, h)


def forward(pf, x, q, deltas):
    """The correction with rank-r deltas ((a, b), bias offset) on every convolution."""
    weights = [(a @ b).reshape(c.weight.shape) for c, ((a, b), _) in zip(convolutions(pf), deltas)]
    return offset_correction(pf, x, q, weights, [d for _, d in deltas])


def effort2_point(codec: Codec, spec: str) -> tuple[int, np.ndarray, bytes, np.ndarray, float]:
    """For IMAGE:Q, its quality, original pixels, effort-2 file, unfiltered decode and the shared filter's error."""
    path, quality = spec.split(":")
    x = np.asarray(load(path))
    data = bytes(codec.compress(x, int(quality), effort=2))
    decoded = codec.decompress_unfiltered(data)
    return int(quality), x, data, decoded, squared_error(codec.model.postfilter.apply(decoded, int(quality)), x)


if __name__ == "__main__":
    torch.set_num_threads(1)
    codec = Codec()
    pf = codec.model.postfilter
    path = sys.argv[1].split(":")[0]
    steps, rank, lr = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    q, x, data, decoded, shared = effort2_point(codec, sys.argv[1])
    deltas = []
    for c in convolutions(pf):
        o, fan = c.weight.shape[0], c.weight[0].numel()
        a = torch.zeros(o, rank, requires_grad=True)
        b = (torch.randn(rank, fan) * 0.01).requires_grad_(True)
        deltas.append(((a, b), torch.zeros(o, requires_grad=True)))
    count = sum(a.numel() + b.numel() + d.numel() for (a, b), d in deltas)
    opt = torch.optim.Adam(
        [
            {"params": [p for (a, b), _ in deltas for p in (a, b)], "lr": lr},
            {"params": [d for _, d in deltas], "lr": ft.LAYER_LEARNING_RATE},
        ]
    )
    X, Y = ft._as_tensor(decoded), ft._as_tensor(x)
    qq = torch.tensor([q])
    gain = float(pf.gain[q - 1]) or 1.0
    t = time.time()
    with one_onednn_thread(), torch.enable_grad():
        for _ in range(steps):
            opt.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                c = forward(pf, X, qq, deltas)
            F.mse_loss(X + gain * c.float(), Y).backward()
            opt.step()
    with torch.no_grad(), one_onednn_thread():
        y = (X + gain * forward(pf, X, qq, deltas))[0]
    out = (y * 255).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
    db = 10 * np.log10(shared / squared_error(out, x))
    seconds = time.time() - t
    line = (
        f"{path.split('/')[-1]} q{q} {len(data)} B rank {rank} ({count} values) lr {lr}: +{db:.3f} dB ({seconds:.0f}s)"
    )
    lam = codec._lagrangian(q)
    for e in (3, 4, 5, 6, 7):
        # A scaled by its row norms into B's range: quantize a and b each at 2^-e relative to their max magnitude
        qd, bits = [], 0
        for (a, b), d in deltas:
            parts = []
            for factor in (a, b):
                scale = float(factor.abs().max()) or 1.0
                v = torch.round(factor / scale * 2**e)
                parts.append(v * scale / 2**e)
                vals = [int(u) for u in v.flatten()]
                bits += code_bits(vals, best_order(vals)) + 16
            dv = torch.round(d * 2**8)
            vals = [int(u) for u in dv.flatten()]
            bits += code_bits(vals, best_order(vals))
            qd.append(((parts[0], parts[1]), dv / 2**8))
        with torch.no_grad(), one_onednn_thread():
            y = (X + gain * forward(pf, X, qq, qd))[0]
        out = (y * 255).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
        err = squared_error(out, x)
        save = ((shared - err) / lam - bits) / (8 * len(data))
        line += f" | e{e}: +{10 * np.log10(shared / err):.3f} dB {bits // 8} B net {save:+.2%}"
    print(line, flush=True)
