"""Recodings aimed through the corrections (``Codec._recode_for_filter(..., corrected=True)``) against as many
plain recodings toward the post-filter's target, both after effort 3 without them.

Run from the repository root: ``PYTHONPATH=. python research/residual/corrected_passes.py IMAGE:Q/Q,... PASSES``,
e.g. ``../shared/data/kodak/kodim04.png:7/15 2``. Per point, what each variant saves in squared error over lambda
plus bits of the final file (corrections refitted, real sizes, the decoder's pixels), in % of the starting file's
bits; then the means.
"""

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from aecodec.bitstream.format import CORRECTION_FIELD, WIENER_FILTER, AecFile, pack, unpack
from aecodec.codec import effort
from aecodec.codec.api import Codec
from aecodec.codec.distortion import squared_error
from aecodec.codec.images import SourceImage, load_source


def final_cost(codec: Codec, file: AecFile, source: SourceImage, lagrangian: float) -> tuple[float, int]:
    """Squared error over lambda plus bits of ``file`` with its corrections fitted, and its size in bytes."""
    data = pack(codec._with_corrections(file, source, lagrangian, effort.effort_plan(3)), codec.max_pixels)
    shown = np.asarray(codec.decompress(data).convert("RGB"))
    return squared_error(shown, source.pixels[:, :, :3]) / lagrangian + 8 * len(data), len(data)


def main() -> None:
    passes, codec, saved = int(sys.argv[2]), Codec(), {"plain": [], "corrected": []}
    effort.EFFORTS = tuple(replace(plan, corrected_passes=0) for plan in effort.EFFORTS)
    for spec in sys.argv[1].split(","):
        path, qualities = spec.rsplit(":", 1)
        source = load_source(path, codec.max_pixels)
        for quality in [int(q) for q in qualities.split("/")]:
            lagrangian = codec._lagrangian(quality)

            start = unpack(codec.compress(path, quality, effort=3), codec.max_pixels)
            start = start.without_chunk(WIENER_FILTER).without_chunk(CORRECTION_FIELD)
            before, size = final_cost(codec, start, source, lagrangian)
            row = []
            for name, corrected in (("plain", False), ("corrected", True)):
                unfiltered = codec._unfiltered(start)
                file, _ = codec._recode_for_filter(start, unfiltered, source, passes, lagrangian, None, corrected)
                saved[name].append(100 * (before - final_cost(codec, file, source, lagrangian)[0]) / (8 * size))
                row.append(f"{name} {saved[name][-1]:+.2f}%")
            print(f"{Path(path).name} q{quality} {size} B: " + ", ".join(row), flush=True)
    print("mean: " + ", ".join(f"{name} {np.mean(values):+.2f}%" for name, values in saved.items()))


if __name__ == "__main__":
    main()
