"""Issue 19's ablation at one encoder effort, side by side in one benchmark run.

``PYTHONPATH=. python research/residual/ablation.py DATASET OUT EFFORT QUALITIES GREY_QUALITIES`` benches,
at effort EFFORT and on one thread, the VQ-VAE-2 base alone (``vqvae2-wide``, the same network without
a residual layer), the product (the default model: base, residual layer, post-filter), the product's
enhancement without the base (:class:`GreyBaseCodec`) and AVIF, and writes the bench report to OUT.
"""

import sys
from dataclasses import replace

import numpy as np
import torch

from aecodec.bench.baselines import AecAdapter, aec, avif
from aecodec.bench.datasets import load_dataset
from aecodec.bench.report import ReportInputs, write_report
from aecodec.bench.runner import run_benchmark
from aecodec.bitstream.format import pack, unpack
from aecodec.codec.api import Codec


class GreyBaseCodec(Codec):
    """The default model's residual layer, RDOQ, filter passes and filter tuning on a flat grey image in
    place of the VQ-VAE-2 base. Its files carry empty index streams (the decoder never reads them), so their
    size is header, tile checksums and chunks. An upper bound on what the base buys: the residual layer's
    transforms, frequency rows and post-filter were all fitted to residuals of the base."""

    def _synthesize(self, header, tiles) -> np.ndarray:
        return np.full((header.height, header.width, 3), 128, dtype=np.uint8)

    def _bases(self, source, quality: int, effort: int) -> tuple[bool, ...]:
        return (False,)  # both bases are the same grey

    def _encode(self, source, quality: int, tune: str, progress, effort: int) -> bytes:
        file = unpack(super()._encode(source, quality, tune, progress, effort), self.max_pixels)
        return pack(replace(file, streams=tuple(b"" for _ in file.streams)), self.max_pixels)


def main() -> None:
    dataset, out, effort = sys.argv[1], sys.argv[2], int(sys.argv[3])
    qualities, grey_qualities = ([int(q) for q in text.split(",")] for text in sys.argv[4:6])
    torch.set_num_threads(1)
    base_alone, product = aec("vqvae2-wide", effort=effort), aec(effort=effort)
    base_alone.name = f"base alone@effort={effort}"  # the plots draw only the product as ours
    product.select(qualities)
    product.name = "aec"  # the report's BD-rate tables are against the codec of this name
    grey = AecAdapter(GreyBaseCodec(), f"no base@effort={effort}", "the residual layer on grey", effort=effort)
    grey.select(grey_qualities)
    codecs = [base_alone, product, grey, avif()]
    images = load_dataset(dataset)
    run = run_benchmark(codecs, images, dataset, 1, None, True)
    for path in write_report(run, ReportInputs(codecs, images[-1]), out):
        print(path)


if __name__ == "__main__":
    main()
