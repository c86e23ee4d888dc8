"""The `.aec` container (docs/FORMAT.md) and the range-coding layer its tile streams use."""

from aecodec.bitstream.entropy import SymbolDecoder, SymbolEncoder, ideal_bits
from aecodec.bitstream.format import (
    DEFAULT_MAX_PIXELS,
    AecFile,
    Header,
    index_crc,
    pack,
    read_header,
    unpack,
)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "AecFile",
    "Header",
    "SymbolDecoder",
    "SymbolEncoder",
    "ideal_bits",
    "index_crc",
    "pack",
    "read_header",
    "unpack",
]
