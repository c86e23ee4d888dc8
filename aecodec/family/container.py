"""A tiny self-describing byte container for the family's codec adapters.

Layout (little-endian): magic ``AEFM``, field count (u8), chunk count (u8), the fields (u32 each:
quality, image height and width, latent shape), the chunk lengths (u32 each), then the chunks.
"""

import struct

from aecodec.errors import FormatError

MAGIC = b"AEFM"
_COUNTS = struct.Struct("<4sBB")


def pack(header: list[int], chunks: list[bytes]) -> bytes:
    """Header integers and byte chunks (entropy-coded strings) as one byte string."""
    lengths = [len(chunk) for chunk in chunks]
    return (
        _COUNTS.pack(MAGIC, len(header), len(chunks))
        + struct.pack(f"<{len(header)}I", *header)
        + struct.pack(f"<{len(chunks)}I", *lengths)
        + b"".join(chunks)
    )


def unpack(data: bytes) -> tuple[list[int], list[bytes]]:
    """Inverse of :func:`pack`; FormatError for foreign or truncated data."""
    if len(data) < _COUNTS.size or data[:4] != MAGIC:
        raise FormatError("not an autoencoder-family stream (bad magic)")
    _, n_header, n_chunks = _COUNTS.unpack_from(data)
    start = _COUNTS.size + 4 * (n_header + n_chunks)
    if len(data) < start:
        raise FormatError("autoencoder-family stream truncated in its header")
    header = list(struct.unpack_from(f"<{n_header}I", data, _COUNTS.size))
    lengths = struct.unpack_from(f"<{n_chunks}I", data, _COUNTS.size + 4 * n_header)
    if len(data) != start + sum(lengths):
        raise FormatError(f"autoencoder-family stream has {len(data)} bytes, its header says {start + sum(lengths)}")
    chunks, offset = [], start
    for length in lengths:
        chunks.append(data[offset : offset + length])
        offset += length
    return header, chunks
