"""Probe: K transforms chosen per block by the decoded base alone, so the class costs no bits.

Session 26's learned sets chose each block's transform by the encoder (J), and the classes' side information
ate most of what they gained. Here the class is a function of the base's 8x8 block, which the decoder has
before the residual: the orientation of its luma structure tensor in ORIENTATIONS sectors, smooth blocks (gradient
energy under the training median's FLAT fraction) a class of their own. Each class gets a KLT refined for the
deadzone quantizer (``SOT`` Procrustes rounds, as ``aecodec/training/residual.py`` fits the shipped one), fitted on
the training photos' blocks and held fixed on the evaluated images. The control fits one transform the same way
on the same blocks (what the refit alone moves). Scored with the product's contexts, rows fitted per variant on the
training levels (shared by the classes), the shipped second-pass prediction subtracted first (as the product codes).

Usage: ``[SOT=8] PYTHONPATH=. python research/residual/base_classes.py QUALITIES ORIENTATIONS FLAT -- IMAGE...``
"""

import sys

import numpy as np

from aecodec.codec.api import Codec
from aecodec.models.residual import to_blocks
from research.residual.transform_set import (
    LAM,
    TRAIN,
    context_coded,
    klt,
    quantize,
    residual_and_step,
    sparse_orthonormal,
)


def blocks_and_base(codec: Codec, path: str, quality: int) -> tuple[np.ndarray, np.ndarray, float, np.ndarray, tuple]:
    """(n, 192) residual blocks less their shipped prediction, (n, 8, 8) base luma blocks, the step, the shipped
    mean, and the (h, w) of the block grid."""
    blocks, step, mean, _, base = residual_and_step(codec, path, quality, predict=True)
    luma = to_blocks(base).reshape(-1, 8, 8, 3).astype(np.float64).mean(3)
    return blocks.reshape(-1, 192), luma, step, mean, blocks.shape[:2]


def structure(luma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each base block's structure-tensor angle in [-pi/2, pi/2) and its gradient energy."""
    gx, gy = np.diff(luma, axis=2)[:, :-1], np.diff(luma, axis=1)[:, :, :-1]
    xx, yy, xy = (gx * gx).sum((1, 2)), (gy * gy).sum((1, 2)), (gx * gy).sum((1, 2))
    return 0.5 * np.arctan2(2 * xy, xx - yy), xx + yy


def classes(luma: np.ndarray, orientations: int, threshold: float) -> np.ndarray:
    """Class of each block: its orientation sector, or ``orientations`` where its energy is under ``threshold``."""
    angle, energy = structure(luma)
    sector = np.minimum(((angle + np.pi / 2) / np.pi * orientations).astype(int), orientations - 1)
    return np.where(energy < threshold, orientations, sector) if threshold > 0 else sector


def fit(blocks: np.ndarray, labels: np.ndarray, k: int, step: float, mean: np.ndarray) -> list[np.ndarray]:
    """One quantizer-fitted transform per class (classes with few blocks share the all-blocks transform)."""

    def fitted(members: np.ndarray) -> np.ndarray:
        return sparse_orthonormal(members, mean, klt(members, mean), step)

    sizes = np.bincount(labels, minlength=k)
    shared = fitted(blocks) if sizes.min() <= 2000 else None
    return [fitted(blocks[labels == c]) if sizes[c] > 2000 else shared for c in range(k)]


def coded(blocks, labels, transforms, step, mean, shape) -> tuple[np.ndarray, float]:
    """(h, w, 192) levels of every block in its class's transform, and their squared error."""
    levels, error = np.zeros(blocks.shape, int), 0.0
    for c, basis in enumerate(transforms):
        members = labels == c
        levels[members], part = quantize((blocks[members] - mean) @ basis.T, step)
        error += part.sum()
    return levels.reshape(*shape, 192), error


def main() -> None:
    split = sys.argv.index("--")
    qualities = [int(q) for q in sys.argv[1].split(",")]
    orientations, flat = int(sys.argv[2]), float(sys.argv[3])
    images, codec = sys.argv[split + 1 :], Codec()
    for quality in qualities:
        train = [blocks_and_base(codec, p, quality) for p in TRAIN]
        step, mean = train[0][2], train[0][3]
        blocks = np.concatenate([t[0] for t in train])
        energy = np.concatenate([structure(t[1])[1] for t in train])
        threshold = flat * np.median(energy)
        k = orientations + (threshold > 0)
        labels = [classes(t[1], orientations, threshold) for t in train]
        variants = {
            "one": ([np.zeros(len(t[0]), int) for t in train], fit(blocks, np.zeros(len(blocks), int), 1, step, mean)),
            "classes": (labels, fit(blocks, np.concatenate(labels), k, step, mean)),
        }
        for path in images:
            test, luma, _, _, shape = blocks_and_base(codec, path, quality)
            scores = {}
            for name, (train_labels, transforms) in variants.items():
                train_levels = [
                    coded(t[0], lab, transforms, step, mean, t[4])[0] for t, lab in zip(train, train_labels)
                ]
                test_labels = np.zeros(len(test), int) if name == "one" else classes(luma, orientations, threshold)
                levels, error = coded(test, test_labels, transforms, step, mean, shape)
                scores[name] = (context_coded(train_levels, levels, codec.model.residual.bank), error)
            (r_bits, r_err), (c_bits, c_err) = scores["one"], scores["classes"]
            d_bits = (c_err - r_err) / (LAM * step * step)
            print(
                f"q{quality} {path.split('/')[-1]} K={k}: bits {(c_bits - r_bits) / r_bits:+.2%},"
                f" D {d_bits / r_bits:+.2%},"
                f" J {(c_bits + d_bits - r_bits) / r_bits:+.2%}",
                flush=True,
            )


if __name__ == "__main__":
    main()
