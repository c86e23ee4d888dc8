"""aecodec: learned image compression with a VQ-VAE-2, an exact integer prior and a range coder.

``compress(image) -> bytes`` and ``decompress(bytes) -> PIL.Image`` use the shipped default model;
:class:`Codec` binds a chosen model. Every malformed file raises :class:`FormatError`.
"""

from aecodec.codec.api import DEFAULT_QUALITY, Codec, compress, decompress
from aecodec.errors import AecError, FormatError, InputError, ModelError

__all__ = ["DEFAULT_QUALITY", "AecError", "Codec", "FormatError", "InputError", "ModelError", "compress", "decompress"]
