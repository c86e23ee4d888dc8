"""Variants of the correction field's fit, weighed on real effort-2 decodes in the encoder's own D + lambda R.

``python research/residual/correction_field.py IMAGE:Q/Q,...`` (run from the repository root): each image
is coded at each quality, its correction field removed, and :func:`fit_field` rerun on the decode
with the cell values as shipped (each cell's mean error, rounded), as the least-squares fit of the
bilinear field, or rounded with a deadzone toward zero. Printed: what each field saves in squared
error over lambda minus its chunk's bits, in % of the file's bits, with its cell exponent, step
(quarter levels) and size.
"""

import sys

import numpy as np
from PIL import Image

from aecodec.bitstream.format import CHUNK_OVERHEAD, CORRECTION_FIELD, pack, unpack
from aecodec.codec import correction_field
from aecodec.codec.api import Codec
from aecodec.codec.distortion import squared_error

SHIPPED_MEANS, SHIPPED_ROUND = correction_field._cell_means, np.round


def least_squares(error: np.ndarray, exponent: int) -> tuple[np.ndarray, np.ndarray]:
    """The values whose bilinear field is closest to ``error`` (separable normal equations), and cell counts."""
    means, counts = SHIPPED_MEANS(error, exponent)
    height, width = error.shape[:2]
    cell = 1 << exponent

    def interpolation(size: int, cells: int) -> np.ndarray:
        low, high, weight = correction_field._axis_weights(size, cell, cells)
        matrix = np.zeros((size, cells))
        np.add.at(matrix, (np.arange(size), low), (2 * cell - weight) / (2 * cell))
        np.add.at(matrix, (np.arange(size), high), weight / (2 * cell))
        return matrix

    rows, columns = interpolation(height, means.shape[1]), interpolation(width, means.shape[2])
    left, right = np.linalg.pinv(rows), np.linalg.pinv(columns).T
    return np.stack([left @ error[:, :, ch].astype(np.float64) @ right for ch in range(3)]), counts


def deadzone(width: float):
    return lambda values: np.sign(values) * np.floor(np.abs(values) + 0.5 - width)


VARIANTS = {
    "cell means (shipped)": (SHIPPED_MEANS, SHIPPED_ROUND),
    "least squares": (least_squares, SHIPPED_ROUND),
    "deadzone 0.1": (SHIPPED_MEANS, deadzone(0.1)),
    "deadzone 0.2": (SHIPPED_MEANS, deadzone(0.2)),
}


def main() -> None:
    codec = Codec()
    for spec in sys.argv[1].split(","):
        path, qualities = spec.split(":")
        x = np.asarray(Image.open(path).convert("RGB"))
        for quality in map(int, qualities.split("/")):
            file = unpack(codec.compress(x, quality)).without_chunk(CORRECTION_FIELD)
            size, shown, lagrangian = len(pack(file)), codec._shown(file), codec._lagrangian(quality)
            plain = squared_error(shown, x)
            line = [f"{path.rsplit('/', 1)[-1]} q{quality} {size} B"]
            for name, (fit, rounding) in VARIANTS.items():
                correction_field._cell_means, correction_field.np.round = fit, rounding
                try:
                    payload = correction_field.fit_field(shown, x, lagrangian)
                finally:
                    correction_field._cell_means, correction_field.np.round = SHIPPED_MEANS, SHIPPED_ROUND
                if payload is None:
                    line.append(f"{name}: none")
                    continue
                values, step, exponent = correction_field.unpack_field(payload, x.shape[1], x.shape[0])
                error = squared_error(correction_field.add_field(shown, values, step, exponent), x)
                saved = (plain - error) / lagrangian - 8 * (CHUNK_OVERHEAD + len(payload))
                line.append(f"{name}: {100 * saved / (8 * size):+.2f}% (e{exponent} s{step} {len(payload)} B)")
            print(" | ".join(line), flush=True)


if __name__ == "__main__":
    main()
