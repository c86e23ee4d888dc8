"""The codecs the benchmark can run: a small protocol, Pillow's classic codecs, and our `aec` codec.

`get_codec(name)` builds one by name: "jpeg", "webp", "avif", "jxl", "aec" (our codec's default
model) or "aec:MODEL", either with "@TUNE" for an encoder tuned for a metric ("aec@ms-ssim") and
"@effort=N" for an encoder effort ("aec@effort=3", "aec:vqvae2-base@ms-ssim@effort=2"). A
codec that cannot run here (Pillow without AVIF, no JPEG XL plugin, our codec's API not importable)
raises `CodecUnavailable` with a one-line reason, so callers can skip it.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Protocol

import PIL
from PIL import Image, features

from aecodec.codec.options import DEFAULT_EFFORT
from aecodec.errors import AecError, InputError

CLASSIC_QUALITIES = list(range(5, 100, 5))
JXL_PLUGIN = "pillow-jxl-plugin"


class CodecUnavailable(AecError):
    """A codec under test cannot run on this machine (missing library or plugin)."""


class CodecUnderTest(Protocol):
    """What the benchmark needs from a codec: a name, its quality settings, encode and decode."""

    name: str
    description: str
    qualities: list[int]

    def encode(self, img: Image.Image, quality: int) -> bytes:
        """Compress an RGB image at one of `qualities` into a complete, self-contained file."""
        ...

    def decode(self, data: bytes) -> Image.Image:
        """Decompress the output of `encode` back to an RGB image."""
        ...


@dataclass
class PillowCodec:
    """A codec Pillow writes with `img.save(format=..., quality=q, **options)` and reads back."""

    name: str
    format: str
    description: str
    qualities: list[int] = field(default_factory=lambda: list(CLASSIC_QUALITIES))
    options: dict[str, Any] = field(default_factory=dict)
    threads_option: str = ""  # the save option that caps the encoder's threads, if Pillow takes one
    threads: int = 0  # 0: the library's default

    def encode(self, img: Image.Image, quality: int) -> bytes:
        buf = io.BytesIO()
        threads = {self.threads_option: self.threads} if self.threads_option and self.threads else {}
        img.save(buf, format=self.format, quality=quality, **self.options, **threads)
        return buf.getvalue()

    def decode(self, data: bytes) -> Image.Image:
        with Image.open(io.BytesIO(data)) as img:
            return img.convert("RGB")


@dataclass
class AecAdapter:
    """Our codec seen through the benchmark protocol; `codec` has compress/decompress/qualities."""

    codec: Any
    name: str = "aec"
    description: str = "aecodec"
    tune: str = "psnr"
    effort: int = DEFAULT_EFFORT
    selected: list[int] | None = None  # a subset of the model's qualities (a model may offer dozens)

    @property
    def qualities(self) -> list[int]:
        return self.selected or [int(q) for q in self.codec.qualities]

    def select(self, qualities: Sequence[int]) -> None:
        """Benchmark only ``qualities``; ValueError for one the model lacks."""
        offered = [int(q) for q in self.codec.qualities]
        if not set(qualities) <= set(offered):
            raise ValueError(f"{self.name}: qualities must be among 1..{len(offered)}, got {list(qualities)}")
        self.selected = sorted(set(qualities))

    def encode(self, img: Image.Image, quality: int) -> bytes:
        return bytes(self.codec.compress(img, quality=quality, tune=self.tune, effort=self.effort))

    def decode(self, data: bytes) -> Image.Image:
        return self.codec.decompress(data).convert("RGB")


def _pillow_version(lib: str) -> str:
    return f"Pillow {PIL.__version__}, {lib} {features.version(lib)}"


def jpeg() -> PillowCodec:
    """Pillow JPEG as in the published anchor: quality 5..95, default 4:2:0 subsampling, no optimize."""
    return PillowCodec("jpeg", "JPEG", f"{_pillow_version('libjpeg_turbo')}, 4:2:0, no optimize, baseline")


def webp() -> PillowCodec:
    """Pillow WebP (lossy), quality 0, 2 and 5..95, default method: from 5 up alone its curve starts at
    28.3 dB on Kodak, so a comparison could not cover the 26-28 dB the others reach."""
    qualities = [0, 2, *CLASSIC_QUALITIES]
    return PillowCodec("webp", "WEBP", f"{_pillow_version('webp')}, lossy, default method", qualities)


def avif() -> PillowCodec:
    """Pillow's built-in AVIF (libavif), quality 5..95, default speed and 4:2:0."""
    if not features.check("avif"):
        raise CodecUnavailable(f"avif: Pillow {PIL.__version__} was built without AVIF support")
    return PillowCodec("avif", "AVIF", f"{_pillow_version('avif')}, default speed, 4:2:0")


