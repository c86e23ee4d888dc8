"""The public codec API: compress an image to .aec bytes and back.

One image travels like this: :func:`~aecodec.codec.images.load_source` makes RGB pixels (and an
alpha plane and metadata, which travel as container chunks), the tile
grid cuts them (:mod:`~aecodec.codec.tiling`), the model's float analysis maps each tile to VQ
indices (at the encoder effort asked, :mod:`~aecodec.codec.effort`),
:mod:`~aecodec.codec.index_coding` range-codes them under the exact integer prior, and
:mod:`aecodec.bitstream.format` packs header, tile table and streams. At the qualities above the
base's own, the image minus its decoded base is coded too, as a residual chunk
(:mod:`~aecodec.codec.residual_coding`). Decoding runs the same steps backwards; each tile's index
CRC is checked before its pixels are synthesized, and a model's post-filter
(:mod:`~aecodec.models.postfilter`) runs, then the file's own corrections, where the encoder wrote
them: a Wiener filter (:mod:`~aecodec.codec.wiener_filter`) and a correction field
(:mod:`~aecodec.codec.correction_field`).
"""

import copy
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image

from aecodec.bitstream import format as container
from aecodec.bitstream.format import (
    ALPHA,
    CORRECTION_FIELD,
    DEFAULT_MAX_PIXELS,
    FILTER_TUNING,
    MAX_RAW_PIXELS,
    RAW_PIXELS,
    RESIDUAL,
    WIENER_FILTER,
    AecFile,
    Header,
    pack,
    unpack,
)
from aecodec.codec import memory
from aecodec.codec.alpha import decode_alpha, encode_alpha
from aecodec.codec.correction_field import add_field, fit_field, unpack_field
from aecodec.codec.distortion import squared_error
from aecodec.codec.effort import EFFORTS, Effort, effort_plan, encode_tile, rd_lambda
from aecodec.codec.filter_target import filter_target
from aecodec.codec.filter_tuning import tune_filter, unpack_tuning
from aecodec.codec.images import ImageLike, SourceImage, load_source, read_binary, to_image, with_metadata
from aecodec.codec.index_coding import decode_indices, encode_indices, indices_crc
from aecodec.codec.options import DEFAULT_EFFORT, DEFAULT_OVERLAP, DEFAULT_QUALITY, DEFAULT_TILE_SIZE, DEFAULT_TUNE
from aecodec.codec.residual_coding import decode_residual, encode_residual, given
from aecodec.codec.residual_rdo import LAGRANGIAN, rdo_chooser
from aecodec.codec.tiling import Tile, core_within_region, pad_to_multiple, padded_size, tile_grid, to_tensor
from aecodec.codec.wiener_filter import Guides, apply_filter, fit_filter, unpack_filter
from aecodec.errors import FormatError, InputError
from aecodec.models.manifest import shipped_model_name
from aecodec.models.model_files import CodecModel, resolve_model, shipped_model
from aecodec.models.postfilter import FilterTuning
from aecodec.models.resampling import downsample2x, upsample2x
from aecodec.models.residual import blocks_shape

