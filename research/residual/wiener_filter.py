"""Shapes of the Wiener filter, weighed on real effort-2 decodes in the encoder's own D + lambda R.

``python research/residual/wiener_filter.py IMAGE:Q/Q,... OWN:CROSS[:g],...`` (run from the repository root):
each image is coded at each quality, its Wiener filter and correction field removed, and
:func:`fit_filter` rerun on the decode with each (own, cross) shape alone, reading the guides where the shape
ends in ``:g``. Printed: what each filter saves in squared error over lambda minus its chunk's bits, in % of the
file's bits, its size and its bins' partition.
"""

import sys

import numpy as np
from PIL import Image

from aecodec.bitstream.format import CHUNK_OVERHEAD, CORRECTION_FIELD, WIENER_FILTER, unpack
from aecodec.codec import wiener_filter
from aecodec.codec.api import Codec
from aecodec.codec.distortion import squared_error
from aecodec.models.postfilter import one_onednn_thread


def main(specs: str, shapes: str) -> None:
    codec = Codec()
    for spec in specs.split(","):
        path, qualities = spec.split(":")
        original = np.asarray(Image.open(path).convert("RGB"))
        for quality in map(int, qualities.split("/")):
            with one_onednn_thread():
                data = codec.compress(original, quality)
                file = unpack(data).without_chunk(WIENER_FILTER).without_chunk(CORRECTION_FIELD)
                decoded, guides = codec._stages(file)
            lagrangian, plain = codec._lagrangian(quality), squared_error(decoded, original)
            line = f"{path.rsplit('/', 1)[-1]} q{quality} {len(data)} B:"
            for shape in shapes.split(","):
                own, cross, *guided = shape.split(":")
                wiener_filter.SHAPES = ((int(own), int(cross)),)
                fitted = wiener_filter.fit_filter(decoded, original, lagrangian, guides if guided else None)
                if fitted is None:
                    line += f" {shape} none"
                    continue
                payload, filtered = fitted
                wiener = wiener_filter.unpack_filter(payload)
                size = CHUNK_OVERHEAD + len(payload)
                saved = (plain - squared_error(filtered, original)) / lagrangian - 8 * size
                line += f" {shape} {100 * saved / (8 * len(data)):+.2f}% ({size} B, bins {wiener.bins})"
            print(line, flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:3])
