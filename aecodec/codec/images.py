"""Turning user inputs (PIL images, numpy arrays, paths, encoded bytes) into what the codec codes, and
listing the images of a folder (for training, calibration and the benchmark alike).

Grayscale is coded as RGB with equal channels and decoded back to mode "L". An alpha channel is kept
as a separate plane (coded losslessly) unless it is fully opaque. An EXIF orientation is applied:
the image is coded upright and its EXIF no longer carries the tag, so every viewer agrees. ICC,
EXIF and XMP metadata travel as container chunks and come back in the decoded image's ``info``.
"""

import io
import struct
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from aecodec.bitstream.format import EXIF, ICC_PROFILE, XMP, check_metadata
from aecodec.errors import FormatError, InputError

ImageLike = Image.Image | np.ndarray | str | Path | bytes | BinaryIO
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".pnm", ".bmp", ".tif", ".tiff", ".webp"})
MAX_FILE_BYTES = 1 << 31
EXIF_PREFIX = b"Exif\0\0"
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


def image_size(source: bytes | Path, what: str) -> tuple[int, int]:
    """(width, height) an image's header declares, nothing decoded; InputError if no format recognises it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
                return image.size
    except FileNotFoundError:
        raise InputError(f"no such file: {what}") from None
    except PermissionError:
        raise InputError(f"permission denied: {what}") from None
    except Exception as exc:  # Pillow's plugins raise anything on hostile headers
        raise InputError(f"{what} is not a readable image ({exc.__class__.__name__})") from None


def read_image_stream(stream: BinaryIO, max_pixels: int, what: str = "standard input") -> bytes:
    """An encoded image from a stream (stdin, a file object), read only as far as its declared size allows.

    Bytes no format recognises (``/dev/zero``) are refused after ``SNIFF_BYTES``; otherwise at most 16 bytes
    per declared pixel (RGBA, 32 bits a channel) plus a MiB of metadata are read.
    """
    head = stream.read(SNIFF_BYTES)
    if not isinstance(head, bytes):
        raise InputError(f"the file object gave {type(head).__name__}, not bytes: open it in binary mode")
    width, height = image_size(head, what)
    _check_size(width, height, max_pixels)
    limit = 16 * width * height + (1 << 20)
    data = head + stream.read(limit + 1 - len(head))
    if len(data) > limit:
        raise InputError(f"{what} holds more than the {limit} bytes a {width}x{height} image can take")
    return data


def _check_size(width: int, height: int, max_pixels: int) -> None:
    if width < 1 or height < 1:
        raise InputError("image is empty")
    if width * height > max_pixels:
        raise InputError(
            f"image has {width * height} pixels, over the limit of {max_pixels} (raise max_pixels to allow it)"
        )


@dataclass
class SourceImage:
    """An image ready to code: RGB pixels, the channel count to record, alpha and metadata chunks."""

    pixels: np.ndarray
    channels: int
    alpha: np.ndarray | None = None
    metadata: dict[bytes, bytes] = field(default_factory=dict)


def _opaque_to_none(alpha: np.ndarray) -> np.ndarray | None:
    """The alpha plane, or None when it is fully opaque (then there is nothing to code)."""
    return None if (alpha == 255).all() else np.ascontiguousarray(alpha)


def _metadata(image: Image.Image) -> dict[bytes, bytes]:
    """The ICC profile, EXIF and XMP of a PIL image as chunk payloads (InputError if unusable)."""
    xmp = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp")
    found = {
        ICC_PROFILE: image.info.get("icc_profile"),
        EXIF: (image.info.get("exif") or b"").removeprefix(EXIF_PREFIX),
        XMP: xmp.encode() if isinstance(xmp, str) else xmp,
    }
    chunks = {tag: bytes(payload) for tag, payload in found.items() if payload}
    for tag, payload in chunks.items():
        try:
            check_metadata(tag, payload)
        except FormatError as exc:
            raise InputError(f"cannot keep the image's metadata: {exc} (strip the metadata)") from None
    return chunks


def _from_pil(image: Image.Image) -> SourceImage:
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBa", "La", "PA"):  # premultiplied RGBa/La: Pillow converts these only to their plain forms
        image = image.convert("LA" if image.mode == "La" else "RGBA")
    if image.mode in ("RGBA", "LA"):
        colour, alpha = _from_pil(image.convert(image.mode[0] if image.mode == "LA" else "RGB")), image.getchannel("A")
        colour.alpha = _opaque_to_none(np.asarray(alpha))
        return colour
    if image.mode in _GRAY_MODES:
        if image.mode.startswith("I;16") or image.mode in ("I", "F"):
            values = np.asarray(image, dtype=np.float64)
            if not np.isfinite(values).all():
                raise InputError(f"image of mode {image.mode} has NaN or infinite values")
            peak = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
            gray = np.clip(np.round(values / peak * 255), 0, 255).astype(np.uint8)
        else:
            gray = np.asarray(image.convert("L"))
        return SourceImage(np.repeat(gray[:, :, None], 3, axis=2), 1)
    try:
        return SourceImage(np.asarray(image.convert("RGB")), 3)
    except (ValueError, OSError) as exc:
        raise InputError(f"unsupported image mode {image.mode}: {exc}") from None


def _from_array(array: np.ndarray) -> SourceImage:
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
        return SourceImage(np.repeat(array[:, :, None], 3, axis=2), 1)
    if array.ndim == 3 and array.shape[2] in (2, 4):
        colour = _from_array(array[:, :, :-1])
        colour.alpha = _opaque_to_none(array[:, :, -1])
        return colour
    if array.ndim == 3 and array.shape[2] == 3:
        return SourceImage(array, 3)
    raise InputError(f"numpy images must be (H, W) or (H, W, 1..4), got {array.shape}")


def read_binary(
    source: bytes | bytearray | memoryview | str | Path | BinaryIO, what: str, limit: int = MAX_FILE_BYTES
) -> bytes:
    """The bytes of a file given as bytes, a path or a binary file object (at most ``limit``)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir():
            raise InputError(f"{path} is a directory")
        try:
            with path.open("rb") as f:
                data = f.read(limit + 1)
        except FileNotFoundError:
            raise InputError(f"no such file: {path}") from None
        except PermissionError:
            raise InputError(f"permission denied: {path}") from None
    elif callable(getattr(source, "read", None)):
        data = source.read(limit + 1)
        if not isinstance(data, bytes):
            raise InputError(f"the file object gave {type(data).__name__}, not bytes: open it in binary mode")
    else:
        raise InputError(f"cannot read {what} from a {type(source).__name__}: give bytes, a path or a binary file")
    if len(data) > limit:
        raise InputError(f"{what} is larger than {limit} bytes")
    return data


