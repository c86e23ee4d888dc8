"""Encode seconds per iteration and decode seconds on a full 768x512 Kodak image.

python -m research.enhancement.timing THREADS ITERS -> prints a JSON line per mode (with base / without base).
"""

import json
import sys
import time

import numpy as np
import torch
from PIL import Image

from research.enhancement.coding import decode_latents_grouped as decode_latents
from research.enhancement.coding import encode_latents_grouped as encode_latents
from research.enhancement.coding import integer_weights
from research.enhancement.data import KODAK, codec, load
from research.enhancement.encode import Schedule, _train, to_tensor, to_u8
from research.enhancement.model import Enhancement, EnhConfig
from research.enhancement.paramcode import load_quantized, quantize_module


def main(iters: int) -> None:
    px = load(f"{KODAK}/kodim23.png")
    h, w = px.shape[:2]
    x = to_tensor(px)
    t = time.perf_counter()
    data = codec().compress(Image.fromarray(px), quality=3)
    base_enc = time.perf_counter() - t
    t = time.perf_counter()
    bp = np.asarray(codec().decompress(data))
    base_dec = time.perf_counter() - t
    for use_base in (True, False):
        cfg = EnhConfig() if use_base else EnhConfig(levels=7, use_base=False)
        b = to_tensor(bp) if use_base else None
        m = Enhancement(cfg, h, w)
        t = time.perf_counter()
        _train(m, x, b, 3e-4, Schedule(iters=iters), [])
        per_it = (time.perf_counter() - t) / iters
        for name, k in (("synthesis", 8), ("arm", 8)):
            load_quantized(getattr(m, name), quantize_module(getattr(m, name), k)[0])
        with torch.no_grad():
            lat = m.quantized_latents("hard")
        weights = integer_weights(m.arm)
        t = time.perf_counter()
        stream = encode_latents(lat, weights)
        ent_enc = time.perf_counter() - t
        t = time.perf_counter()
        dec = decode_latents(stream, weights, h, w, cfg.levels)
        ent_dec = time.perf_counter() - t
        t = time.perf_counter()
        with torch.no_grad():
            to_u8(m.image(dec, b))
        synth = time.perf_counter() - t
        print(
            json.dumps(
                {
                    "threads": torch.get_num_threads(),
                    "use_base": use_base,
                    "iters": iters,
                    "s_per_iter": per_it,
                    "iters_in_10min": int(600 / per_it),
                    "entropy_encode_s": ent_enc,
                    "entropy_decode_s": ent_dec,
                    "synthesis_s": synth,
                    "base_encode_s": base_enc,
                    "base_decode_s": base_dec,
                    "macs": cfg.macs_per_pixel(),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    torch.set_num_threads(int(sys.argv[1]))
    main(int(sys.argv[2]))
