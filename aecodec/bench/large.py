"""Large images: time, peak memory and tile seams of compress + decompress at 1, 6 and 24 megapixels.

``python -m aecodec.bench.large [--model PATH | --random-full] [--sizes 1,6,24]`` mosaics the real
photos of ``../shared/data/photos`` into 3:2 images of each size and codes each one in a fresh
subprocess, so the peak RSS of its compress and of its decompress (see :func:`measure`) is that size's
alone. Seams: PSNR of the pixels within ``SEAM_WIDTH`` px of an internal tile border against the PSNR
of the other pixels; with an untrained model both numbers are meaningless.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from aecodec.bench.datasets import load_rgb
from aecodec.bench.memory import peak_rss_mb, reset_peak_rss
from aecodec.bench.metrics import PEAK
from aecodec.bitstream.format import read_header
from aecodec.codec.api import Codec
from aecodec.codec.images import list_images
from aecodec.codec.options import DEFAULT_QUALITY, DEFAULT_TILE_SIZE
from aecodec.codec.threads import set_threads
from aecodec.codec.tiling import tile_grid
from aecodec.errors import InputError
from aecodec.models.manifest import MANIFEST, WEIGHTS_DIR, default_model_name, manifest
from aecodec.models.model_files import load_model_file
from aecodec.models.vqvae2 import VQVAE2Config
from aecodec.testing import random_model_bytes

PHOTOS = Path(__file__).resolve().parents[3] / "shared" / "data" / "photos"
SEAM_WIDTH = 8
MEMORY_TARGET_MB = 2048
ROW_CHUNK = 512  # rows per step of the seam statistics, to keep their float arrays small


@dataclass(frozen=True)
class Measurement:
    """One image size: its pixels, seconds, peak RSS and seam/interior PSNR."""

    width: int
    height: int
    tiles: int
    bytes: int
    compress_s: float
    decompress_s: float
    cpu_s: float
    compress_peak_mb: float
    decompress_peak_mb: float
    seam_psnr: float
    interior_psnr: float

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1e6


def image_size(megapixels: float) -> tuple[int, int]:
    """(width, height) of a 3:2 image of about ``megapixels``."""
    height = round(math.sqrt(megapixels * 1e6 / 1.5))
    return round(1.5 * height), height


def mosaic(photos: Path, width: int, height: int) -> np.ndarray:
    """A ``width x height`` RGB image tiled with the folder's photos, each resized to the first one's size.

    Beyond 4 MP the cells are twice that size (upscaled photos), so big images also hold smooth content.
    """
    files = list_images(photos)
    scale = 2 if width * height > 4e6 else 1
    cell_height, cell_width = (scale * side for side in load_rgb(files[0]).shape[:2])
    out = np.empty((height, width, 3), dtype=np.uint8)
    for n, (top, left) in enumerate((t, c) for t in range(0, height, cell_height) for c in range(0, width, cell_width)):
        photo = Image.fromarray(load_rgb(files[n % len(files)])).resize(
            (cell_width, cell_height), Image.Resampling.BICUBIC
        )
        out[top : top + cell_height, left : left + cell_width] = np.asarray(photo)[: height - top, : width - left]
    return out


def seam_psnr(original: np.ndarray, decoded: np.ndarray, tile_size: int, overlap: int) -> tuple[float, float]:
    """PSNR of pixels within SEAM_WIDTH px of an internal tile border, and of all other pixels."""
    height, width = original.shape[:2]
    near_rows, near_cols = np.zeros(height, bool), np.zeros(width, bool)
    for tile in tile_grid(width, height, tile_size, overlap):
        if tile.core.top:
            near_rows[max(0, tile.core.top - SEAM_WIDTH) : tile.core.top + SEAM_WIDTH] = True
        if tile.core.left:
            near_cols[max(0, tile.core.left - SEAM_WIDTH) : tile.core.left + SEAM_WIDTH] = True
    sums, counts = np.zeros(2), np.zeros(2)
    for top in range(0, height, ROW_CHUNK):
        rows = slice(top, top + ROW_CHUNK)
        error = ((original[rows].astype(np.float32) - decoded[rows]) ** 2).sum(axis=2)
        near = near_rows[rows, None] | near_cols[None, :]
        sums += error[near].sum(), error[~near].sum()
        counts += near.sum(), (~near).sum()
    with np.errstate(divide="ignore"):
        seam, interior = 10 * np.log10(PEAK**2 * 3 * counts / sums)
    return float(seam), float(interior)


def measure(model_path: Path, megapixels: float, quality: int, photos: Path) -> Measurement:
    """Compress, then decompress one mosaic in this process, each with its own peak RSS.

    Both peaks include the process's baseline (torch, the model) and the source pixels, which stay
    alive for the seam statistics; these run after the peaks are read.
    """
    codec = Codec(load_model_file(model_path))
    width, height = image_size(megapixels)
    pixels = mosaic(photos, width, height)
    reset_peak_rss()
    cpu, start = time.process_time(), time.perf_counter()
    data = codec.compress(pixels, quality)
    middle, compress_peak = time.perf_counter(), peak_rss_mb()
    reset_peak_rss()
    decoded = codec.decompress(data)
    end, cpu, decompress_peak = time.perf_counter(), time.process_time() - cpu, peak_rss_mb()
    seam, interior = seam_psnr(pixels, np.asarray(decoded), codec.tile_size, codec.overlap)
    tiles = read_header(data).tile_count
    return Measurement(
        width,
        height,
        tiles,
        len(data),
        middle - start,
        end - middle,
        cpu,
        compress_peak,
        decompress_peak,
        seam,
        interior,
    )


def run_child(model_path: Path, megapixels: float, quality: int, photos: Path, threads: int | None) -> Measurement:
    """:func:`measure` in a fresh interpreter, so that its peak RSS is this size's alone."""
    command = [
        sys.executable,
        "-m",
        "aecodec.bench.large",
        "--child",
        str(megapixels),
        "--model",
        str(model_path),
        "--quality",
        str(quality),
        "--photos",
        str(photos),
    ]
    if threads:
        command += ["--threads", str(threads)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode:
        raise RuntimeError(f"{megapixels} MP run failed:\n{result.stderr.strip()}")
    return Measurement(**json.loads(result.stdout.strip().splitlines()[-1]))


HEADER = (
    f"{'size':>12} {'MP':>6} {'tiles':>6} {'bytes':>10} {'enc s':>8} {'dec s':>8} {'cpu s':>8} "
    f"{'cpu s/MP':>9} {'enc MiB':>8} {'dec MiB':>8} {'seam dB':>8} {'inner dB':>9}"
)


def row(r: Measurement) -> str:
    """One line of the table under HEADER."""
    return (
        f"{r.width:>6}x{r.height:<5} {r.megapixels:>6.2f} {r.tiles:>6} {r.bytes:>10} {r.compress_s:>8.1f} "
        f"{r.decompress_s:>8.1f} {r.cpu_s:>8.1f} {r.cpu_s / r.megapixels:>9.2f} {r.compress_peak_mb:>8.0f} "
        f"{r.decompress_peak_mb:>8.0f} "
        f"{r.seam_psnr:>8.2f} {r.interior_psnr:>9.2f}"
    )


def verdict(results: list[Measurement], untrained: bool) -> str:
    """Whether CPU time per megapixel stays flat, whether memory meets the target, and a PSNR caveat."""
    lines = []
    if len(results) > 1:
        growth = (results[-1].cpu_s / results[-1].megapixels) / (results[0].cpu_s / results[0].megapixels)
        linear = "linear or better" if growth <= 1.33 else "WORSE than linear"
        lines.append(f"CPU seconds per megapixel change by x{growth:.2f} from the first to the last size: {linear}")
    largest = max(results, key=lambda r: r.megapixels)
    peak = max(largest.compress_peak_mb, largest.decompress_peak_mb)
    within = "within" if peak < MEMORY_TARGET_MB else "OVER"
    lines.append(
        f"peak RSS at {largest.megapixels:.1f} MP: {peak:.0f} MiB ({within} the {MEMORY_TARGET_MB} MiB target)"
    )
    if untrained:
        lines.append("the model is untrained: the PSNR columns say nothing about seams; only time and memory count")
    return "\n".join(lines)


def _model_path(args: argparse.Namespace, scratch: Path) -> Path:
    """The model file the runs load: a fresh random full-size one, --model, or the shipped default."""
    if args.random_full:
        path = scratch / "random-full.safetensors"
        path.write_bytes(random_model_bytes("big", VQVAE2Config()))
        return path
    if args.model:
        return args.model
    if not MANIFEST.exists():
        raise InputError(f"no shipped model ({MANIFEST} is missing): pass --model PATH or --random-full")
    return WEIGHTS_DIR / manifest()["models"][default_model_name()]["file"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aecodec.bench.large", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,6,24", help="megapixels, comma-separated (default %(default)s)")
    parser.add_argument("--model", type=Path, help="model file (default: the shipped default model)")
    parser.add_argument("--random-full", action="store_true", help="an untrained model of the full default size")
    parser.add_argument("--quality", type=int, default=DEFAULT_QUALITY)
    parser.add_argument("--photos", type=Path, default=PHOTOS, help="folder of photos to mosaic (default %(default)s)")
    parser.add_argument("--threads", type=int, help="torch and BLAS threads in each run (default: their own choice)")
    parser.add_argument("--child", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        set_threads(args.threads)
    if args.child is not None:
        print(json.dumps(asdict(measure(args.model, args.child, args.quality, args.photos))))
        return 0
    try:
        list_images(args.photos)
        with tempfile.TemporaryDirectory() as scratch:
            model_path = _model_path(args, Path(scratch))
            print(
                f"model {model_path.name}, quality {args.quality}, tiles {DEFAULT_TILE_SIZE} px\n{HEADER}", flush=True
            )
            results = []
            for megapixels in (float(s) for s in args.sizes.split(",")):
                results.append(run_child(model_path, megapixels, args.quality, args.photos, args.threads))
                print(row(results[-1]), flush=True)
    except (InputError, RuntimeError) as exc:
        print(f"large: error: {exc}", file=sys.stderr)
        return 2
    print(verdict(results, untrained=args.random_full))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
