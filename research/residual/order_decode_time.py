"""Residual decode time, checkerboard (rpl4) against depth 2 (rpl5), interleaved in one process, kodim23 at three
qualities. Usage (repository root): ``PYTHONPATH=. python research/residual/order_decode_time.py``."""

import time

import numpy as np
from PIL import Image

from aecodec.bitstream.format import RESIDUAL, unpack
from aecodec.codec.api import Codec
from aecodec.codec.residual_coding import decode_residual
from aecodec.models.model_files import shipped_model
from aecodec.models.residual import blocks_shape

img = np.asarray(Image.open("../shared/data/kodak/kodim23.png").convert("RGB"))
codecs = {n: Codec(shipped_model(n)) for n in ("vqvae2-wide-rpl4", "vqvae2-wide-rpl5")}
for q in (5, 17, 29):
    files = {n: bytes(c.compress(img, q)) for n, c in codecs.items()}
    times = {n: [] for n in codecs}
    for _ in range(5):
        for n, c in codecs.items():
            layer, level = c.model.residual, c.model.quality_plan(q)[1]
            payload = unpack(files[n]).chunk(RESIDUAL)
            t = time.perf_counter()
            decode_residual(layer, level, payload, blocks_shape(768, 512))
            times[n].append(time.perf_counter() - t)
    whole = {n: [] for n in codecs}
    for _ in range(3):
        for n, c in codecs.items():
            t = time.perf_counter()
            c.decompress(files[n])
            whole[n].append(time.perf_counter() - t)
    a, b = (np.median(times[n]) for n in codecs)
    wa, wb = (np.median(whole[n]) for n in codecs)
    print(
        f"q{q}: bytes {len(files['vqvae2-wide-rpl4'])} -> {len(files['vqvae2-wide-rpl5'])}; residual decode"
        f" {a * 1000:.0f} -> {b * 1000:.0f} ms ({b / a:.2f}x); whole decode {wa:.2f} -> {wb:.2f} s ({wb / wa:.2f}x)",
        flush=True,
    )
