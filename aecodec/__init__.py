"""aecodec: learned image compression with a VQ-VAE-2, an exact integer prior and a range coder.

``compress(image) -> bytes`` and ``decompress(bytes) -> PIL.Image`` use the shipped default model;
:class:`Codec` binds a chosen model. Every malformed file raises :class:`FormatError`.

The codec is imported on first use of these names, so ``import aecodec`` (and the ``aecodec``
command's light subcommands, such as ``info``) do not load torch.
"""

from typing import TYPE_CHECKING, Any

from aecodec.codec.options import DEFAULT_QUALITY
from aecodec.errors import AecError, FormatError, InputError, ModelError

if TYPE_CHECKING:
    from aecodec.codec.api import Codec, compress, decompress

__all__ = ["DEFAULT_QUALITY", "AecError", "Codec", "FormatError", "InputError", "ModelError", "compress", "decompress"]
_FROM_API = ("Codec", "compress", "decompress")


def __getattr__(name: str) -> Any:
    if name in _FROM_API:
        from aecodec.codec import api

        return getattr(api, name)
    raise AttributeError(f"module 'aecodec' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
