"""Seconds of effort 5's filter tuning on kodim23 (768x512), float32 steps, for a strip size and thread count.

``PYTHONPATH=. python research/postfilter/tuning_speed.py THREADS STRIP_PIXELS FLOAT32_STEPS`` (a STRIP_PIXELS
above the image's pixels tunes the whole image in one piece, as before session 30). The decode is a noisy copy of
the image, so that the timing needs no encode; prints the seconds and the start of the chunk.
"""

import sys
import time

import numpy as np
import torch
from PIL import Image

from aecodec.codec import filter_tuning
from aecodec.models.model_files import resolve_model


def main() -> None:
    threads, strip_pixels, steps = (int(v) for v in sys.argv[1:4])
    torch.set_num_threads(threads)
    filter_tuning.STRIP_PIXELS = strip_pixels
    filter_tuning._native_bf16 = lambda: False  # float32 steps, FLOAT32_STEP_COST to a bf16 one
    postfilter = resolve_model(None).postfilter
    image = np.asarray(Image.open("../shared/data/kodak/kodim23.png").convert("RGB"))
    noise = np.random.default_rng(0).integers(-6, 7, image.shape)
    decoded = (image.astype(int) + noise).clip(0, 255).astype(np.uint8)
    start = time.perf_counter()
    payload = filter_tuning.tune_filter(
        postfilter, decoded, image, 17, filter_tuning.FLOAT32_STEP_COST * steps, lagrangian=1e-9
    )
    chunk = payload.hex()[:40] if payload else None
    print(f"threads {threads} strip {strip_pixels} steps {steps}: {time.perf_counter() - start:.1f} s, chunk {chunk}")


if __name__ == "__main__":
    main()
