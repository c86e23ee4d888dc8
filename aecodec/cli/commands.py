"""The ``aecodec`` command: compress, decompress, info, train, finetune, fit-prior, fit-residual,
fit-postfilter, export, bench, evaluate.

Each subcommand imports its machinery when it runs, so ``aecodec info`` reads a header without
loading torch, and compressing never loads the training or benchmark code. ``train``,
``finetune``, ``bench`` and ``evaluate`` parse their own options (``aecodec COMMAND --help``).

Errors are one line on stderr: exit code 2 for bad input (malformed files, unusable images, bad
models or arguments), 1 for operating-system failures such as a full disk; a closed pipe on stdout
(``aecodec info x.aec | head -1``) ends the command quietly with 141, as SIGPIPE would.
"""

import argparse
import importlib
import math
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from aecodec.bitstream.format import DEFAULT_MAX_PIXELS
from aecodec.cli.export import add_export_arguments, run_export
from aecodec.codec.files import STDIO, check_writable, read_bytes, write_atomic
from aecodec.codec.images import IMAGE_SUFFIXES, MAX_FILE_BYTES, encode_image
from aecodec.codec.options import DEFAULT_EFFORT, DEFAULT_QUALITY, DEFAULT_TUNE, TUNES, VERSION
from aecodec.errors import AecError, InputError

OUTPUT_FORMATS = {
    ".png": "PNG",
    ".bmp": "BMP",
    ".ppm": "PPM",
    ".pgm": "PPM",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
}
PROGRESS_AFTER_S = 2.0  # encodes shorter than this print no progress line
BROKEN_PIPE_EXIT = 141


def default_threads() -> int:
    """The cores this process may use minus those other processes keep busy (1-minute load), at least 1.

    Oversubscribed cores slow torch's thread pool several times over, so a busy machine gets fewer threads.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    busy = round(os.getloadavg()[0]) if hasattr(os, "getloadavg") else 0
    return max(1, cores - busy)


def _set_threads(threads: int | None) -> int:
    """Give torch and numpy's BLAS ``threads`` threads (default: :func:`default_threads`); the number used."""
    from aecodec.codec.threads import set_threads

    return set_threads(threads or default_threads())


def _warn(message: str) -> None:
    print(f"aecodec: warning: {message}", file=sys.stderr)


class ProgressLine:
    """A one-line ``tile i/n`` report on stderr, shown once an encode has run ``PROGRESS_AFTER_S`` seconds."""

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.start, self.shown = enabled, time.monotonic(), False

    def __call__(self, done: int, total: int) -> None:
        elapsed = time.monotonic() - self.start
        if self.enabled and elapsed >= PROGRESS_AFTER_S:
            left = elapsed / done * (total - done)
            print(f"\raecodec: tile {done}/{total}, {elapsed:.0f} s, about {left:.0f} s left ", end="", file=sys.stderr)
            self.shown = True

    def close(self) -> None:
        if self.shown:
            print(file=sys.stderr)


def _compress(args: argparse.Namespace) -> int:
    import numpy as np

    from aecodec.codec.api import Codec
    from aecodec.codec.images import image_size, read_image_stream

    check_writable(args.output, args.force)
    if args.output != STDIO and Path(args.output).suffix.lower() in IMAGE_SUFFIXES:
        _warn(f"{args.output} will hold .aec data, not a {Path(args.output).suffix} image (name it .aec)")
    threads = _set_threads(args.threads)
    codec = Codec(args.model, max_pixels=args.max_pixels, device=args.device)
    source = read_image_stream(sys.stdin.buffer, args.max_pixels) if args.input == STDIO else args.input
    target = args.size
    if args.bpp is not None:
        width, height = image_size(source if isinstance(source, bytes) else Path(source), args.input)
        target = math.floor(args.bpp * width * height / 8)
    progress = ProgressLine(args.verbose or sys.stderr.isatty())
    start = time.monotonic()
    try:
        data = codec.compress(
            source,
            args.quality,
            args.tune,
            target_bytes=target,
            strip=args.strip,
            effort=args.effort,
            progress=progress,
        )
    finally:
        progress.close()
    seconds = time.monotonic() - start
    write_atomic(args.output, data, args.force)
    if args.verbose:
        from aecodec.codec.api import read_header

        header = read_header(data)
        line = (
            f"{args.output}: {len(data)} bytes, {header.width}x{header.height}, "
            f"{8 * len(data) / (header.width * header.height):.4f} bpp, quality {header.quality}, "
            f"{seconds:.2f} s on {threads} threads"
        )
        if args.print_psnr:
            from aecodec.codec.images import load_source

            original = load_source(source, args.max_pixels, strip=True).pixels.astype(np.float64)
            mse = np.mean((np.asarray(codec.decompress(data).convert("RGB"), dtype=np.float64) - original) ** 2)
            line += f", PSNR {10 * math.log10(255**2 / mse):.2f} dB" if mse else ", PSNR inf dB"
        print(line, file=sys.stderr)
    return 0


