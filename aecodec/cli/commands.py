"""The ``aecodec`` command: compress, decompress, info, train, finetune, export, bench, evaluate.

Each subcommand imports its machinery when it runs, so ``aecodec info`` reads a header without
loading torch, and compressing never loads the training or benchmark code. ``train``,
``finetune``, ``bench`` and ``evaluate`` parse their own options (``aecodec COMMAND --help``).

Errors are one line on stderr: exit code 2 for bad input (malformed files, unusable images, bad
models or arguments), 1 for operating-system failures such as a full disk.
"""

import argparse
import io
import sys
import warnings

from aecodec.bitstream.format import DEFAULT_MAX_PIXELS
from aecodec.cli.export import add_export_arguments, run_export
from aecodec.codec.files import STDIO, check_writable, read_bytes, write_atomic
from aecodec.codec.options import DEFAULT_QUALITY, DEFAULT_TUNE, TUNES
from aecodec.errors import AecError, InputError

MAX_INPUT_BYTES = 1 << 31
OUTPUT_FORMATS = {
    ".png": "PNG",
    ".bmp": "BMP",
    ".ppm": "PPM",
    ".pgm": "PPM",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
}


def _compress(args: argparse.Namespace) -> int:
    from aecodec.codec.api import Codec
    from aecodec.codec.images import read_image_stream

    check_writable(args.output, args.force)
    codec = Codec(args.model, max_pixels=args.max_pixels, device=args.device)
    source = read_image_stream(sys.stdin.buffer, args.max_pixels) if args.input == STDIO else args.input
    write_atomic(args.output, codec.compress(source, args.quality, args.tune), args.force)
    return 0


def _decompress(args: argparse.Namespace) -> int:
    from aecodec.codec.api import Codec, model_for_file

    check_writable(args.output, args.force)
    fmt = "PNG" if args.output == STDIO else OUTPUT_FORMATS.get("." + args.output.rsplit(".", 1)[-1].lower())
    if fmt is None:
        raise InputError(f"unsupported output type for {args.output}; use one of {', '.join(OUTPUT_FORMATS)}")
    data = read_bytes(args.input, MAX_INPUT_BYTES)
    codec = Codec(args.model or model_for_file(data, args.max_pixels), max_pixels=args.max_pixels, device=args.device)
    image = codec.decompress(data)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    write_atomic(args.output, buffer.getvalue(), args.force)
    return 0


def _info(args: argparse.Namespace) -> int:
    from aecodec.bitstream.format import read_header

    data = read_bytes(args.input, MAX_INPUT_BYTES)
    header = read_header(data, args.max_pixels)
    fields = {
        "format": "aecodec .aec",
        "model": f"{header.model_name} ({header.model_hash.hex()})",
        "size": f"{header.width}x{header.height}",
        "channels": header.channels,
        "quality": header.quality,
        "tiles": f"{header.tile_count} ({header.tile_size} px, overlap {header.tile_overlap})",
        "bytes": len(data),
        "bpp": f"{8 * len(data) / (header.width * header.height):.4f}",
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


def _finetune(args: argparse.Namespace) -> int:
    from aecodec.training.finetune import main as finetune_main

    return finetune_main(args.extra)


def _bench(args: argparse.Namespace) -> int:
    from aecodec.bench.cli import main as bench_main

    return bench_main(args.extra)


def _evaluate(args: argparse.Namespace) -> int:
    from aecodec.bench.evaluate import main as evaluate_main

    return evaluate_main(args.extra)


# Subcommands whose options their own module parses (all arguments are passed on to it).
DELEGATED = {
    "train": (_train, "train a model on a folder of images (aecodec train --help)"),
    "finetune": (_finetune, "retrain a model's decoder, its bits unchanged"),
    "bench": (_bench, "rate-distortion benchmark against JPEG, WebP, AVIF, JPEG XL"),
    "evaluate": (_evaluate, "measure a model's bpp, PSNR and MS-SSIM on a folder"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aecodec", description="Learned image compression (VQ-VAE-2 + exact integer prior)."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="refuse larger images (default %(default)s)"
        )

    def coding(p: argparse.ArgumentParser) -> None:
        """Options of the commands that run a model and write a file."""
        p.add_argument("-f", "--force", action="store_true", help="overwrite an existing output")
        p.add_argument("--device", default="cpu", help="device of the float networks, e.g. cuda (default cpu)")
        common(p)

    p = sub.add_parser("compress", help="image -> .aec", description="Compress an image to an .aec file.")
    p.add_argument("input", help="image file, or - for stdin")
    p.add_argument("output", help=".aec file, or - for stdout")
    p.add_argument(
        "-q", "--quality", type=int, default=DEFAULT_QUALITY, help="1 (smallest) .. N (best); default %(default)s"
    )
    p.add_argument("--model", help="shipped model name or a .safetensors path (default: the shipped default)")
    p.add_argument(
        "--tune",
        choices=TUNES,
        default=DEFAULT_TUNE,
        help="metric the encoder aims at: psnr (fast) or ms-ssim (refines each tile, several "
        "seconds per image; same decoder); default %(default)s",
    )
    coding(p)
    p.set_defaults(run=_compress)

    p = sub.add_parser(
        "decompress", help=".aec -> image", description="Decompress an .aec file to an image (PNG by default)."
    )
    p.add_argument("input", help=".aec file, or - for stdin")
    p.add_argument("output", help="image file (.png, .bmp, .ppm, .tif, .webp), or - for PNG on stdout")
    p.add_argument("--model", help="model name or .safetensors path (default: the one the file names)")
    coding(p)
    p.set_defaults(run=_decompress)

    p = sub.add_parser(
        "info", help="show an .aec header", description="Print the header fields and bpp of an .aec file."
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
