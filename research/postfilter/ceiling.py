"""Ceiling of per-image adaptation of the post-filter: dB over the shared filter on an effort-2 decode after 240 bf16
Adam steps on (a) every bias (the product's tuning, chunk cost ignored) and (b) every weight and bias (free).
IMAGE:Q STEPS LR_WEIGHTS"""

import copy
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from aecodec.codec import filter_tuning as ft
from aecodec.codec.api import Codec
from aecodec.codec.distortion import squared_error
from aecodec.models.postfilter import one_onednn_thread
from research.postfilter.low_rank import effort2_point


def psnr(err, n):
    return 10 * np.log10(255**2 * n / err)


if __name__ == "__main__":
    torch.set_num_threads(1)
    codec = Codec()
    pf = codec.model.postfilter
    path = sys.argv[1].split(":")[0]
    steps, lr_w = int(sys.argv[2]), float(sys.argv[3])
    q, x, data, decoded, shared = effort2_point(codec, sys.argv[1])
    n = x.size
    line = [f"{path.split('/')[-1]} q{q} {len(data)} B shared {psnr(shared, n):.3f} dB"]
    t = time.time()
    payload = ft.tune_filter(pf, decoded, x, q, steps, 0.0)  # lambda 0: the best chunk regardless of cost
    tuning = ft.unpack_tuning(payload, pf)
    gained = psnr(squared_error(pf.apply(decoded, q, tuning), x), n) - psnr(shared, n)
    line.append(f"biases +{gained:.3f} dB ({time.time() - t:.0f}s)")
    t = time.time()
    free = copy.deepcopy(pf).requires_grad_(True)
    X, Y = ft._as_tensor(decoded), ft._as_tensor(x)
    weights = [p for name, p in free.named_parameters() if name.endswith("weight")]
    biases = [p for name, p in free.named_parameters() if not name.endswith("weight")]
    opt = torch.optim.Adam([{"params": weights, "lr": lr_w}, {"params": biases, "lr": ft.LAYER_LEARNING_RATE}])
    gain = float(pf.gain[q - 1]) or 1.0
    qq = torch.tensor([q])
    with one_onednn_thread(), torch.enable_grad():
        for _ in range(steps):
            opt.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                c = free.correction(X, qq)
            F.mse_loss(X + gain * c.float(), Y).backward()
            opt.step()
    free.requires_grad_(False)
    with torch.no_grad():
        free.gain[q - 1] = gain
    gained = psnr(squared_error(free.apply(decoded, q), x), n) - psnr(shared, n)
    line.append(f"all weights +{gained:.3f} dB ({time.time() - t:.0f}s)")
    print(" | ".join(line), flush=True)
