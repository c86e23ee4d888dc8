"""The public codec API: compress an image to .aec bytes and back.

One image travels like this: :func:`~aecodec.codec.images.load_pixels` makes RGB pixels, the tile
grid cuts them (:mod:`~aecodec.codec.tiling`), the model's float analysis maps each tile to VQ
indices (tuned for a metric by :mod:`~aecodec.codec.refine` if asked),
:mod:`~aecodec.codec.index_coding` range-codes them under the exact integer prior, and
:mod:`aecodec.bitstream.format` packs header, tile table and streams. Decoding runs the same steps
backwards; each tile's index CRC is checked before its pixels are synthesized.
"""

import copy
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from aecodec.bitstream.format import DEFAULT_MAX_PIXELS, AecFile, Header, pack, read_header, unpack
from aecodec.codec.images import ImageLike, load_pixels, to_image
from aecodec.codec.index_coding import decode_indices, encode_indices, indices_crc
from aecodec.codec.options import DEFAULT_OVERLAP, DEFAULT_QUALITY, DEFAULT_TILE_SIZE, DEFAULT_TUNE
from aecodec.codec.refine import tuned_encode
from aecodec.codec.tiling import Tile, core_within_region, pad_to_multiple, padded_size, tile_grid, to_tensor
from aecodec.errors import FormatError, InputError
from aecodec.models.model_files import CodecModel, resolve_model, shipped_model


@dataclass(frozen=True)
class TileIndices:
    """The coded content of one tile: its stage index maps, top and bottom level."""

    top: list[torch.Tensor]
    bottom: list[torch.Tensor]


@contextmanager
def thread_independent() -> Iterator[None]:
    """Float networks that compute the same bits on any number of CPU threads.

    oneDNN chooses its convolution kernels by thread count, so with ``OMP_NUM_THREADS=1`` and ``2``
    latents differed in the last bits, flipping nearest-codeword ties (6 of 12 Kodak encodes) and
    pixels by 1; PyTorch's native kernels split work across threads without changing sums.
    """
    previous = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False  # not mkldnn.flags(), which warns about TF32 on every exit
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = previous


