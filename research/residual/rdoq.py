"""RDOQ of the residual coefficients against the deadzone quantizer, with the shipped coder and real coded bytes.

Run from the repository root: ``python research/residual/rdoq.py [train|held|kodak] [LAGRANGIANS]``.
``train`` (photos 003/013/023/033, in the fit's training split) chooses the Lagrangian; ``held``
(010/020/030/040, never trained on) and ``kodak`` check it. Each image's base is decoded once per
quality; only the residual's quantization changes between settings.
"""

import sys
import time
from collections.abc import Callable
from functools import partial

import numpy as np
from PIL import Image

from aecodec.bench.bdrate import bd_rate, shared_range
from aecodec.bitstream.format import AecFile, pack, unpack
from aecodec.codec.api import Codec
from aecodec.codec.residual_coding import decode_residual, encode_residual, given
from aecodec.codec.residual_rdo import rdo_chooser
from aecodec.models.residual import ResidualLayer, ResidualLevel, Visit, blocks_shape

QUALITIES = [4, 8, 12, 16, 20, 24]
SETS = {
    "train": [f"../shared/data/photos/{n}.png" for n in ("003", "013", "023", "033")],
    "held": [f"../shared/data/photos/{n}.png" for n in ("010", "020", "030", "040")],
    "kodak": [f"../shared/data/kodak/kodim{n:02d}.png" for n in (1, 4, 8, 13, 19, 23)],
}


def base_and_bytes(codec: Codec, pixels: np.ndarray, quality: int) -> tuple[np.ndarray, int]:
    """The decoded base of a file at ``quality`` and the size of that file without its residual chunk."""
    file = unpack(codec.compress(pixels, quality))
    base = codec._synthesize(file.header, codec.tile_indices(file))
    return base, len(pack(AecFile(file.header, file.tile_crcs, file.streams, ())))


def deadzone(layer: ResidualLayer, level: ResidualLevel, pixels: np.ndarray, base: np.ndarray) -> Visit:
    """The deadzone quantizer's coefficients (effort 1), as a chooser."""
    return given(layer.analyze(pixels, base, level))


def curve(
    codec: Codec, images: list[np.ndarray], bases: dict, chooser: Callable, qualities: list[int] = QUALITIES
) -> list[tuple[float, float]]:
    """Mean (bpp, PSNR) per quality with the residual quantized by ``chooser(layer, level, pixels, base)``."""
    layer, points = codec.model.residual, []
    for quality in qualities:
        level, bpp, psnr = codec.model.quality_plan(quality)[1], [], []
        for i, pixels in enumerate(images):
            base, base_bytes = bases[i, quality]
            choose = chooser(layer, level, pixels, base)
            shape = blocks_shape(pixels.shape[1], pixels.shape[0])
            payload = encode_residual(layer, level, choose, shape)
            values = decode_residual(layer, level, payload, shape)
            decoded = base.copy()
            layer.add_to(decoded, values, level)
            bpp.append(8 * (base_bytes + 12 + len(payload)) / pixels.shape[0] / pixels.shape[1])
            psnr.append(10 * np.log10(255**2 / ((decoded.astype(float) - pixels) ** 2).mean()))
        points.append((float(np.mean(bpp)), float(np.mean(psnr))))
    return points


def main() -> None:
    which = sys.argv[1] if len(sys.argv) > 1 else "train"
    lagrangians = [float(v) for v in sys.argv[2].split(",")] if len(sys.argv) > 2 else [0.06, 0.09, 0.12, 0.16, 0.22]
    codec = Codec()
    images = [np.asarray(Image.open(path).convert("RGB")) for path in SETS[which]]
    bases = {(i, q): base_and_bytes(codec, x, q) for i, x in enumerate(images) for q in QUALITIES}
    reference = None
    for lagrangian in [None, *lagrangians]:
        start = time.perf_counter()
        chooser = deadzone if lagrangian is None else partial(rdo_chooser, lagrangian=lagrangian)
        points = curve(codec, images, bases, chooser)
        seconds = time.perf_counter() - start
        reference = reference or points
        (r0, p0), (r, p) = zip(*reference), zip(*points)
        low, high = shared_range(p0, p)
        name = "deadzone" if lagrangian is None else f"rdoq {lagrangian}"
        curve_text = " ".join(f"{a:.3f}/{b:.2f}" for a, b in points)
        print(
            f"{name:12} {curve_text}  BD {bd_rate(r0, p0, r, p):+.2f}% over {low:.1f}-{high:.1f} dB  {seconds:.0f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
