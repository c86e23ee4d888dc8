"""Probe: the post-filter's last convolution refitted to one image by least squares (a Wiener filter on the
filter's hidden features), offsets quantized and exp-Golomb coded. IMAGE:Q/Q,... [EFFORT]
Saving = (squared error of the shared filter - refitted, both bounded as the decoder does) / lambda - bits,
in % of the file's bits. Variants: the full 3x3 readout (3 x 288 + 3) and the centre tap only (3 x 32 + 3)."""

import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from aecodec.bitstream.golomb import best_order, code_bits
from aecodec.codec import filter_tuning as ft
from aecodec.codec.api import Codec
from aecodec.codec.distortion import squared_error
from research.crops import load


def hidden_of(pf, x, q):
    h = F.relu(pf.first(x) + pf.quality_bias[q - 1][:, :, None, None])
    h = F.relu(pf.middle(h))
    for block in pf.blocks:
        h = block(h)
    return h


def output(pf, decoded, q, dw, db, gain):
    x = ft._as_tensor(decoded)
    with torch.no_grad():
        h = hidden_of(pf, x, torch.tensor([q]))
        c = F.conv2d(h, pf.last.weight + dw, pf.last.bias + db, padding=1)
        y = x + gain * c
    return (y[0] * 255).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()


def solve(pf, decoded, original, q, gain, centre, ridge):
    x, t = ft._as_tensor(decoded), ft._as_tensor(original)
    with torch.no_grad():
        h = hidden_of(pf, x, torch.tensor([q]))
        c = F.conv2d(h, pf.last.weight, pf.last.bias, padding=1)
        want = ((t - x) / gain - c)[0].reshape(3, -1).double()  # what the readout should add
        feats = (h if centre else F.unfold(h, 3, padding=1).reshape(1, -1, h.shape[2], h.shape[3]))[0]
        feats = torch.cat([feats.reshape(feats.shape[0], -1), torch.ones(1, want.shape[1])]).double()
        gram = feats @ feats.T
        rhs = feats @ want.T
        n = gram.shape[0]
        sol = torch.linalg.solve(
            gram + ridge * torch.eye(n, dtype=torch.float64) * gram.diagonal().mean(), rhs
        ).T  # (3, n)
    return sol[:, :-1].float(), sol[:, -1].float()


if __name__ == "__main__":
    torch.set_num_threads(1)
    codec = Codec()
    pf = codec.model.postfilter
    effort = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    for spec in sys.argv[1].split(","):
        path, _, qs = spec.partition(":")
        img = load(path)
        x = np.asarray(img)
        for quality in map(int, qs.split("/")):
            data = bytes(codec.compress(img, quality, effort=effort))
            decoded, lam = codec.decompress_unfiltered(data), codec._lagrangian(quality)
            level = codec.model.quality_plan(quality)[1]
            gain = float(pf.gain[quality - 1]) or 1.0

            def bound(y, decoded=decoded, level=level):
                return codec.model.residual.bound_correction(y, decoded, level)

            shared = squared_error(bound(output(pf, decoded, quality, 0, 0, gain)), x)
            line = [f"{path.split('/')[-1]} q{quality} {len(data)} B"]
            for centre in (True, False):
                t0 = time.time()
                w, b = solve(pf, decoded, x, quality, gain, centre, 1e-4)
                best = (0.0, None)
                for e in (6, 7, 8, 9, 10, 11):
                    ws = torch.round(w * 2**e)
                    bs = torch.round(b * 2**e)
                    dw = torch.zeros_like(pf.last.weight)
                    if centre:
                        dw[:, :, 1, 1] = ws / 2**e
                    else:
                        dw = (ws / 2**e).reshape(3, 32, 3, 3)
                    vals = [int(v) for v in ws.flatten()] + [int(v) for v in bs]
                    bits = code_bits(vals, best_order(vals)) + 16
                    err = squared_error(bound(output(pf, decoded, quality, dw, bs / 2**e, gain)), x)
                    save = (shared - err) / lam - bits
                    if save > best[0]:
                        best = (save, e, bits, shared - err)
                if best[1] is None:
                    line.append(f"{'centre' if centre else '3x3'} none")
                else:
                    name, seconds = "centre" if centre else "3x3", time.time() - t0
                    line.append(
                        f"{name} {100 * best[0] / (8 * len(data)):+.2f}% (e{best[1]}, {best[2] // 8} B, {seconds:.0f}s)"
                    )
            print(" | ".join(line), flush=True)
