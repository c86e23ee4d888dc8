"""The lossless alpha plane of RGBA/LA images: left-neighbour differences, then deflate.

Alpha is mostly flat with sharp or antialiased edges; differences turn its runs into zeros and
deflate codes those compactly. The payload format is the `ALPH` chunk of docs/FORMAT.md.
"""

import zlib

import numpy as np

from aecodec.errors import FormatError

LEFT_DELTA_DEFLATE = 0


def encode_alpha(alpha: np.ndarray) -> bytes:
    """An (H, W) uint8 alpha plane as an `ALPH` chunk payload."""
    delta = np.diff(alpha.astype(np.uint8), axis=1, prepend=np.uint8(0))
    return bytes([LEFT_DELTA_DEFLATE]) + zlib.compress(delta.tobytes(), 9)


def decode_alpha(payload: bytes, width: int, height: int) -> np.ndarray:
    """The (H, W) uint8 alpha plane of an `ALPH` payload; FormatError unless it is exactly that."""
    if payload[:1] != bytes([LEFT_DELTA_DEFLATE]):
        raise FormatError(f"alpha chunk uses unknown method {payload[:1].hex() or 'none'}")
    inflater = zlib.decompressobj()
    try:
        plane = inflater.decompress(payload[1:], width * height)  # never more than the plane
    except zlib.error as exc:
        raise FormatError(f"alpha chunk is corrupted ({exc})") from None
    if len(plane) != width * height or not inflater.eof or inflater.unconsumed_tail or inflater.unused_data:
        raise FormatError(f"alpha chunk does not hold exactly {width}x{height} values")
    delta = np.frombuffer(plane, dtype=np.uint8).reshape(height, width)
    return np.cumsum(delta, axis=1, dtype=np.uint8)
