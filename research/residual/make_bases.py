"""Cache base reconstructions (real .aec bytes and decoded pixels) for residual-coding experiments."""

import glob
import sys
from pathlib import Path

import numpy as np
from PIL import Image

import aecodec

codec = aecodec.Codec()
qs = [int(q) for q in sys.argv[1].split(",")]
which = sys.argv[2]
photos = sorted(glob.glob("/work/shared/data/photos/*.png"))
if which == "kodak":
    items = [(Path(f).stem, Image.open(f).convert("RGB")) for f in sorted(glob.glob("/work/shared/data/kodak/*.png"))]
else:
    sel = [p for i, p in enumerate(photos) if ((i + 1) % 10 == 0) == (which == "held")]
    if which == "train":
        sel = sel[::4]
    items = []
    for f in sel:
        im = Image.open(f).convert("RGB")
        w, h = im.size
        items.append(
            (Path(f).stem, im.crop(((w - 768) // 2, (h - 512) // 2, (w - 768) // 2 + 768, (h - 512) // 2 + 512)))
        )
for name, im in items:
    out = Path(f"/work/scratch/base/{which}-{name}.npz")
    if out.exists():
        continue
    rec = {"x": np.asarray(im)}
    for q in qs:
        data = codec.compress(im, quality=q)
        rec[f"q{q}"] = np.asarray(codec.decompress(data).convert("RGB"))
        rec[f"bytes{q}"] = len(data)
    np.savez_compressed(out, **rec)
    print(name, flush=True)
