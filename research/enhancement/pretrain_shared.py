"""Train a shared synthesis + ARM on photo crops (each crop with its own latents, base quality and lambda).

python -m research.enhancement.pretrain_shared OUT.pt STEPS [USE_BASE=1]
-> a quantized state dict (synthesis on 2^-10, ARM on 2^-8).
"""

import glob
import math
import sys
import time

import torch

from research.enhancement.data import base, load
from research.enhancement.encode import to_tensor
from research.enhancement.model import Enhancement, EnhConfig
from research.enhancement.paramcode import quantize_module

PHOTOS = sorted(glob.glob("/work/shared/data/photos/*.png"))[:40]  # 41.. held out
LAMBDAS = [3e-3, 1e-3, 3e-4, 1e-4]
QUALITIES = [1, 2, 4, 7]


def main(out: str, steps: int, use_base: bool, n_images: int = 6, crop: int = 160) -> None:
    torch.manual_seed(0)
    cfg = EnhConfig() if use_base else EnhConfig(levels=7, use_base=False)
    items = []
    for k, path in enumerate(PHOTOS[:: max(1, len(PHOTOS) // n_images)][:n_images]):
        px = load(path, crop)
        b = to_tensor(base(px, QUALITIES[k % 4])[0]) if use_base else None
        items.append((to_tensor(px), b, LAMBDAS[k % 4], Enhancement(cfg, crop, crop)))
    shared = items[0][3]
    for _, _, _, m in items[1:]:
        m.synthesis, m.arm = shared.synthesis, shared.arm
    nets = list(shared.synthesis.parameters()) + list(shared.arm.parameters())
    latents = [p for _, _, _, m in items for p in m.latents.parameters()]
    opt = torch.optim.Adam([{"params": nets, "mult": 1.0}, {"params": latents, "mult": 5.0}], lr=1e-2)
    t = time.time()
    for it in range(steps):
        for g in opt.param_groups:
            g["lr"] = g["mult"] * 1e-2 * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * it / steps)))
        mode = "noise" if it < 0.8 * steps else "ste"
        loss_total, log = 0.0, []
        for x, b, lam, m in items:
            lat = m.quantized_latents(mode)
            mse = torch.mean((m.image(lat, b) - x) ** 2)
            bpp = m.rate_bits(lat) / x[0, 0].numel()
            loss_total = loss_total + mse / lam + bpp  # lambda-normalised so every point weighs alike
            log.append((round(10 * math.log10(1 / float(mse.detach())), 2), round(float(bpp.detach()), 3)))
        opt.zero_grad()
        loss_total.backward()
        opt.step()
        if it % 50 == 0 or it == steps - 1:
            print(it, round(time.time() - t), log, flush=True)
    state = {}
    for name, k in (("synthesis", 10), ("arm", 8)):
        q, bits = quantize_module(getattr(shared, name), k)
        state.update({f"{name}.{n}": v for n, v in q.items()})
        print(name, "bits if coded", bits)
    torch.save({"state": state, "cfg": cfg.__dict__}, out)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(sys.argv[1], int(sys.argv[2]), bool(int(sys.argv[3])) if len(sys.argv) > 3 else True)