def _decompress(args: argparse.Namespace) -> int:
    from aecodec.codec.api import Codec, model_for_file

    check_writable(args.output, args.force)
    fmt = "PNG" if args.output == STDIO else OUTPUT_FORMATS.get(Path(args.output).suffix.lower())
    if fmt is None:
        raise InputError(f"unsupported output type for {args.output}; use one of {', '.join(OUTPUT_FORMATS)}")
    if fmt == "JPEG":
        _warn(f"JPEG is lossy: {args.output} will differ from the decoded image (.png or .webp keep it exactly)")
    _set_threads(args.threads)
    data = read_bytes(args.input, MAX_FILE_BYTES)
    codec = Codec(args.model or model_for_file(data, args.max_pixels), max_pixels=args.max_pixels, device=args.device)
    write_atomic(args.output, encode_image(codec.decompress(data), fmt), args.force)
    return 0


def _info(args: argparse.Namespace) -> int:
    from aecodec.bitstream.format import unpack
    from aecodec.models.manifest import shipped_model_name

    data = read_bytes(args.input, MAX_FILE_BYTES)
    file = unpack(data, args.max_pixels)
    header = file.header
    fields = {
        "format": f"aecodec .aec version {data[4]}",
        "model": f"{header.model_name or shipped_model_name(header.model_hash) or 'not shipped'} "
        f"({header.model_hash.hex()})",
        "size": f"{header.width}x{header.height}",
        "channels": header.channels,
        "quality": header.quality,
        "tiles": f"{header.tile_count} ({header.tile_size} px, overlap {header.tile_overlap})",
        "base": "half resolution, upsampled" if header.half_base else "full resolution",
        "bytes": len(data),
        "bpp": f"{8 * len(data) / (header.width * header.height):.4f}",
        "chunks": ", ".join(f"{tag.decode().strip()} {len(payload)} B" for tag, payload in file.chunks) or "none",
    }
    print("\n".join(f"{k:>9}: {v}" for k, v in fields.items()))
    return 0


def _train(args: argparse.Namespace) -> int:
    """``aecodec train``: the VQ-VAE-2 trainer, or the autoencoder-family trainer for ``--model NAME``."""
    from aecodec.family.registry import FAMILY

    probe = argparse.ArgumentParser(add_help=False)
    probe.add_argument("--model", default="vqvae2")
    if probe.parse_known_args(args.extra)[0].model in FAMILY:
        from aecodec.family.trainer import main as family_main

        return family_main(args.extra)
    from aecodec.training.train import main as train_main

    return train_main(args.extra)


def _delegate(module: str) -> Callable[[argparse.Namespace], int]:
    """A subcommand that imports ``module`` when it runs and passes it every argument."""

    def run(args: argparse.Namespace) -> int:
        return importlib.import_module(module).main(args.extra)

    return run


