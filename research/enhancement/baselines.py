"""JPEG/WebP/AVIF (Pillow, via aecodec.bench.baselines) and the VQ-VAE-2 base on the crops -> a JSONL file.

python -m research.enhancement.baselines CROP OUT.jsonl"""

import json
import sys

import numpy as np
import torch
from PIL import Image

from aecodec.bench.baselines import avif, jpeg, webp
from research.enhancement.data import KODAK, base, load
from research.enhancement.encode import psnr_u8

IMAGES = ["kodim01", "kodim03", "kodim05", "kodim13", "kodim19", "kodim23"]


def main(crop: int, out: str) -> None:
    with open(out, "a") as f:
        for image in IMAGES:
            px = load(f"{KODAK}/{image}.png", crop or None)
            n = px.shape[0] * px.shape[1]
            for c in (jpeg(), webp(), avif()):
                for q in c.qualities:
                    data = c.encode(Image.fromarray(px), q)
                    rec = np.asarray(c.decode(data))
                    f.write(
                        json.dumps(
                            {
                                "codec": c.name,
                                "image": image,
                                "crop": crop,
                                "q": q,
                                "bpp": len(data) * 8 / n,
                                "psnr": psnr_u8(rec, px),
                            }
                        )
                        + "\n"
                    )
            for q in range(1, 11):
                bp, bits = base(px, q)
                f.write(
                    json.dumps(
                        {
                            "codec": "base",
                            "image": image,
                            "crop": crop,
                            "q": q,
                            "bpp": bits / n,
                            "psnr": psnr_u8(bp, px),
                        }
                    )
                    + "\n"
                )
            print(image, flush=True)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(int(sys.argv[1]), sys.argv[2])
