"""Exact bits per index of a half-resolution base, by level, stage and pass of the default model's prior order.

PYTHONPATH=. python research/prior/anchor_bits.py QUALITIES IMAGE...    (QUALITIES: e.g. 1,7,11,15)
"""

import sys

import torch

from aecodec.codec.api import Codec
from aecodec.codec.images import load_source
from aecodec.models.integer_prior import traverse
from aecodec.models.prior import pass_masks

Totals = dict[tuple[str, int, str], list[float]]  # (level, stage, pass) -> [bits, count]


def add_tile(prior: object, top: list[torch.Tensor], bottom: list[torch.Tensor], totals: Totals) -> None:
    """Add one tile's exact bits and index counts to ``totals``."""

    def measure(level: int, stage: int, positions: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
        symbols = (top, bottom)[level][stage][positions]
        f = freqs.double()
        bits = f.sum(1).log2() - f[torch.arange(len(symbols)), symbols].log2()
        masks = pass_masks(prior.order, *positions.shape)
        number = next(n for n, mask in enumerate(masks) if torch.equal(mask, positions))
        entry = totals.setdefault(("tb"[level], stage, f"p{number}"), [0.0, 0])
        entry[0], entry[1] = entry[0] + float(bits.sum()), entry[1] + len(symbols)
        return symbols

    traverse(prior, tuple(bottom[0].shape), (len(top), len(bottom)), measure)


def main() -> None:
    codec = Codec()
    for path in sys.argv[2:]:
        pixels = load_source(path, codec.max_pixels, False).pixels[:, :, :3]
        for quality in map(int, sys.argv[1].split(",")):
            totals: Totals = {}
            for tile in codec.analyze(pixels, quality, half_base=True):
                add_tile(codec.model.prior, tile.top, tile.bottom, totals)
            whole = sum(bits for bits, _ in totals.values())
            parts = " ".join(
                f"{level}{stage}{kind}: {bits / count:.2f} bits ({bits / whole:.0%})"
                for (level, stage, kind), (bits, count) in sorted(totals.items())
            )
            print(f"{path.split('/')[-1]} quality {quality}, base {whole / 8:.0f} B: {parts}", flush=True)


if __name__ == "__main__":
    main()
