"""One RD point, appended to results/results.jsonl (or out=PATH).

python -m research.enhancement.run_point IMAGE CROP BASE_Q LAMBDA ITERS [key=value ...]
"""

import json
import os
import sys
import time
from pathlib import Path

import torch

from research.enhancement.data import KODAK, base, load
from research.enhancement.encode import Schedule, encode, psnr_u8
from research.enhancement.model import EnhConfig

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    image, crop, base_q, lam, iters = (
        sys.argv[1],
        int(sys.argv[2]),
        int(sys.argv[3]),
        float(sys.argv[4]),
        int(sys.argv[5]),
    )
    extra = dict(a.split("=") for a in sys.argv[6:])
    tag = extra.pop("tag", "")
    shared_path = extra.pop("shared", None)
    shared = torch.load(shared_path)["state"] if shared_path else None
    out = extra.pop("out", str(RESULTS / "results.jsonl"))
    warmup = extra.get("warmup", "0")
    cfg_kw = {k: int(v) for k, v in extra.items() if k in ("levels", "hidden", "hidden2", "arm_hidden")}
    px = load(f"{KODAK}/{image}.png", crop or None)
    n = px.shape[0] * px.shape[1]
    t = time.perf_counter()
    if base_q:
        bp, bbits = base(px, base_q)
        cfg = EnhConfig(**cfg_kw)
    else:
        bp, bbits = None, 0
        cfg = EnhConfig(**{"levels": 7, **cfg_kw}, use_base=False)
    base_s = time.perf_counter() - t
    sched = Schedule(iters=iters, finish_iters=max(20, iters // 10), rate_warmup=float(extra.pop("warmup", 0)))
    r = encode(px, bp, cfg, lam, sched, shared=shared)
    rec = {
        "tag": tag,
        "shared": shared_path,
        "warmup": float(warmup),
        "image": image,
        "crop": crop,
        "h": px.shape[0],
        "w": px.shape[1],
        "base_q": base_q,
        "lam": lam,
        "iters": iters,
        "cfg": cfg.__dict__,
        "macs": cfg.macs_per_pixel(),
        "base_bits": bbits,
        "base_psnr": psnr_u8(bp, px) if bp is not None else None,
        "bits_latents": r.bits_latents,
        "bits_params": r.bits_params,
        "bits_side": r.bits_side,
        "float_rate_bits": r.float_rate_bits,
        "exact_rate_bits": r.exact_rate_bits,
        "bpp": (bbits + r.bits) / n,
        "psnr": r.psnr,
        "encode_s": r.encode_s + base_s,
        "decode_s": r.decode_s,
        "threads": torch.get_num_threads(),
        "log": r.log,
    }
    with open(out, "a") as f:
        f.write(json.dumps(rec) + "\n")
    print(json.dumps({k: v for k, v in rec.items() if k != "log"}))


if __name__ == "__main__":
    torch.set_num_threads(int(os.environ.get("THREADS", "1")))
    main()
