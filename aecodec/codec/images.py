"""Turning user inputs (PIL images, numpy arrays, paths, encoded bytes) into the RGB pixels the codec codes,
and listing the images of a folder (for training, calibration and the benchmark alike).

Grayscale is coded as RGB with equal channels and decoded back to mode "L". An alpha channel that is
fully opaque is dropped; real transparency is refused with a clear message (flatten it first).
"""

import io
import struct
import warnings
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from aecodec.errors import InputError

ImageLike = Image.Image | np.ndarray | str | Path | bytes
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".pnm", ".bmp", ".tif", ".tiff", ".webp"})
_GRAY_MODES = {"1", "L", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


def _open(source: Path | bytes, max_pixels: int) -> Image.Image:
    """Open and fully load an image file (or encoded bytes), checking its size before decoding."""
    path = source if isinstance(source, Path) else "input data"
    if isinstance(source, Path) and source.is_dir():
        raise InputError(f"{path} is a directory, not an image")
    try:
        with warnings.catch_warnings():  # our own max_pixels guards the size, one line on errors
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(source if isinstance(source, Path) else io.BytesIO(source))
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except PermissionError:
        raise InputError(f"permission denied: {path}") from None
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise InputError(f"{path} is not a readable image ({exc.__class__.__name__})") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    except Exception as exc:  # Pillow's plugins raise anything on hostile files (NotImplementedError, ...)
        raise InputError(f"{path} is not a readable image ({exc.__class__.__name__})") from None
    _check_size(*image.size, max_pixels)
    try:
        if image.format == "PNG":
            _check_png_data(image)
        image.load()
    except InputError:
        raise
    except Exception as exc:  # as above: any plugin's failure is a damaged input
        raise InputError(
            f"{path} is a damaged image: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from None
    return image


# Adam7 passes of an interlaced PNG: (x offset, y offset, x step, y step).
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def _check_png_data(image: Image.Image) -> None:
    """Refuse a PNG whose image data ends early: Pillow zero-fills it silently when the zlib stream ends cleanly.

    Inflates the IDAT chunks (in 1 MiB steps, never more than the image needs) and counts the bytes.
    """
    fp = image.fp
    fp.seek(8)
    ihdr = fp.read(25)
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", ihdr[8:21])
    bits = depth * _PNG_CHANNELS.get(color, 4)
    passes = _ADAM7 if interlace else ((0, 0, 1, 1),)
    sizes = [(-(-(width - x) // dx), -(-(height - y) // dy)) for x, y, dx, dy in passes]
    expected = sum(h * (1 + -(-w * bits // 8)) for w, h in sizes if w > 0 and h > 0)
    inflater, produced = zlib.decompressobj(), 0
    while produced < expected and (head := fp.read(8)) and len(head) == 8:
        length, kind = struct.unpack(">I4s", head)
        data = fp.read(length + 4)[:length]
        if kind == b"IDAT":
            while data and produced < expected and not inflater.eof:
                produced += len(inflater.decompress(data, 1 << 20))
                data = inflater.unconsumed_tail
    fp.seek(0)
    if produced < expected:
        raise InputError(f"truncated PNG: its image data holds {produced} of {expected} bytes")


SNIFF_BYTES = 1 << 16  # enough for the header of every format Pillow reads from a stream


def read_image_stream(stream: BinaryIO, max_pixels: int) -> bytes:
    """An encoded image from a stream (stdin), read only as far as the size its header declares allows.

    Bytes no format recognises (``/dev/zero``) are refused after ``SNIFF_BYTES``; otherwise at most 16 bytes
    per declared pixel (RGBA, 32 bits a channel) plus a MiB of metadata are read.
    """
    head = stream.read(SNIFF_BYTES)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            width, height = Image.open(io.BytesIO(head)).size
    except Exception as exc:  # Pillow's plugins raise anything on hostile headers
        raise InputError(f"standard input is not a readable image ({exc.__class__.__name__})") from None
    _check_size(width, height, max_pixels)
    limit = 16 * width * height + (1 << 20)
    data = head + stream.read(limit + 1 - len(head))
    if len(data) > limit:
        raise InputError(f"standard input holds more than the {limit} bytes a {width}x{height} image can take")
    return data


def _check_size(width: int, height: int, max_pixels: int) -> None:
    if width < 1 or height < 1:
        raise InputError("image is empty")
    if width * height > max_pixels:
        raise InputError(
            f"image has {width * height} pixels, over the limit of {max_pixels} (raise max_pixels to allow it)"
        )


def _drop_opaque_alpha(image: Image.Image) -> Image.Image:
    alpha = np.asarray(image.getchannel("A"))
    if (alpha != 255).any():
        raise InputError("images with transparency are not supported; flatten the alpha channel first")
    return image.convert("L" if image.mode == "LA" else "RGB")


def _from_pil(image: Image.Image) -> tuple[np.ndarray, int]:
    if image.mode in ("RGBa", "La"):  # premultiplied alpha: Pillow converts these only to their plain forms
        image = image.convert(image.mode.upper())
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA"):
        image = _drop_opaque_alpha(image.convert("RGBA") if image.mode == "PA" else image)
    if image.mode in _GRAY_MODES:
        if image.mode.startswith("I;16") or image.mode in ("I", "F"):
            values = np.asarray(image, dtype=np.float64)
            if not np.isfinite(values).all():
                raise InputError(f"image of mode {image.mode} has NaN or infinite values")
            peak = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
            gray = np.clip(np.round(values / peak * 255), 0, 255).astype(np.uint8)
        else:
            gray = np.asarray(image.convert("L"))
        return np.repeat(gray[:, :, None], 3, axis=2), 1
    try:
        return np.asarray(image.convert("RGB")), 3
    except (ValueError, OSError) as exc:
        raise InputError(f"unsupported image mode {image.mode}: {exc}") from None


def _from_array(array: np.ndarray) -> tuple[np.ndarray, int]:
    if array.dtype != np.uint8:
        if (
            not np.issubdtype(array.dtype, np.floating)
            or not np.isfinite(array).all()
            or array.min() < 0
            or array.max() > 1
        ):
            raise InputError("numpy images must be uint8, or float with values in [0, 1]")
        array = np.round(array * 255).astype(np.uint8)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        return np.repeat(array[:, :, None], 3, axis=2), 1
    if array.ndim == 3 and array.shape[2] == 4:
        if (array[:, :, 3] != 255).any():
            raise InputError("images with transparency are not supported; flatten the alpha channel first")
        return array[:, :, :3], 3
    if array.ndim == 3 and array.shape[2] == 3:
        return array, 3
    raise InputError(f"numpy images must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {array.shape}")


def load_pixels(image: ImageLike, max_pixels: int) -> tuple[np.ndarray, int]:
    """RGB pixels (H, W, 3) uint8, C-contiguous, and the channel count to record (1 or 3)."""
    if isinstance(image, (str, Path, bytes)):
        image = _open(image if isinstance(image, bytes) else Path(image), max_pixels)
    if isinstance(image, Image.Image):
        _check_size(*image.size, max_pixels)
        pixels, channels = _from_pil(image)
    elif isinstance(image, np.ndarray):
        if image.ndim >= 2:
            _check_size(image.shape[1], image.shape[0], max_pixels)
        pixels, channels = _from_array(image)
    else:
        raise InputError(f"cannot compress a {type(image).__name__}: give a PIL image, a numpy array or a path")
    return np.ascontiguousarray(pixels), channels


def to_image(pixels: np.ndarray, channels: int) -> Image.Image:
    """The decoded PIL image: mode "L" for grayscale files, "RGB" otherwise."""
    image = Image.fromarray(pixels, "RGB")
    return image.convert("L") if channels == 1 else image


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder`` (by suffix), sorted by name; InputError if missing or without images."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"image folder not found: {root}")
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {root}")
    return files
