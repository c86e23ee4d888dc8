"""Residual rows refitted on RDOQ's choices instead of the deadzone quantizer's, against the shipped rows.

Run from the repository root: ``PYTHONPATH=. python research/residual/rdoq_rows.py``. For three levels of the default
model, the context histograms of RDOQ's choices (under the shipped rows) on 768x512 centre crops of
training photos give new rows (:func:`aecodec.training.residual.best_rows`); the held-out photos are then
coded with each row table, per-image row offsets included, and the script prints bits and PSNR.
A change of rows is a new model file, so this only measures what one would buy.
"""

import dataclasses

import numpy as np
from PIL import Image

import aecodec.models.residual as residual
from aecodec.codec.api import Codec
from aecodec.codec.residual_coding import decode_residual, encode_residual
from aecodec.codec.residual_rdo import rdo_chooser
from aecodec.models.residual import ALPHABET, ESCAPE, blocks_shape, context_count, traverse
from aecodec.training.residual import best_rows, center_crop
from research.residual.rdoq import SETS, base_and_bytes

TRAINING = [f"../shared/data/photos/{n:03d}.png" for n in range(1, 20) if n % 10]  # not 010, the held-out photo
QUALITIES = (6, 14, 22)


def rdoq_histograms(codec: Codec, level: residual.ResidualLevel, images: list[np.ndarray], quality: int) -> np.ndarray:
    """(contexts, ALPHABET) counts of RDOQ's choices, by the context that codes each."""
    counts, seen = np.zeros((context_count(level.depth), ALPHABET), dtype=np.int64), {}
    original = residual.contexts

    def spy(sums: np.ndarray, passes: list, index: int, band: int) -> np.ndarray:
        seen["contexts"], seen["columns"] = original(sums, passes, index, band), int(residual.BAND_SIZE[band])
        return seen["contexts"]

    residual.contexts = spy
    try:
        for pixels in images:
            base, _ = base_and_bytes(codec, pixels, quality)
            choose = rdo_chooser(codec.model.residual, level, pixels, base)

            def count(parity: int, band: int, row: int, where: np.ndarray, choose=choose) -> np.ndarray:
                values = choose(parity, band, row, where)
                np.add.at(
                    counts, (seen["contexts"][where // seen["columns"]], np.clip(values, -ESCAPE, ESCAPE) + ESCAPE), 1
                )
                return values

            traverse(level, blocks_shape(pixels.shape[1], pixels.shape[0]), count)
    finally:
        residual.contexts = original
    return counts


def main() -> None:
    codec = Codec()
    layer = codec.model.residual
    training = [center_crop(Image.open(path), 768, 512) for path in TRAINING]
    held = [np.asarray(Image.open(path).convert("RGB")) for path in SETS["held"]]
    for quality in QUALITIES:
        shipped = codec.model.quality_plan(quality)[1]
        refitted = dataclasses.replace(
            shipped, rows=best_rows(rdoq_histograms(codec, shipped, training, quality), layer.bank)
        )
        line = []
        for name, level in (("shipped", shipped), ("refitted", refitted)):
            bits = error = pixels_total = 0
            for pixels in held:
                base, _ = base_and_bytes(codec, pixels, quality)
                shape = blocks_shape(pixels.shape[1], pixels.shape[0])
                payload = encode_residual(layer, level, rdo_chooser(layer, level, pixels, base), shape)
                decoded = base.copy()
                layer.add_to(decoded, decode_residual(layer, level, payload, shape), level)
                bits += 8 * len(payload)
                error += float(((decoded.astype(float) - pixels) ** 2).sum())
                pixels_total += pixels.size
            line.append(
                f"{name} {bits / (pixels_total / 3):.4f} bpp {10 * np.log10(255**2 * pixels_total / error):.3f} dB"
            )
        print(f"quality {quality}: residual " + ", ".join(line), flush=True)


if __name__ == "__main__":
    main()
