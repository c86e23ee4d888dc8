"""Below 0.25 bpp, would less resolution code better? Two probes on Kodak (issue 19, session 10). Scratch.

``PYTHONPATH=. python research/residual/low_resolution.py whole|quarter EVERY`` (every EVERY-th Kodak image):

- ``whole``: the image downsampled 2x and coded whole by the default model (its own ladder), the decode
  upsampled back (:func:`upsample2x`), against the full image coded directly; both post-filtered.
- ``quarter``: the residual level of qualities 1-7 over a base coded at a quarter of the resolution
  (upsampled twice) instead of a half; base and residual bytes, no post-filter, the level unrefitted.
"""

import sys
from pathlib import Path

import numpy as np
from PIL import Image

from aecodec.bench.bdrate import bd_rate
from aecodec.bitstream.format import Header
from aecodec.codec.api import Codec
from aecodec.codec.index_coding import encode_indices
from aecodec.codec.residual_coding import decode_residual, encode_residual
from aecodec.codec.residual_rdo import rdo_chooser
from aecodec.codec.tiling import tile_grid
from aecodec.models.resampling import downsample2x, upsample2x
from aecodec.models.residual import blocks_shape
from research.postfilter.compare import psnr

Point = tuple[float, float]  # bpp, PSNR


def whole(codec: Codec, x: np.ndarray, quality: int, downsampled: bool) -> Point:
    height, width = x.shape[:2]
    data = codec.compress(downsample2x(x) if downsampled else x, quality)
    y = np.asarray(codec.decompress(data))
    return 8 * len(data) / height / width, psnr(upsample2x(y, width, height) if downsampled else y, x)


def layered(codec: Codec, x: np.ndarray, quality: int, quarter: bool) -> Point:
    """Base indices and residual payload bytes (no header) and the unfiltered PSNR at ``quality``."""
    model, (height, width) = codec.model, x.shape[:2]
    source = downsample2x(x) if quarter else x
    tiles = codec.analyze(source, quality, half_base=True)  # halves ``source`` once more
    header = Header(
        3,
        quality,
        model.name,
        model.digest,
        source.shape[1],
        source.shape[0],
        codec.tile_size,
        codec.overlap,
        len(tiles),
        True,
    )
    base = codec._synthesize(header, zip(tile_grid(*header.base_size, codec.tile_size, codec.overlap), tiles))
    base = upsample2x(base, width, height) if quarter else base
    level, shape = model.quality_plan(quality)[1], blocks_shape(width, height)
    payload = encode_residual(model.residual, level, rdo_chooser(model.residual, level, x, base), shape)
    model.residual.add_to(base, decode_residual(model.residual, level, payload, shape), level)
    size = len(payload) + sum(len(encode_indices(model.prior, t.top, t.bottom)) for t in tiles)
    return 8 * size / height / width, psnr(base, x)


def main() -> None:
    mode, every = sys.argv[1], int(sys.argv[2])
    codec, curves = Codec(), {False: {}, True: {}}
    # qualities of the reduced variant that land at about the same rates as the direct one's
    plans = {
        "whole": (whole, (1, 3, 5, 7, 9, 11), (3, 7, 11, 15, 19, 23)),
        "quarter": (layered, (1, 3, 5, 7), (1, 3, 5, 7)),
    }
    code, direct, reduced = plans[mode]
    for path in sorted(Path("../shared/data/kodak").glob("*.png"))[::every]:
        x = np.asarray(Image.open(path).convert("RGB"))
        for less, qualities in ((False, direct), (True, reduced)):
            for quality in qualities:
                curves[less].setdefault(quality, []).append(code(codec, x, quality, less))
    means = {less: np.array([np.mean(v, 0) for v in c.values()]) for less, c in curves.items()}
    for less, points in means.items():
        print("reduced" if less else "direct ", " ".join(f"{b:.4f} bpp {p:.2f} dB" for b, p in points))
    print(f"reduced against direct: {bd_rate(*means[False].T, *means[True].T):+.2f}% BD-rate")


if __name__ == "__main__":
    main()
