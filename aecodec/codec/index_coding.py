"""Entropy coding of one tile's VQ indices under the integer prior.

Encoder and decoder run the same traversal (:func:`~aecodec.models.integer_prior.traverse`); only
the per-group action differs: the encoder writes known symbols, the decoder reads them.
"""

import numpy as np
import torch
from torch import Tensor

from aecodec.bitstream.entropy import SymbolDecoder, SymbolEncoder
from aecodec.bitstream.format import index_crc
from aecodec.models.integer_prior import IntegerPrior, traverse


def indices_crc(top: list[Tensor], bottom: list[Tensor]) -> int:
    """CRC32 of a tile's indices in coding order (the checksum stored in the tile table)."""
    return index_crc(t.numpy() for t in [*top, *bottom])


def encode_indices(prior: IntegerPrior, top: list[Tensor], bottom: list[Tensor]) -> bytes:
    """Range-code a tile's indices; returns the tile stream."""
    encoder = SymbolEncoder()
    known = (top, bottom)

    def write(level: int, stage: int, positions: Tensor, freqs: Tensor) -> Tensor:
        symbols = known[level][stage][positions]
        encoder.encode(symbols.numpy(), freqs.numpy())
        return symbols

    traverse(prior, tuple(bottom[0].shape), (len(top), len(bottom)), write)
    return encoder.finish()


def decode_indices(
    prior: IntegerPrior, stream: bytes, bottom_shape: tuple[int, int], stages: tuple[int, int]
) -> tuple[list[Tensor], list[Tensor]]:
    """Inverse of :func:`encode_indices` for a tile whose bottom index map has ``bottom_shape``."""
    decoder = SymbolDecoder(stream)

    def read(level: int, stage: int, positions: Tensor, freqs: Tensor) -> Tensor:
        return torch.from_numpy(np.asarray(decoder.decode(freqs.numpy()), dtype=np.int64))

    indices = traverse(prior, bottom_shape, stages, read)
    decoder.check_exhausted()
    return indices
