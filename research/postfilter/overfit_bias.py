"""Probe for issue 19: overfit the shipped post-filter's per-quality bias (32 numbers) to one image.

Run from the repository root: ``python research/postfilter/overfit_bias.py [STEPS]``. For held-out
photos 010 and 030 at qualities 6, 14 and 22: Adam on the bias of the image's quality, on the whole
decoded image, then the bias rounded to int8 steps of 1/64 (what a file would carry: 32 bytes), and
the PSNR of plain, shared-filter and per-image-filter decodes.
"""

import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from aecodec.codec.api import Codec


def psnr(decoded: np.ndarray, original: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / ((decoded.astype(float) - original) ** 2).mean()))


def main() -> None:
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    torch.set_num_threads(1)
    codec = Codec()
    postfilter = codec.model.postfilter
    for name in ("010", "030"):
        x = np.asarray(Image.open(f"../shared/data/photos/{name}.png").convert("RGB"))
        target = torch.from_numpy(x.copy()).permute(2, 0, 1)[None].float() / 255
        for quality in (6, 14, 22):
            data, gain = codec.compress(x, quality), float(postfilter.gain[quality - 1])
            postfilter.gain[quality - 1] = 0.0
            plain = np.asarray(codec.decompress(data))
            postfilter.gain[quality - 1] = gain
            shared = postfilter.apply(plain, quality)
            decoded = torch.from_numpy(plain.copy()).permute(2, 0, 1)[None].float() / 255
            bias = postfilter.quality_bias[quality - 1].detach().clone().requires_grad_(True)
            optimizer, start = torch.optim.Adam([bias], lr=0.01), time.perf_counter()
            for _ in range(steps):
                hidden = F.relu(postfilter.first(decoded) + bias[None, :, None, None])
                loss = F.mse_loss(decoded + gain * postfilter.last(F.relu(postfilter.middle(hidden))), target)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            seconds = time.perf_counter() - start
            kept = postfilter.quality_bias.data[quality - 1].clone()
            postfilter.quality_bias.data[quality - 1] = (bias.detach() * 64).round().clamp(-127, 127) / 64
            tuned = postfilter.apply(plain, quality)
            postfilter.quality_bias.data[quality - 1] = kept
            print(
                f"{name} q{quality}: plain {psnr(plain, x):.3f}, shared filter {psnr(shared, x):.3f}, "
                f"per-image {psnr(tuned, x):.3f} dB ({psnr(tuned, x) - psnr(shared, x):+.3f}), {seconds:.0f} s",
                flush=True,
            )


if __name__ == "__main__":
    main()
