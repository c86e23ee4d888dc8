"""Effort 5 with vqvae2-wide-rpl4 (checkerboard) against vqvae2-wide-rpl5 (depth 2), same process: IMAGE:Q ...

Usage (repository root, ~15 min per point on one core): ``PYTHONPATH=. python research/residual/order_effort5.py
../shared/data/kodak/kodim04.png:7``. Prints bytes, PSNR and the change of D + lambda R in % of the bits.
"""

import sys
import time

import numpy as np
from PIL import Image

from aecodec.codec.api import Codec
from aecodec.models.model_files import shipped_model

for spec in sys.argv[1:]:
    path, q = spec.rsplit(":", 1)
    q = int(q)
    pixels = np.asarray(Image.open(path).convert("RGB"))
    x = pixels.astype(float)
    out = []
    for name in ("vqvae2-wide-rpl4", "vqvae2-wide-rpl5"):
        codec = Codec(shipped_model(name))
        t = time.time()
        data = codec.compress(pixels, q, effort=5)
        seconds = time.time() - t
        error = ((np.asarray(codec.decompress(data)).astype(float) - x) ** 2).sum()
        out.append((len(data), error, seconds))
    lam = codec._lagrangian(q)
    (b0, e0, s0), (b1, e1, s1) = out
    p0, p1 = (10 * np.log10(255**2 * x.size / e) for e in (e0, e1))
    print(
        f"{path.split('/')[-1]} q{q}: {b0} -> {b1} B ({b1 / b0 - 1:+.2%}), {p0:.3f} -> {p1:.3f} dB,"
        f" D+lR {((e1 - e0) / lam + 8 * (b1 - b0)) / (8 * b0):+.2%} of the bits, {s0:.0f} -> {s1:.0f} s",
        flush=True,
    )
