"""JPEG/WebP/AVIF RD per cached image (same pixels as the residual experiment), cached as JSON."""

import glob
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

out = Path("/work/scratch/anchors.json")
res = json.loads(out.read_text()) if out.exists() else {}
for f in sorted(glob.glob("/work/scratch/base/*.npz")):
    name = Path(f).stem
    if name.startswith("train") or name in res:
        continue
    x = np.load(f)["x"]
    im = Image.fromarray(x)
    rec = {}
    for fmt in ["JPEG", "WEBP", "AVIF"]:
        pts = []
        for q in [5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70, 75, 80, 85, 90, 95]:
            b = io.BytesIO()
            im.save(b, fmt, quality=q)
            y = np.asarray(Image.open(io.BytesIO(b.getvalue())).convert("RGB")).astype(float)
            mse = ((y - x) ** 2).mean()
            pts.append((8 * b.tell() / x.shape[0] / x.shape[1], 10 * np.log10(255**2 / mse)))
        rec[fmt.lower()] = pts
    res[name] = rec
    out.write_text(json.dumps(res))
    print(name, flush=True)