class Codec:
    """A codec bound to one model (a shipped name, a ``.safetensors`` path, or a loaded model)."""

    def __init__(
        self,
        model: str | CodecModel | None = None,
        tile_size: int = DEFAULT_TILE_SIZE,
        overlap: int = DEFAULT_OVERLAP,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        device: str | torch.device = "cpu",
    ) -> None:
        """``device`` runs the float analysis/synthesis networks (e.g. "cuda"); the integer prior and
        the range coder always run on the CPU, so files are the same whichever device made them."""
        self.model = model if isinstance(model, CodecModel) else resolve_model(model)
        self.device = torch.device(device)
        # Shipped models are cached and shared: move a copy, never the shared network.
        self.network = (
            self.model.network if self.device.type == "cpu" else copy.deepcopy(self.model.network).to(self.device)
        )
        stride = self.model.network.stride
        if tile_size % stride or not 0 <= overlap < tile_size // 4:
            raise ValueError(f"tile size must be a multiple of {stride} and overlap below a quarter of it")
        self.tile_size, self.overlap, self.max_pixels = tile_size, overlap, max_pixels

    @property
    def qualities(self) -> list[int]:
        """The quality settings this model offers, lowest rate first."""
        return list(range(1, self.model.num_qualities + 1))

    def analyze(self, pixels: np.ndarray, quality: int, tune: str = DEFAULT_TUNE) -> list[TileIndices]:
        """Indices of every tile of an (H, W, 3) uint8 image, in tile order, the encoder tuned for ``tune``."""
        self.model.network.stages_for_quality(quality)  # InputError for a quality the model lacks
        return self._analyze(pixels, quality, tune)

    def _analyze(self, pixels: np.ndarray, quality: int, tune: str) -> list[TileIndices]:
        height, width = pixels.shape[:2]
        out = []
        for tile in tile_grid(width, height, self.tile_size, self.overlap):
            x = pad_to_multiple(to_tensor(pixels[tile.region.slices()]), self.network.stride)
            with thread_independent():
                top, bottom = tuned_encode(self.network, x.to(self.device), quality, tune)
            out.append(TileIndices(top, bottom))
        return out

    def compress(self, image: ImageLike, quality: int = DEFAULT_QUALITY, tune: str = DEFAULT_TUNE) -> bytes:
        """Encode an image (PIL, numpy array or path) to ``.aec`` bytes.

        ``tune="ms-ssim"`` refines each tile's latent for MS-SSIM (:mod:`aecodec.codec.refine`): a slower
        encoder, the same decoder.
        """
        self.model.network.stages_for_quality(quality)  # the one check of the quality, before any work
        pixels, channels = load_pixels(image, self.max_pixels)
        height, width = pixels.shape[:2]
        tiles = self._analyze(pixels, quality, tune)
        header = Header(
            channels,
            quality,
            self.model.name,
            self.model.digest,
            width,
            height,
            self.tile_size,
            self.overlap,
            len(tiles),
        )
        streams = tuple(encode_indices(self.model.prior, t.top, t.bottom) for t in tiles)
        crcs = tuple(indices_crc(t.top, t.bottom) for t in tiles)
        return pack(AecFile(header, crcs, streams), self.max_pixels)

    def tile_indices(self, file: AecFile) -> Iterator[tuple[Tile, TileIndices]]:
        """Entropy-decode tiles one by one, each checked against its index CRC (FormatError if not).

        Lazy on purpose: a forged file fails on its first tile, before the image is allocated.
        """
        header = file.header
        self._check_file(header)
        stages = self.model.network.stages_for_quality(header.quality)
        tiles = tile_grid(header.width, header.height, header.tile_size, header.tile_overlap)
        for n, (tile, stream, crc) in enumerate(zip(tiles, file.streams, file.tile_crcs)):
            top, bottom = decode_indices(self.model.prior, stream, self.bottom_shape(tile), stages)
            if indices_crc(top, bottom) != crc:
                raise FormatError(f"tile {n}: index checksum mismatch (corrupted file, or a decoder that differs)")
            yield tile, TileIndices(top, bottom)

    def decompress(self, data: bytes) -> Image.Image:
        """Decode ``.aec`` bytes to a PIL image (mode "RGB", or "L" for grayscale sources)."""
        file = unpack(data, self.max_pixels)
        header = file.header
        pixels = None
        for tile, indices in self.tile_indices(file):
            if pixels is None:
                pixels = _allocate_image(header)
            with thread_independent():
                rgb = self.network.decode(indices.top, indices.bottom)[0].cpu()
            rgb = rgb[:, : tile.region.height, : tile.region.width][:, *core_within_region(tile)]
            pixels[tile.core.slices()] = (rgb * 255).round().byte().permute(1, 2, 0).numpy()
        return to_image(pixels, header.channels)

    def bottom_shape(self, tile: Tile) -> tuple[int, int]:
        """Bottom-level index map size of a tile: its padded region at half the network's stride."""
        stride = self.network.stride
        return tuple(padded_size(side, stride) // (stride // 2) for side in (tile.region.height, tile.region.width))

    def _check_file(self, header: Header) -> None:
        if header.model_name != self.model.name or header.model_hash != self.model.digest:
            raise FormatError(
                f"file was coded with model {header.model_name!r} ({header.model_hash.hex()}), "
                f"this codec has {self.model.name!r} ({self.model.digest.hex()})"
            )
        if header.quality > self.model.num_qualities:
            raise FormatError(f"quality {header.quality} is beyond this model's {self.model.num_qualities}")


def _allocate_image(header: Header) -> np.ndarray:
    """The decoded image's pixels, or InputError where memory cannot hold them (only with a raised max_pixels).

    Checked against physical memory first: with overcommit, a 3 TiB ``np.empty`` may succeed and fail later.
    """
    size = 3 * header.width * header.height
    try:
        if size > os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"):
            raise MemoryError
        return np.empty((header.height, header.width, 3), dtype=np.uint8)
    except MemoryError:
        raise InputError(
            f"not enough memory for a {header.width}x{header.height} image ({size / 2**30:.1f} GiB)"
        ) from None


def model_for_file(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> CodecModel:
    """The shipped model a file names (FormatError if it is not installed)."""
    header = read_header(data, max_pixels)
    try:
        return shipped_model(header.model_name)
    except ValueError:
        raise FormatError(
            f"file needs model {header.model_name!r}, which is not installed (use --model PATH)"
        ) from None


def compress(
    image: ImageLike, quality: int = DEFAULT_QUALITY, model: str | None = None, tune: str = DEFAULT_TUNE
) -> bytes:
    """Compress an image with a shipped model (the default one unless named), the encoder tuned for ``tune``."""
    return Codec(model).compress(image, quality, tune)


def decompress(data: bytes, model: str | None = None) -> Image.Image:
    """Decompress ``.aec`` bytes with the model the file names (or the given model name/path)."""
    return Codec(model or model_for_file(data)).decompress(data)