def load_source(image: ImageLike, max_pixels: int, strip: bool = False) -> SourceImage:
    """What to code for an image; ``strip`` leaves its ICC profile, EXIF and XMP behind."""
    if isinstance(image, (str, Path)):
        image = _open(Path(image), max_pixels)
    elif isinstance(image, (bytes, bytearray, memoryview)):
        image = _open(bytes(image), max_pixels)
    elif callable(getattr(image, "read", None)):  # read only as far as the declared size allows
        image = _open(read_image_stream(image, max_pixels, "the image file object"), max_pixels)
    if isinstance(image, Image.Image):
        _check_size(*image.size, max_pixels)
        try:
            image = ImageOps.exif_transpose(image)
        except Exception as exc:  # a hostile EXIF block can make Pillow raise anything
            raise InputError(f"the image's EXIF cannot be read ({exc.__class__.__name__}); strip it first") from None
        source = _from_pil(image)
        source.metadata = {} if strip else _metadata(image)
    elif isinstance(image, np.ndarray):
        if image.ndim >= 2:
            _check_size(image.shape[1], image.shape[0], max_pixels)
        source = _from_array(image)
    else:
        raise InputError(
            f"cannot compress a {type(image).__name__}: give a PIL image, a numpy array, a path, bytes or a binary file"
        )
    source.pixels = np.ascontiguousarray(source.pixels)
    return source


def load_pixels(image: ImageLike, max_pixels: int) -> tuple[np.ndarray, int]:
    """RGB pixels (H, W, 3) uint8, C-contiguous, and the channel count to record (1 or 3)."""
    source = load_source(image, max_pixels, strip=True)
    return source.pixels, source.channels


def to_image(pixels: np.ndarray, channels: int, alpha: np.ndarray | None = None) -> Image.Image:
    """The decoded PIL image: mode "L" for grayscale files, "RGB" otherwise, plus "A" with alpha."""
    image = Image.fromarray(pixels, "RGB")
    image = image.convert("L") if channels == 1 else image
    if alpha is not None:
        image.putalpha(Image.fromarray(alpha))
    return image


def with_metadata(image: Image.Image, chunks: dict[bytes, bytes]) -> Image.Image:
    """``image`` with ICC, EXIF and XMP chunks in ``info``, where Pillow's writers look for them."""
    if ICC_PROFILE in chunks:
        image.info["icc_profile"] = chunks[ICC_PROFILE]
    if EXIF in chunks:
        image.info["exif"] = EXIF_PREFIX + chunks[EXIF]
    if XMP in chunks:
        image.info["xmp"] = chunks[XMP]
    return image


def encode_image(image: Image.Image, fmt: str) -> bytes:
    """``image`` in a Pillow format with its metadata; WebP is written lossless (InputError if impossible)."""
    options = {key: image.info[key] for key in ("icc_profile", "exif", "xmp") if key in image.info}
    if fmt == "PNG" and "xmp" in options:
        options["pnginfo"] = PngImagePlugin.PngInfo()
        options["pnginfo"].add_itxt("XML:com.adobe.xmp", options.pop("xmp").decode())
    if fmt == "WEBP":
        options.update(lossless=True, exact=True)
    if fmt == "JPEG":
        options["quality"] = 95
    buffer = io.BytesIO()
    try:
        image.save(buffer, format=fmt, **options)
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(f"cannot write a mode {image.mode} image as {fmt} ({exc})") from None
    return buffer.getvalue()


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder`` (by suffix), sorted by name; InputError if missing or without images."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"image folder not found: {root}")
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {root}")
    return files
