"""Turning user inputs (PIL images, numpy arrays, paths, encoded bytes) into the RGB pixels the codec codes,
and listing the images of a folder (for training, calibration and the benchmark alike).

Grayscale is coded as RGB with equal channels and decoded back to mode "L". An alpha channel that is
fully opaque is dropped; real transparency is refused with a clear message (flatten it first).
"""

import io
from pathlib import Path

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
        image = Image.open(source if isinstance(source, Path) else io.BytesIO(source))
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except PermissionError:
        raise InputError(f"permission denied: {path}") from None
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise InputError(f"{path} is not a readable image ({exc.__class__.__name__})") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    _check_size(*image.size, max_pixels)
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path} is a damaged image: {exc}") from None
    return image


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
    return image.convert("L" if image.mode in ("LA", "La") else "RGB")


def _from_pil(image: Image.Image) -> tuple[np.ndarray, int]:
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "RGBa", "LA", "La", "PA"):
        image = _drop_opaque_alpha(image.convert("RGBA") if image.mode == "PA" else image)
    if image.mode in _GRAY_MODES:
        if image.mode.startswith("I;16") or image.mode in ("I", "F"):
            values = np.asarray(image, dtype=np.float64)
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