# Subcommands whose options their own module parses (all arguments are passed on to it).
DELEGATED = {
    "train": (_train, "train a model on a folder of images (aecodec train --help)"),
    "finetune": (_delegate("aecodec.training.finetune"), "retrain a model's decoder, its bits unchanged"),
    "fit-prior": (_delegate("aecodec.training.prior"), "retrain a model's prior alone, in a pass order of choice"),
    "fit-residual": (
        _delegate("aecodec.training.residual"),
        "give a model a residual layer for qualities above its base",
    ),
    "fit-postfilter": (
        _delegate("aecodec.training.postfilter"),
        "give a model a post-filter trained on its own decodes",
    ),
    "bench": (_delegate("aecodec.bench.cli"), "rate-distortion benchmark against JPEG, WebP, AVIF, JPEG XL"),
    "evaluate": (_delegate("aecodec.bench.evaluate"), "measure a model's bpp, PSNR and MS-SSIM on a folder"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aecodec", description="Learned image compression (VQ-VAE-2 + exact integer prior)."
    )
    parser.add_argument("--version", action="version", version=f"aecodec {VERSION}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="refuse larger images (default %(default)s)"
        )

    def coding(p: argparse.ArgumentParser) -> None:
        """Options of the commands that run a model and write a file."""
        p.add_argument("-f", "--force", action="store_true", help="overwrite an existing output")
        p.add_argument(
            "--device",
            default="cpu",
            help="device of the float networks and effort 5's filter tuning, e.g. cuda (default cpu)",
        )
        p.add_argument(
            "--threads",
            type=int,
            metavar="N",
            help="CPU threads (default: the cores that other processes leave idle, at least 1)",
        )
        common(p)

    p = sub.add_parser("compress", help="image -> .aec", description="Compress an image to an .aec file.")
    p.add_argument("input", help="image file, or - for stdin")
    p.add_argument("output", help=".aec file, or - for stdout")
    rate = p.add_mutually_exclusive_group()
    rate.add_argument(
        "-q",
        "--quality",
        type=int,
        help=f"1 (smallest) .. N (best); default: the model's own (default model: 14 of 32; models without "
        f"a residual layer: {DEFAULT_QUALITY})",
    )
    rate.add_argument("--size", type=int, metavar="BYTES", help="the best quality whose file fits in BYTES")
    rate.add_argument("--bpp", type=float, metavar="X", help="the best quality within X bits per pixel")
    p.add_argument("--strip", action="store_true", help="drop ICC profile, EXIF and XMP (kept by default)")
    p.add_argument("-v", "--verbose", action="store_true", help="print size, bpp, quality, time and threads")
    p.add_argument("--print-psnr", action="store_true", help="with -v: also decode and print the PSNR")
    p.add_argument("--model", help="shipped model name or a .safetensors path (default: the shipped default)")
    p.add_argument(
        "--tune",
        choices=TUNES,
        default=DEFAULT_TUNE,
        help="metric the encoder aims at: psnr (fast) or ms-ssim (refines each tile, several "
        "seconds per image; same decoder); default %(default)s",
    )
    p.add_argument(
        "--effort",
        type=int,
        default=DEFAULT_EFFORT,
        help="encoder effort: 1 (fastest) and up, each slower and better; same decoder; default %(default)s",
    )
    coding(p)
    p.set_defaults(run=_compress)

    p = sub.add_parser(
        "decompress", help=".aec -> image", description="Decompress an .aec file to an image (PNG by default)."
    )
    p.add_argument("input", help=".aec file, or - for stdin")
    p.add_argument(
        "output", help="image file (.png, .bmp, .ppm, .tif, lossless .webp, lossy .jpg), or - for PNG on stdout"
    )
    p.add_argument("--model", help="model name or .safetensors path (default: the one the file names)")
    coding(p)
    p.set_defaults(run=_decompress)

    p = sub.add_parser(
        "info",
        help="show an .aec header",
        description="Print the header fields, bpp and optional chunks of an .aec file (checked whole).",
    )
    p.add_argument("input", help=".aec file, or - for stdin")
    common(p)
    p.set_defaults(run=_info)

    text = "turn a training checkpoint into a model file"
    p = sub.add_parser("export", help=text, description=text)
    add_export_arguments(p)
    p.set_defaults(run=run_export)

    for name, (run, text) in DELEGATED.items():
        sub.add_parser(name, help=text, add_help=False).set_defaults(run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, args.extra = parser.parse_known_args(argv)
    if args.extra and args.command not in DELEGATED:
        parser.error(f"unrecognized arguments: {' '.join(args.extra)}")
    try:
        with warnings.catch_warnings():  # Pillow, numpy and torch warnings would add lines to stderr
            warnings.simplefilter("ignore")
            return args.run(args)
    except BrokenPipeError:
        # The reader has gone (``| head``): say nothing, and keep Python from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE_EXIT
    except (AecError, ValueError) as exc:
        print(f"aecodec: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"aecodec: error: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""), file=sys.stderr)
        return 1
    except MemoryError:
        print("aecodec: error: out of memory", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("aecodec: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