AecSource = bytes | bytearray | memoryview | str | Path | BinaryIO
Progress = Callable[[int, int], None]


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
        """``device`` runs the float analysis/synthesis networks (e.g. "cuda") and effort 5's filter tuning; the
        integer prior, the range coder and the post-filter always run on the CPU, so a decode is the same whichever
        device made the file."""
        self.model = model if isinstance(model, CodecModel) else resolve_model(model)
        self.device = _usable_device(device)
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

    @property
    def default_quality(self) -> int:
        """The quality :meth:`compress` uses when given none: the model's, else :data:`DEFAULT_QUALITY`."""
        return self.model.default_quality or DEFAULT_QUALITY

    @property
    def efforts(self) -> tuple[int, ...]:
        """The encoder efforts, fastest first (:mod:`aecodec.codec.effort`); every one decodes with the same decoder."""
        return tuple(range(1, len(EFFORTS) + 1))

    def _check_quality(self, quality: int | float) -> int:
        """``quality`` as an int (3.0 is 3); InputError naming the range for anything else."""
        if isinstance(quality, float) and quality.is_integer():
            quality = int(quality)
        if isinstance(quality, bool) or not isinstance(quality, int):
            raise InputError(f"quality must be an integer in 1..{self.model.num_qualities}, got {quality!r}")
        self.model.quality_plan(quality)  # InputError for a quality the model lacks
        return quality

    def analyze(
        self,
        pixels: np.ndarray,
        quality: int,
        tune: str = DEFAULT_TUNE,
        progress: Progress | None = None,
        effort: int = DEFAULT_EFFORT,
        *,
        half_base: bool = False,
    ) -> list[TileIndices]:
        """Base indices of every tile of an (H, W, 3) uint8 image at ``quality``, in tile order, encoded for
        ``tune`` at ``effort``; ``progress(done, total)`` is called after each tile. ``half_base`` codes
        the image at half resolution (only at qualities with a residual level)."""
        quality, plan = self._check_quality(quality), effort_plan(effort)
        quality, level = self.model.quality_plan(quality, half_base)
        if half_base:
            pixels = downsample2x(pixels)
        if level is not None:  # the residual layer absorbs a refined base (aecodec.codec.effort)
            plan = replace(plan, refine_steps=0)
        height, width = pixels.shape[:2]
        tiles = list(tile_grid(width, height, self.tile_size, self.overlap))
        out = []
        for tile in tiles:
            x = pad_to_multiple(to_tensor(pixels[tile.region.slices()]), self.network.stride)
            with thread_independent():
                top, bottom = encode_tile(self.network, self.model.prior, x.to(self.device), quality, tune, plan)
            out.append(TileIndices(top, bottom))
            memory.release(width, height)
            if progress:
                progress(len(out), len(tiles))
        return out

    def compress(
        self,
        image: ImageLike,
        quality: int | None = None,
        tune: str = DEFAULT_TUNE,
        *,
        target_bytes: int | None = None,
        strip: bool = False,
        effort: int = DEFAULT_EFFORT,
        progress: Progress | None = None,
    ) -> bytes:
        """Encode an image to ``.aec`` bytes.

        ``image``: a PIL image, a numpy array (H, W[, 1..4] uint8, or float in [0, 1]), a path, the bytes
        of an image file or a binary file object. ``quality``: an integer in ``1..len(self.qualities)``
        (default 3). ``target_bytes`` instead picks the highest quality whose file fits. ``tune="ms-ssim"``
        refines each tile's latent for MS-SSIM; a higher ``effort`` (one of :attr:`efforts`) is a slower
        encoder that finds better indices (:mod:`aecodec.codec.effort`); same decoder. Alpha is coded losslessly;
        ICC, EXIF and XMP are kept unless ``strip``. Raises :class:`InputError` for an unusable image or a
        target that even quality 1 exceeds or an effort out of range, ``ValueError`` for a bad quality or tune.
        """
        effort_plan(effort)  # InputError naming the range, before any work
        if target_bytes is not None and quality is not None:
            raise ValueError("give a quality or a target size, not both")
        if target_bytes is None:  # the quality is checked before any work
            quality = self._check_quality(self.default_quality if quality is None else quality)
        source = load_source(image, self.max_pixels, strip)
        return (
            self._fit(source, target_bytes, tune, progress, effort)
            if quality is None
            else self._encode(source, quality, tune, progress, effort)
        )

    def _encode(self, source: SourceImage, quality: int, tune: str, progress: Progress | None, effort: int) -> bytes:
        """The file of an image at one quality: of the bases the effort tries, the one of least D + lambda R, with the
        effort's recoding and filter tuning, then the corrections that pay for themselves on its decode."""
        plan = effort_plan(effort)
        files = [
            self._file(source, quality, tune, progress, effort, half) for half in self._bases(source, quality, effort)
        ]
        original, lagrangian = source.pixels[:, :, :3], self._lagrangian(quality)
        has_filter = self.model.postfilter is not None and files[0].chunk(RAW_PIXELS) is None
        if len(files) == 1 and not (has_filter and (plan.filter_steps or plan.filter_passes or plan.corrected_passes)):
            return pack(self._with_corrections(files[0], source, lagrangian, plan), self.max_pixels)
        decoded = [self._unfiltered(file) for file in files]  # exactly what a decoder will filter
        costs = [
            squared_error(pixels, original) + lagrangian * 8 * len(pack(file, self.max_pixels))
            for file, pixels in zip(files, decoded)
        ]
        best = min(range(len(files)), key=costs.__getitem__)
        file, unfiltered = files[best], decoded[best]
        if has_filter and plan.filter_passes:
            file, unfiltered = self._recode_for_filter(file, unfiltered, source, plan.filter_passes, lagrangian)
        tuning = None
        if has_filter and plan.filter_steps:
            payload = tune_filter(
                self.model.postfilter, unfiltered, original, quality, plan.filter_steps, lagrangian, self.device
            )
            if payload is not None:  # the passes use the tuning as the decoder will read it
                tuning = unpack_tuning(payload, self.model.postfilter)
                file = file.with_chunk(FILTER_TUNING, payload)
                file, unfiltered = self._recode_for_filter(
                    file, unfiltered, source, plan.tuned_passes, lagrangian, tuning
                )
        if has_filter and self._corrects(file, source, plan) and plan.corrected_passes:
            passes = plan.corrected_passes
            file, _ = self._recode_for_filter(file, unfiltered, source, passes, lagrangian, tuning, corrected=True)
            return pack(file, self.max_pixels)  # with the corrections fitted to its decode
        return pack(self._with_corrections(file, source, lagrangian, plan), self.max_pixels)

    def _corrects(self, file: AecFile, source: SourceImage, plan: Effort) -> bool:
        """Whether the encoder fits the corrections to ``file``: colour images, not raw pixels, at efforts that do."""
        return plan.corrections and source.channels == 3 and file.chunk(RAW_PIXELS) is None

    def _with_corrections(self, file: AecFile, source: SourceImage, lagrangian: float, plan: Effort) -> AecFile:
        """``file`` with the corrections fitted to its decode where :meth:`_corrects` says so."""
        if not self._corrects(file, source, plan):
            return file
        return self._corrected(file, *self._stages(file), source.pixels[:, :, :3], lagrangian)[0]

    def _corrected(
        self, file: AecFile, shown: np.ndarray, guides: Guides, original: np.ndarray, lagrangian: float
    ) -> tuple[AecFile, np.ndarray]:
        """``file`` with the corrections fitted to ``shown``, its decode before them (``guides``, its earlier
        stages), each where it beats none in squared error plus ``lagrangian`` times its bits: the Wiener filter
        (:mod:`aecodec.codec.wiener_filter`), then the correction field (:mod:`aecodec.codec.correction_field`)
        on the filtered decode; and what the decoder shows of the result."""
        fitted = fit_filter(shown, original, lagrangian, guides)
        if fitted is not None:
            file, shown = file.with_chunk(WIENER_FILTER, fitted[0]), fitted[1]
        field = fit_field(shown, original, lagrangian)
        if field is not None:
            header = file.header
            file, shown = (
                file.with_chunk(CORRECTION_FIELD, field),
                add_field(shown, *unpack_field(field, header.width, header.height)),
            )
        return file, shown

    def _recode_for_filter(
        self,
        file: AecFile,
        unfiltered: np.ndarray,
        source: SourceImage,
        passes: int,
        lagrangian: float,
        tuning: FilterTuning | None = None,
        corrected: bool = False,
    ) -> tuple[AecFile, np.ndarray]:
        """``file`` with its residual recoded ``passes`` times toward :func:`filter_target` of the last decode
        (through the filter with the file's ``tuning``, if it has one), the candidate of least filtered squared
        error plus ``lagrangian`` times its bits (the input's included), and its unfiltered decode.

        With ``corrected``, each candidate is judged with its corrections fitted (:meth:`_corrected`), the next pass
        aims at the original less what they add to the last decode (held fixed), and the file returned carries them.
        """
        header, original = file.header, source.pixels[:, :, :3]
        level, postfilter = self.model.quality_plan(header.quality)[1], self.model.postfilter
        if not passes or level is None or float(postfilter.gain[header.quality - 1]) == 0:
            return (
                self._corrected(file, *self._stages(file), original, lagrangian)[0] if corrected else file
            ), unfiltered
        layer, shape = self.model.residual, blocks_shape(header.width, header.height)
        base = self._synthesize(header, self.tile_indices(file))

        def judged(chunk: bytes, pixels: np.ndarray) -> tuple[float, np.ndarray, AecFile]:
            """A candidate's cost, what the next pass aims at, and its file."""
            filtered, candidate = self._filtered(pixels, header.quality, tuning), file.with_chunk(RESIDUAL, chunk)
            if not corrected:
                return squared_error(filtered, original) + lagrangian * 8 * len(chunk), original, candidate
            candidate, shown = self._corrected(candidate, filtered, Guides(pixels, base), original, lagrangian)
            cost = squared_error(shown, original) + lagrangian * 8 * len(pack(candidate, self.max_pixels))
            return cost, original - (shown.astype(np.float32) - filtered), candidate

        cost, goal, candidate = judged(file.chunk(RESIDUAL), unfiltered)
        best = (cost, candidate, unfiltered)
        pixels = unfiltered
        for _ in range(passes):
            target = filter_target(postfilter, pixels, goal, header.quality, tuning)
            with memory.unfragmented(header.width, header.height):
                chunk = encode_residual(layer, level, rdo_chooser(layer, level, target, base), shape)
                pixels = base.copy()
                layer.add_to(pixels, decode_residual(layer, level, chunk, shape), level)
            cost, goal, candidate = judged(chunk, pixels)
            best = min(best, (cost, candidate, pixels), key=lambda entry: entry[0])
        return best[1], best[2]

    def _bases(self, source: SourceImage, quality: int, effort: int) -> tuple[bool, ...]:
        """Which bases (``True``: half resolution) an image is coded on at ``quality`` and ``effort``.

        Below a residual level the half-resolution base, whose levels are fitted on it, cost 3-5% fewer
        bits than the full one at every rate (research/residual/README.md); efforts 3 and up try both.
        """
        height, width = source.pixels.shape[:2]
        if self.model.quality_plan(quality)[1] is None or width * height <= MAX_RAW_PIXELS:
            return (False,)
        return (False, True) if effort_plan(effort).base_choice else (True,)

    def _file(
        self, source: SourceImage, quality: int, tune: str, progress: Progress | None, effort: int, half_base: bool
    ) -> AecFile:
        """The parsed file of an image at one quality, on a full- or a half-resolution base, before filter tuning."""
        height, width = source.pixels.shape[:2]
        tiles = self.analyze(source.pixels, quality, tune, progress, effort, half_base=half_base)
        header = Header(
            source.channels,
            quality,
            self.model.name,
            self.model.digest,
            width,
            height,
            self.tile_size,
            self.overlap,
            len(tiles),
            half_base,
        )
        streams = tuple(encode_indices(self.model.prior, t.top, t.bottom) for t in tiles)
        crcs = tuple(indices_crc(t.top, t.bottom) for t in tiles)
        chunks = dict(source.metadata)
        if source.alpha is not None:
            chunks[ALPHA] = encode_alpha(source.alpha)
        if width * height <= MAX_RAW_PIXELS:  # tiny images are all border: store them exactly
            chunks[RAW_PIXELS] = source.pixels[:, :, : source.channels].tobytes()
        elif (level := self.model.quality_plan(quality)[1]) is not None:
            base = self._synthesize(header, zip(tile_grid(*header.base_size, self.tile_size, self.overlap), tiles))
            layer, pixels = self.model.residual, source.pixels[:, :, :3]
            with memory.unfragmented(width, height):
                quantized = None if effort_plan(effort).rdoq else layer.analyze(pixels, base, level)
                choose = rdo_chooser(layer, level, pixels, base) if quantized is None else given(quantized, level)
                chunks[RESIDUAL] = encode_residual(layer, level, choose, blocks_shape(width, height))
        return AecFile(header, crcs, streams, tuple(sorted(chunks.items())))

    def _lagrangian(self, quality: int) -> float:
        """Squared error (8-bit units) one bit is worth at ``quality``: RDOQ's at residual levels, else the base's."""
        base_quality, level = self.model.quality_plan(quality)
        return LAGRANGIAN * level.step**2 if level is not None else 255**2 * rd_lambda(base_quality)

    def _fit(self, source: SourceImage, target_bytes: int, tune: str, progress: Progress | None, effort: int) -> bytes:
        """The highest-quality file within ``target_bytes``: a binary search, since size grows with quality."""
        if isinstance(target_bytes, bool) or not isinstance(target_bytes, int) or target_bytes < 1:
            raise ValueError(f"target size must be a positive number of bytes, got {target_bytes!r}")
        low, high, best, smallest = 1, len(self.qualities), None, None
        while low <= high:
            quality = (low + high) // 2
            data = self._encode(source, quality, tune, progress, effort)
            if len(data) <= target_bytes:
                best, low = data, quality + 1
            else:
                smallest, high = len(data), quality - 1
        if best is None:
            raise InputError(f"the image does not fit in {target_bytes} bytes: the lowest quality needs {smallest}")
        return best

    def tile_indices(self, file: AecFile) -> Iterator[tuple[Tile, TileIndices]]:
        """Entropy-decode tiles one by one, each checked against its index CRC (FormatError if not).

        Lazy on purpose: a forged file fails on its first tile, before the image is allocated.
        """
        header = file.header
        self._check_file(header)
        stages = self.model.network.stages_for_quality(self.model.quality_plan(header.quality, header.half_base)[0])
        tiles = tile_grid(*header.base_size, header.tile_size, header.tile_overlap)
        for n, (tile, stream, crc) in enumerate(zip(tiles, file.streams, file.tile_crcs)):
            top, bottom = decode_indices(self.model.prior, stream, self.bottom_shape(tile), stages)
            if indices_crc(top, bottom) != crc:
                raise FormatError(f"tile {n}: index checksum mismatch (corrupted file, or a decoder that differs)")
            yield tile, TileIndices(top, bottom)

    def decompress(self, data: AecSource) -> Image.Image:
        """Decode an ``.aec`` file (bytes, path or binary file object) to a PIL image.

        The mode is "RGB", "L" for grayscale sources, "RGBA"/"LA" with alpha; ICC, EXIF and XMP are in
        ``info``. Raises :class:`FormatError` for a malformed file or one of another model,
        :class:`InputError` for an unreadable source.
        """
        file = unpack(read_binary(data, "an .aec file"), self.max_pixels)
        header, alpha = file.header, file.chunk(ALPHA)
        coded_field, coded_filter = file.chunk(CORRECTION_FIELD), file.chunk(WIENER_FILTER)
        # Both corrections are checked before the image is decoded.
        field = None if coded_field is None else unpack_field(coded_field, header.width, header.height)
        wiener = None if coded_filter is None else unpack_filter(coded_filter)
        pixels, guides = self._stages(file)
        if wiener is not None:
            pixels = apply_filter(pixels, wiener, guides)
        if field is not None:
            pixels = add_field(pixels, *field)
        alpha = None if alpha is None else decode_alpha(alpha, header.width, header.height)
        return with_metadata(to_image(pixels, header.channels, alpha), dict(file.chunks))

    def _shown(self, file: AecFile) -> np.ndarray:
        """The (H, W, 3) uint8 pixels of a parsed file before its corrections (see :meth:`_stages`)."""
        return self._stages(file)[0]

    def _stages(self, file: AecFile) -> tuple[np.ndarray, Guides]:
        """The (H, W, 3) uint8 pixels of a parsed file before its corrections (Wiener filter, correction field): its
        raw pixels, or the decode through the post-filter (with the file's own tuning, if it has one); and the
        earlier stages of the decode, which a Wiener filter may read."""
        header = file.header
        self._check_file(header)
        raw, tuning, postfilter = file.chunk(RAW_PIXELS), file.chunk(FILTER_TUNING), self.model.postfilter
        if tuning is not None and (postfilter is None or raw is not None):
            raise FormatError("invalid file: a filter chunk, but " + ("raw pixels" if postfilter else "no post-filter"))
        for tag, name in ((CORRECTION_FIELD, "correction field"), (WIENER_FILTER, "Wiener filter")):
            if raw is not None and file.chunk(tag) is not None:
                raise FormatError(f"invalid file: a {name} chunk, but raw pixels")
        base, pixels = self._decoded(file)
        guides = Guides(pixels, base)
        if raw is not None:
            return _raw_pixels(raw, header), guides
        if postfilter is None:
            return pixels, guides
        return self._filtered(
            pixels, header.quality, None if tuning is None else unpack_tuning(tuning, postfilter)
        ), guides

    def decompress_unfiltered(self, data: bytes) -> np.ndarray:
        """The (H, W, 3) uint8 pixels of an ``.aec`` file before the post-filter: what a filter is trained on
        (a file of raw pixels gives them, as :meth:`decompress` does)."""
        file = unpack(data, self.max_pixels)
        pixels, raw = self._unfiltered(file), file.chunk(RAW_PIXELS)
        return pixels if raw is None else _raw_pixels(raw, file.header)

    def _filtered(self, pixels: np.ndarray, quality: int, tuning: FilterTuning | None = None) -> np.ndarray:
        """What the decoder shows of unfiltered ``pixels`` at ``quality``: the post-filter's output (with a file's
        own ``tuning``), its correction bounded by the residual's quantizer cells where there is a residual."""
        filtered = self.model.postfilter.apply(pixels, quality, tuning)  # ``pixels`` itself where the gain is 0
        level = self.model.quality_plan(quality)[1]
        if level is not None and filtered is not pixels:
            filtered = self.model.residual.bound_correction(filtered, pixels, level)
        return filtered

    def _unfiltered(self, file: AecFile) -> np.ndarray:
        """The (H, W, 3) uint8 base plus residual of a parsed file, before any post-filter."""
        return self._decoded(file)[1]

    def _decoded(self, file: AecFile) -> tuple[np.ndarray, np.ndarray]:
        """The (H, W, 3) uint8 base of a parsed file, and the base plus its residual (the same array without one)."""
        header = file.header
        self._check_file(header)
        raw, residual = file.chunk(RAW_PIXELS), file.chunk(RESIDUAL)
        level = self.model.quality_plan(header.quality)[1]
        if (residual is None) != (level is None or raw is not None):
            wrong = (
                "needs a residual chunk" if residual is None else "codes no residual, yet the file has a residual chunk"
            )
            raise FormatError(f"invalid file: quality {header.quality} {wrong}")
        base = pixels = self._synthesize(header, self.tile_indices(file))
        if residual is not None:
            with memory.unfragmented(header.width, header.height):
                shape, pixels = blocks_shape(header.width, header.height), base.copy()
                self.model.residual.add_to(pixels, decode_residual(self.model.residual, level, residual, shape), level)
        return base, pixels

    def _synthesize(self, header: Header, tiles: Iterable[tuple[Tile, TileIndices]]) -> np.ndarray:
        """The base's (H, W, 3) uint8 pixels from each tile's indices, upsampled if they code half the resolution."""
        pixels = None
        for tile, indices in tiles:
            if pixels is None:
                pixels = _allocate_image(*header.base_size)
            with thread_independent():
                rgb = self.network.decode(indices.top, indices.bottom)[0].cpu()
            rgb = rgb[:, : tile.region.height, : tile.region.width][:, *core_within_region(tile)]
            pixels[tile.core.slices()] = (rgb * 255).round().byte().permute(1, 2, 0).numpy()
            memory.release(header.width, header.height)
        return upsample2x(pixels, header.width, header.height) if header.half_base else pixels

    def bottom_shape(self, tile: Tile) -> tuple[int, int]:
        """Bottom-level index map size of a tile: its padded region at half the network's stride."""
        stride = self.network.stride
        return tuple(padded_size(side, stride) // (stride // 2) for side in (tile.region.height, tile.region.width))

    def _check_file(self, header: Header) -> None:
        if header.model_hash != self.model.digest or header.model_name not in (None, self.model.name):
            named = "" if header.model_name is None else f"{header.model_name!r} "
            raise FormatError(
                f"file was coded with model {named}({header.model_hash.hex()}), "
                f"this codec has {self.model.name!r} ({self.model.digest.hex()})"
            )
        if header.quality > self.model.num_qualities:
            raise FormatError(f"quality {header.quality} is beyond this model's {self.model.num_qualities}")
        if header.half_base and self.model.quality_plan(header.quality)[1] is None:
            raise FormatError(f"invalid file: quality {header.quality} codes no residual, so no half-resolution base")


def _raw_pixels(raw: bytes, header: Header) -> np.ndarray:
    """The (H, W, 3) uint8 pixels of a ``PIXL`` chunk (grayscale repeated), checked for size by unpack."""
    plane = np.frombuffer(raw, dtype=np.uint8).reshape(header.height, header.width, header.channels)
    return np.ascontiguousarray(np.broadcast_to(plane, (header.height, header.width, 3)))


def _allocate_image(width: int, height: int) -> np.ndarray:
    """An image's (height, width, 3) uint8 pixels, or InputError where memory cannot hold them (only with a
    raised max_pixels). Checked against physical memory first: with overcommit, a 3 TiB ``np.empty`` may
    succeed and fail later.
    """
    size = 3 * width * height
    try:
        if size > os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"):
            raise MemoryError
        return np.empty((height, width, 3), dtype=np.uint8)
    except MemoryError:
        raise InputError(f"not enough memory for a {width}x{height} image ({size / 2**30:.1f} GiB)") from None


def _usable_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch device, InputError in one line if this machine cannot use it."""
    try:
        device = torch.device(device)
        torch.empty(1, device=device)
    except (RuntimeError, AssertionError, ValueError) as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(f"device {str(device)!r} is not usable here: {first_line}") from None
    return device


def read_header(data: AecSource, max_pixels: int = DEFAULT_MAX_PIXELS) -> Header:
    """The header of an ``.aec`` file (bytes, path or binary file object): size, channels, quality, model.

    Cheap: nothing is decoded. Raises :class:`FormatError` if the header is malformed.
    """
    return container.read_header(read_binary(data, "an .aec file"), max_pixels)


def model_for_file(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> CodecModel:
    """The shipped model a file names or (version 3) hashes; FormatError if it is not installed."""
    header = container.read_header(data, max_pixels)
    try:
        return shipped_model(header.model_name or shipped_model_name(header.model_hash) or "")
    except ValueError:
        wanted = f"{header.model_name!r}" if header.model_name else f"with hash {header.model_hash.hex()}"
        raise FormatError(f"file needs model {wanted}, which is not installed; give its model file") from None


def compress(
    image: ImageLike,
    quality: int | None = None,
    model: str | None = None,
    tune: str = DEFAULT_TUNE,
    *,
    target_bytes: int | None = None,
    strip: bool = False,
    effort: int = DEFAULT_EFFORT,
) -> bytes:
    """Compress an image with a shipped model (the default one unless named); see :meth:`Codec.compress`.

    ``quality`` is an integer in 1..8 for the default model (default 3), or give ``target_bytes``.
    Raises :class:`InputError` / ``ValueError`` for unusable images or arguments.
    """
    return Codec(model).compress(image, quality, tune, target_bytes=target_bytes, strip=strip, effort=effort)


def decompress(data: AecSource, model: str | None = None) -> Image.Image:
    """Decompress an ``.aec`` file (bytes, path or binary file object) with the model it names.

    Raises :class:`FormatError` for a malformed file or an uninstalled model (give ``model``, a name or
    a ``.safetensors`` path), :class:`InputError` for an unreadable source.
    """
    data = read_binary(data, "an .aec file")
    return Codec(model or model_for_file(data)).decompress(data)