def jxl() -> PillowCodec:
    """JPEG XL through the optional pillow-jxl-plugin, quality 5..95, default effort 7."""
    try:
        import pillow_jxl  # noqa: F401  (registers the JXL format with Pillow)

        plugin = version(JXL_PLUGIN)
    except (ImportError, PackageNotFoundError) as exc:
        raise CodecUnavailable(f"jxl: optional plugin missing ({exc}); pip install {JXL_PLUGIN}") from exc
    description = f"Pillow {PIL.__version__}, {JXL_PLUGIN} {plugin}, default effort 7"
    return PillowCodec("jxl", "JXL", description, threads_option="num_threads")


def aec(model: str | None = None, tune: str = "psnr", effort: int = DEFAULT_EFFORT, device: str = "cpu") -> AecAdapter:
    """Our codec from `aecodec.codec.api.Codec`, imported only when asked for (default model if None), its float
    networks and effort 5's filter tuning on `device`; InputError if this machine cannot use it."""
    name = ("aec" if model is None else f"aec:{model}") + ("" if tune == "psnr" else f"@{tune}")
    name += "" if effort == DEFAULT_EFFORT else f"@effort={effort}"
    try:
        from aecodec.codec.api import Codec
        from aecodec.codec.options import TUNES

        codec = Codec(model=model, device=device)
    except InputError:
        raise
    except (ImportError, OSError, ValueError) as exc:  # ModelError and FormatError are ValueErrors
        raise CodecUnavailable(f"{name}: cannot load our codec ({type(exc).__name__}: {exc})") from exc
    if tune not in TUNES:
        raise ValueError(f"{name}: unknown tune {tune!r}; choose from {', '.join(TUNES)}")
    if effort not in codec.efforts:
        raise ValueError(f"{name}: effort must be one of {', '.join(map(str, codec.efforts))}")
    chosen = f"{'default ' if model is None else ''}model {codec.model.name}"
    description = f"aecodec, {chosen} (sha256 {codec.model.digest.hex()}...), tuned for {tune}, effort {effort}"
    description += "" if codec.device.type == "cpu" else f", encoded on {codec.device}"
    return AecAdapter(codec, name=name, description=description, tune=tune, effort=effort)


CLASSIC_CODECS: dict[str, Callable[[], PillowCodec]] = {"jpeg": jpeg, "webp": webp, "avif": avif, "jxl": jxl}
CODEC_NAMES = ["aec", "aec:MODEL", "aec@TUNE", "aec@effort=N", *CLASSIC_CODECS]


def _aec_options(options: list[str]) -> dict[str, Any]:
    """Keyword arguments of :func:`aec` from the "@"-separated options of a name: a tune and/or effort=N."""
    out: dict[str, Any] = {}
    for option in options:
        key, is_effort, value = option.partition("effort=")
        if is_effort and not key and value.isdigit():
            out["effort"] = int(value)
        elif is_effort:
            raise ValueError(f"effort must be a whole number, got {option!r}")
        else:
            out["tune"] = option
    return out


def get_codec(name: str, threads: int = 0, device: str = "cpu") -> CodecUnderTest:
    """Build the codec called `name` (see module doc), its encoder on `threads` if it takes a count (0: default),
    ours on `device`.

    Our codec and the rest follow the process-wide settings of `threads.use_threads`; ValueError for an unknown name.
    """
    key = name.strip().lower()
    if key == "aec" or key.startswith(("aec:", "aec@")):
        spec, *options = name.strip()[3:].split("@")
        return aec(spec[1:] or None, device=device, **_aec_options(options))
    if key not in CLASSIC_CODECS:
        raise ValueError(f"unknown codec {name!r}; choose from {', '.join(CODEC_NAMES)}")
    return replace(CLASSIC_CODECS[key](), threads=threads)
