"""Run codecs over a dataset: encode, decode and measure every image at every quality setting.

bpp comes from the real byte count of each encoded file (8 * bytes / pixels). Times are the
median of `repeats` runs of encode and of decode. Per-quality values are the mean over images of
the per-image values (`metrics.defined_mean`); PSNR is capped at 100 dB per image and `nan`
MS-SSIM values are skipped (see `metrics`).
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from aecodec.bench.baselines import CodecUnderTest
from aecodec.bench.curves import RDCurve
from aecodec.bench.datasets import DatasetImage, center_crop
from aecodec.bench.metrics import as_rgb_array, capped_db, defined_mean, ms_ssim, psnr

T = TypeVar("T")


@dataclass(frozen=True)
class ImageResult:
    """One image coded at one quality: size, distortion and median encode/decode seconds."""

    image: str
    quality: int
    num_bytes: int
    bpp: float
    psnr: float
    ms_ssim: float
    encode_s: float
    decode_s: float
    num_pixels: int


@dataclass
class CodecResult:
    """All per-image results of one codec, in quality order, with per-quality means."""

    name: str
    description: str
    qualities: list[int]
    images: list[ImageResult] = field(default_factory=list)
    # (image, quality) -> central crop of the decode, for the crop images only (the report's crop grid)
    crops: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)

    def at_quality(self, quality: int) -> list[ImageResult]:
        """Per-image results at one quality setting."""
        return [r for r in self.images if r.quality == quality]

    def mean(self, metric: str) -> list[float]:
        """Per-quality mean over images of an ImageResult field ("bpp", "psnr", "ms_ssim", ...)."""
        return [defined_mean([getattr(r, metric) for r in self.at_quality(q)]) for q in self.qualities]

    def seconds_per_image(self, timing: str) -> float:
        """Mean of "encode_s" or "decode_s" over all images and qualities."""
        return defined_mean([getattr(r, timing) for r in self.images])

    def megapixels_per_second(self, timing: str) -> float:
        """Throughput of "encode_s" or "decode_s": all pixels coded divided by all seconds spent."""
        seconds = sum(getattr(r, timing) for r in self.images)
        return sum(r.num_pixels for r in self.images) / 1e6 / seconds if seconds > 0 else math.inf

    def curve(self) -> RDCurve:
        """The measured mean RD curve (bpp, PSNR, MS-SSIM per quality)."""
        return RDCurve(self.name, self.mean("bpp"), self.mean("psnr"), self.mean("ms_ssim"))

    def image_curve(self, image: str) -> RDCurve:
        """One image's RD curve (bpp, PSNR, MS-SSIM per quality)."""
        rows = sorted((r for r in self.images if r.image == image), key=lambda r: self.qualities.index(r.quality))
        return RDCurve(self.name, [r.bpp for r in rows], [r.psnr for r in rows], [r.ms_ssim for r in rows])


MERGED_DATASETS = " + "


@dataclass
class BenchRun:
    """A finished benchmark: dataset, machine facts relevant to timings, and each codec's results."""

    dataset: str  # the folder of the images; runs merged (aecodec.bench.merge) join theirs with MERGED_DATASETS
    image_names: list[str]
    repeats: int
    torch_threads: int
    cpu_count: int | None
    codecs: list[CodecResult]


def timed(fn: Callable[[], T], repeats: int) -> tuple[T, float]:
    """Call `fn` `repeats` times; return its last result and the median wall time in seconds."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return result, statistics.median(times)


def measure(
    codec: CodecUnderTest,
    image: DatasetImage,
    quality: int,
    repeats: int = 1,
    crops: dict[tuple[str, int], np.ndarray] | None = None,
) -> ImageResult:
    """Encode and decode one image at one quality and measure rate, distortion and time.

    With ``crops``, the decode's central crop is kept there under (image, quality).
    """
    source = Image.fromarray(image.pixels)
    data, encode_s = timed(lambda: codec.encode(source, quality), repeats)
    decoded, decode_s = timed(lambda: codec.decode(data), repeats)
    recon = as_rgb_array(decoded)
    if crops is not None:
        crops[(image.name, quality)] = center_crop(recon).copy()
    return ImageResult(
        image=image.name,
        quality=quality,
        num_bytes=len(data),
        bpp=8.0 * len(data) / image.num_pixels,
        psnr=capped_db(psnr(image.pixels, recon)),
        ms_ssim=ms_ssim(image.pixels, recon),
        encode_s=encode_s,
        decode_s=decode_s,
        num_pixels=image.num_pixels,
    )


def run_benchmark(
    codecs: Sequence[CodecUnderTest],
    images: Sequence[DatasetImage],
    dataset: str,
    repeats: int = 1,
    qualities: Sequence[int] | None = None,
    progress: bool = True,
    crop_images: Collection[str] = (),
) -> BenchRun:
    """Measure every codec at each of its qualities (or `qualities` for all) on every image.

    The decodes of the images named in `crop_images` keep their central crops (`CodecResult.crops`).

    Each image goes through every (codec, quality) before the next, so the progress bar, counted in
    images, meets the slow codecs on the first one; within an image it advances by each step's share of
    the time that step took on the previous image, which keeps its rate, and so its ETA, steady.
    """
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    results = [CodecResult(codec.name, codec.description, list(qualities or codec.qualities)) for codec in codecs]
    steps = [(codec, quality, result) for codec, result in zip(codecs, results) for quality in result.qualities]
    seconds = [1.0] * len(steps)  # each step's time on the previous image: equal shares on the first
    with tqdm(total=len(images), disable=not progress, unit="img", unit_scale=True) as bar:
        for done, image in enumerate(images):
            total = sum(seconds)
            shares = [s / total for s in seconds]
            for i, (codec, quality, result) in enumerate(steps):
                bar.set_description(f"{image.name} {codec.name} q{quality}")
                start = time.perf_counter()
                crops = result.crops if image.name in crop_images else None
                result.images.append(measure(codec, image, quality, repeats, crops))
                seconds[i] = time.perf_counter() - start
                bar.update(shares[i])
            bar.update(done + 1 - bar.n)  # whole images, whatever the rounding
    for result in results:  # quality-major, images in dataset order within a quality
        result.images.sort(key=lambda r, qs=result.qualities: qs.index(r.quality))
    return BenchRun(
        dataset=dataset,
        image_names=[image.name for image in images],
        repeats=repeats,
        torch_threads=torch.get_num_threads(),
        cpu_count=os.cpu_count(),
        codecs=results,
    )
