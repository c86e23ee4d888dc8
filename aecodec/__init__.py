"""aecodec: learned image compression with a VQ-VAE-2, an exact integer prior and a range coder.

``compress(image) -> bytes`` and ``decompress(bytes) -> PIL.Image`` use the shipped default model;
:class:`Codec` binds a chosen model; ``read_header`` reads a file's header without decoding it.
Importing the package registers a Pillow plugin: ``Image.open("x.aec")``, ``img.save("y.aec")``.
Every malformed file raises :class:`FormatError`, every unusable input :class:`InputError`.

The codec is imported on first use of these names, so ``import aecodec`` (and the ``aecodec``
command's light subcommands, such as ``info``) do not load torch.
"""

from typing import TYPE_CHECKING, Any

import aecodec.codec.pillow_plugin  # noqa: F401  (registers the Pillow plugin; no torch until used)
from aecodec.codec.options import DEFAULT_QUALITY
from aecodec.codec.options import VERSION as __version__
from aecodec.errors import AecError, FormatError, InputError, ModelError

if TYPE_CHECKING:
    from aecodec.codec.api import Codec, compress, decompress, read_header

__all__ = [
    "DEFAULT_QUALITY",
    "AecError",
    "Codec",
    "FormatError",
    "InputError",
    "ModelError",
    "__version__",
    "compress",
    "decompress",
    "read_header",
]
_FROM_API = ("Codec", "compress", "decompress", "read_header")


def __getattr__(name: str) -> Any:
    if name in _FROM_API:
        from aecodec.codec import api

        return getattr(api, name)
    raise AttributeError(f"module 'aecodec' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
