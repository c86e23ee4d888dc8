"""Effort 5's filter tuning with other step counts and learning rates for the later biases.

``python research/postfilter/tuning_variants.py IMAGES QUALITIES`` (Kodak names, comma-separated; run
from the repository root, one thread): each image is coded at effort 4, then
:func:`tune_filter` runs on its unfiltered decode in each variant; printed is what the chunk saves in
squared error minus lambda times its bits, in % of the file's bits, with its dB and bytes. A learning
rate of 0 for the later biases is the first-layer-only tuning of the previous release.
"""

import sys
import time

import numpy as np
import torch
from PIL import Image

from aecodec.bitstream.format import CHUNK_OVERHEAD
from aecodec.codec import filter_tuning
from aecodec.codec.api import Codec
from aecodec.codec.distortion import squared_error

VARIANTS = [("first bias only, 20 steps", 0.0, 20), ("lr 0.003, 20", 0.003, 20), ("lr 0.01, 20", 0.01, 20)]
VARIANTS += [("lr 0.003, 40", 0.003, 40), ("lr 0.01, 40", 0.01, 40)]


def main() -> None:
    torch.set_num_threads(1)
    codec = Codec()
    postfilter = codec.model.postfilter
    for name in sys.argv[1].split(","):
        x = np.asarray(Image.open(f"../shared/data/kodak/{name}.png").convert("RGB"))
        for quality in map(int, sys.argv[2].split(",")):
            data = codec.compress(x, quality, effort=4)
            decoded, lagrangian = codec.decompress_unfiltered(data), codec._lagrangian(quality)
            shared = squared_error(postfilter.apply(decoded, quality), x)
            line = [f"{name} q{quality} {len(data)} B"]
            for label, rate, steps in VARIANTS:
                filter_tuning.LAYER_LEARNING_RATE = rate
                start = time.time()
                payload = filter_tuning.tune_filter(postfilter, decoded, x, quality, steps, lagrangian)
                seconds = time.time() - start
                if payload is None:
                    line.append(f"{label}: no chunk")
                    continue
                error = squared_error(
                    postfilter.apply(decoded, quality, filter_tuning.unpack_tuning(payload, postfilter)), x
                )
                saving = (shared - error) / lagrangian - 8 * (CHUNK_OVERHEAD + len(payload))
                line.append(
                    f"{label}: {100 * saving / (8 * len(data)):+.2f}% (+{10 * np.log10(shared / error):.3f} dB, "
                    f"{len(payload)} B) {seconds:.0f} s"
                )
            print(" | ".join(line), flush=True)


if __name__ == "__main__":
    main()
