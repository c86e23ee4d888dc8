"""Would a per-image temperature of the base prior's tables pay? An oracle, side information not counted.

Run from the repository root: ``PYTHONPATH=. python research/prior/temperature.py IMAGES``. Each image is
coded at half resolution (as the ladder codes every base) at base qualities 1-3; every table of the default
model's integer prior is raised to a power t and renormalised, and the best t for the whole image, and for
each level and stage, is compared with t = 1 in ideal bits (cross-entropy).
"""

import sys

import numpy as np
import torch
from PIL import Image

from aecodec.codec.api import Codec
from aecodec.codec.tiling import pad_to_multiple, to_tensor
from aecodec.models.integer_prior import traverse
from aecodec.models.resampling import downsample2x

TEMPERATURES = (0.7, 0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.2, 1.3)


def bits_by_stage(codec: Codec, x: torch.Tensor, quality: int) -> dict[tuple[int, int], np.ndarray]:
    """(level, stage) -> the indices' bits under the prior's tables at each of :data:`TEMPERATURES`."""
    top, bottom = codec.model.network.encode(x, quality)
    out: dict[tuple[int, int], np.ndarray] = {}

    def measure(level: int, stage: int, positions: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
        symbols = (top, bottom)[level][stage][positions]
        log_p = freqs.double().log().log_softmax(1)
        picked = [(t * log_p).log_softmax(1)[torch.arange(len(symbols)), symbols].sum() for t in TEMPERATURES]
        out[level, stage] = out.get((level, stage), 0) - np.array([float(p) for p in picked]) / np.log(2)
        return symbols

    traverse(codec.model.prior, tuple(bottom[0].shape), (len(top), len(bottom)), measure)
    return out


def main() -> None:
    torch.set_num_threads(1)
    codec, unit = Codec(), TEMPERATURES.index(1.0)
    for path in sys.argv[1].split(","):
        x = pad_to_multiple(to_tensor(downsample2x(np.asarray(Image.open(path).convert("RGB")))), 16)
        for quality in (1, 2, 3):
            stages = bits_by_stage(codec, x, quality)
            total = sum(stages.values())
            each = sum(bits.min() for bits in stages.values())
            print(
                f"{path.split('/')[-1]} base quality {quality}: {total[unit] / 8:.0f} B; "
                f"one t ({TEMPERATURES[int(total.argmin())]}) {100 * (total.min() / total[unit] - 1):+.2f}%, "
                f"a t per stage {100 * (each / total[unit] - 1):+.2f}%",
                flush=True,
            )


if __name__ == "__main__":
    main()
