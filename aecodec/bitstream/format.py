"""Reading and writing the `.aec` container (format version 3, and the earlier 1 and 2); docs/FORMAT.md is the spec.

Every check on untrusted bytes runs before anything sized by a field of the file is
allocated, and every failure is a `FormatError` with a one-line message.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np

from aecodec.errors import FormatError

MAGIC = b"AEC\x1a"
FORMAT_VERSION = 1  # files without chunks: byte for byte what release 0.1 wrote
CHUNKED_VERSION = 2  # version 1 followed by a chunk section
COMPACT_VERSION = 3  # what this release writes: the same content in 39-53 fewer bytes (Kodak files)
HEADER_SIZE = 48
TILE_ENTRY_SIZE = 8
CRC_SIZE = 4
STREAM_WORD_SIZE = 4

CHANNEL_COUNTS = (1, 3)
MODEL_HASH_SIZE = 8
MAX_DIMENSION = 1 << 20
DEFAULT_MAX_PIXELS = 1 << 27
MIN_TILE_SIZE = 64
MAX_TILE_SIZE = 2048  # bounds the decoder's per-tile working memory
TILE_SIZE_MULTIPLE = 16
MAX_TILE_COUNT = 1 << 20
MAX_INDEX = 0xFFFF
# Sum of the tiles' padded regions over the padded image: at most 2 per side for every grid a writer
# can produce (overlap below a quarter of the tile), so a decoder's work is bounded before any tile.
MAX_WORK_FACTOR = 4
HALF_BASE = 0x01  # flags bit: the tiles code the image at half resolution, upsampled before the residual
GRAYSCALE = 0x02  # version 3 flags bit: one channel (the header has no channel count)
COMPACT_FIXED = struct.Struct("<4sBBB8s")  # magic, version, flags, quality, model hash
MAX_VARINT_BYTES = 5  # an unsigned LEB128 value below 2**35

CHUNK_OVERHEAD = 6  # bytes a chunk adds around its payload in version 3: its tag and (below 16 KiB) its length
LEGACY_CHUNK_OVERHEAD = 12  # and in version 2: tag, length and CRC
MAX_CHUNKS = 16
MAX_METADATA_BYTES = 1 << 20
MAX_RAW_PIXELS = 64
ICC_PROFILE, EXIF, XMP = b"iccp", b"exif", b"xmp "
ALPHA, FILTER_TUNING, RAW_PIXELS, RESIDUAL = b"ALPH", b"FILT", b"PIXL", b"RESD"
CORRECTION_FIELD, WIENER_FILTER = b"CFLD", b"WIEN"
MAX_FILTER_CHANNELS = 64  # a model's post-filter: bounds its work per pixel (the shipped one has 32)
MAX_FILTER_BLOCKS = 4  # and its residual blocks, two 3x3 convolutions each
FILTER_TUNING_PREFIX_SIZE = 2  # version and gain bytes, then an offset byte per filter channel
# Version 2 adds two bytes and the later convolutions' offsets, at most 16 bits each (aecodec.bitstream.golomb).
MAX_FILTER_TUNING_SIZE = (
    FILTER_TUNING_PREFIX_SIZE + MAX_FILTER_CHANNELS + 2 + 2 * (MAX_FILTER_CHANNELS * (1 + 2 * MAX_FILTER_BLOCKS) + 3)
)
RESIDUAL_BYTES_PER_BLOCK = 192 * 5  # 192 symbols of at most 24 bits plus 12 escape bits each
# Version, CRC32, a row offset per band (from version 2) and (version 3) a byte n and n bytes of slopes.
RESIDUAL_PREFIX_SIZE = 5 + 15 + 1 + 255
RESIDUAL_MIN_SIZE = 5
CORRECTION_FIELD_PREFIX_SIZE = 4  # version, cell exponent, step, order
# Cells of at least 32 pixels, three values each of at most 23 bits (aecodec.codec.correction_field).
CORRECTION_FIELD_BYTES_PER_CELL, MIN_CORRECTION_CELL = 9, 32
WIENER_FILTER_PREFIX_SIZE = 5  # version 1's: version, own radius, cross radius, shift, order (version 2 has 7)
# At most 4 filters x 3 channels x 82 taps (radii 5 and 3, both guides) of |tap| <= 8 << 10, 29 bits each
# (aecodec.codec.wiener_filter).
MAX_WIENER_FILTER_SIZE = 7 + (4 * 3 * 82 * 29 + 7) // 8

_HEADER_STRUCT = struct.Struct("<4sBBBB16s8sIIHHI")
_U32 = struct.Struct("<I")
# A model name: also a file-name stem, so it starts with a letter or digit (never "." or "..").
MODEL_NAME_RE = re.compile(rb"[a-z0-9][a-z0-9._-]{0,15}")
_CHUNK_HEAD = struct.Struct("<4sI")
_TAG_RE = re.compile(rb"[A-Za-z][A-Za-z0-9 ]{3}")


@dataclass(frozen=True)
class Header:
    """The header: what the image is and which model and tiling coded it."""

    channels: int
    quality: int
    model_name: str | None  # versions 1 and 2 name the model; version 3 only hashes it (None)
    model_hash: bytes
    width: int
    height: int
    tile_size: int
    tile_overlap: int
    tile_count: int
    half_base: bool = False  # flags bit HALF_BASE

    @property
    def base_size(self) -> tuple[int, int]:
        """(width, height) of the image the tiles code: half the image's, rounded up, for a half-resolution base."""
        if self.half_base:
            return -(-self.width // 2), -(-self.height // 2)
        return self.width, self.height

    @property
    def tile_step(self) -> int:
        """Side of a tile's core region: the distance between neighbouring tiles' origins."""
        return self.tile_size - 2 * self.tile_overlap

    @property
    def tile_grid(self) -> tuple[int, int]:
        """(rows, cols) of the tile grid over :attr:`base_size`; tiles are stored row-major."""
        step, (width, height) = self.tile_step, self.base_size
        return -(-height // step), -(-width // step)

    @property
    def table_end(self) -> int:
        """Offset of a version 1 or 2 file's header CRC: the header and tile table occupy [0, table_end)."""
        return HEADER_SIZE + TILE_ENTRY_SIZE * self.tile_count

    @property
    def decode_work(self) -> int:
        """Pixels a decoder synthesizes: every tile's region padded to multiples of 16, summed."""
        width, height = self.base_size
        return _padded_regions(height, self.tile_step, self.tile_overlap) * _padded_regions(
            width, self.tile_step, self.tile_overlap
        )

    def validate(self, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        """Raise FormatError unless every field is within the limits of docs/FORMAT.md."""
        if not isinstance(max_pixels, int) or max_pixels < 1:
            raise ValueError(f"max_pixels must be a positive int, got {max_pixels!r}")
        if self.channels not in CHANNEL_COUNTS:
            raise FormatError(f"invalid header: channels is {self.channels}, must be 1 or 3")
        if not isinstance(self.half_base, bool):
            raise FormatError(f"invalid header: half_base must be a bool, got {self.half_base!r}")
        if not 1 <= self.quality <= 255:
            raise FormatError(f"invalid header: quality is {self.quality}, must be 1..255")
        if self.model_name is not None and (
            not isinstance(self.model_name, str)
            or not MODEL_NAME_RE.fullmatch(self.model_name.encode("ascii", "replace"))
        ):
            raise FormatError(
                f"invalid header: model name {self.model_name!r} is not 1..16 characters "
                "of [a-z0-9._-] starting with a letter or digit"
            )
        if not isinstance(self.model_hash, bytes) or len(self.model_hash) != MODEL_HASH_SIZE:
            raise FormatError(f"invalid header: model hash must be {MODEL_HASH_SIZE} bytes")
        if not (1 <= self.width <= MAX_DIMENSION and 1 <= self.height <= MAX_DIMENSION):
            raise FormatError(
                f"invalid header: image size {self.width}x{self.height} is out of range (each side 1..{MAX_DIMENSION})"
            )
        if self.width * self.height > max_pixels:
            raise FormatError(
                f"image of {self.width}x{self.height} = {self.width * self.height} pixels exceeds "
                f"the limit of {max_pixels} pixels (pass a larger max_pixels to allow it)"
            )
        if not (MIN_TILE_SIZE <= self.tile_size <= MAX_TILE_SIZE and self.tile_size % TILE_SIZE_MULTIPLE == 0):
            raise FormatError(
                f"invalid header: tile size {self.tile_size} is not a multiple of "
                f"{TILE_SIZE_MULTIPLE} in {MIN_TILE_SIZE}..{MAX_TILE_SIZE}"
            )
        if not (self.tile_overlap >= 0 and self.tile_overlap % 2 == 0 and 4 * self.tile_overlap < self.tile_size):
            raise FormatError(
                f"invalid header: tile overlap {self.tile_overlap} must be even and less than "
                f"a quarter of the tile size {self.tile_size}"
            )
        rows, cols = self.tile_grid
        if rows * cols > MAX_TILE_COUNT:
            raise FormatError(f"invalid header: the {rows}x{cols} tile grid has more than {MAX_TILE_COUNT} tiles")
        if self.tile_count != rows * cols:
            raise FormatError(
                f"invalid header: tile count {self.tile_count} does not match the {rows}x{cols} tile grid"
            )
        width, height = self.base_size
        padded = _padded(width) * _padded(height)
        if self.decode_work > MAX_WORK_FACTOR * padded:
            raise FormatError(
                f"invalid header: the tile grid decodes {self.decode_work} pixels, more than "
                f"{MAX_WORK_FACTOR}x the {padded} of the padded image"
            )


def _padded(size: int) -> int:
    """``size`` rounded up to a multiple of 16, as a decoder pads a tile's region."""
    return -(-size // TILE_SIZE_MULTIPLE) * TILE_SIZE_MULTIPLE


def _padded_regions(size: int, step: int, overlap: int) -> int:
    """Sum over one axis of the grid of the tiles' padded region lengths (docs/FORMAT.md, Tile grid)."""
    starts = np.arange(0, size, step, dtype=np.int64)
    lengths = np.minimum(size, starts + step + overlap) - np.maximum(0, starts - overlap)
    return int((-(-lengths // TILE_SIZE_MULTIPLE) * TILE_SIZE_MULTIPLE).sum())


def chunk_limit(tag: bytes, header: Header) -> int:
    """Largest payload a chunk may have (docs/FORMAT.md); FormatError for unknown critical tags."""
    pixels = header.width * header.height
    cells = -(-header.width // MIN_CORRECTION_CELL) * -(-header.height // MIN_CORRECTION_CELL)
    limits = {
        ICC_PROFILE: MAX_METADATA_BYTES,
        EXIF: MAX_METADATA_BYTES,
        XMP: MAX_METADATA_BYTES,
        # A method byte and a deflate stream of the plane (deflate adds 5 bytes per 16 KiB at most).
        ALPHA: pixels + pixels // 1024 + 64,
        RAW_PIXELS: header.channels * pixels if pixels <= MAX_RAW_PIXELS else 0,
        FILTER_TUNING: MAX_FILTER_TUNING_SIZE,
        CORRECTION_FIELD: CORRECTION_FIELD_PREFIX_SIZE + CORRECTION_FIELD_BYTES_PER_CELL * cells,
        WIENER_FILTER: MAX_WIENER_FILTER_SIZE,
        RESIDUAL: RESIDUAL_PREFIX_SIZE + RESIDUAL_BYTES_PER_BLOCK * -(-header.width // 8) * -(-header.height // 8),
    }
    if tag in limits:
        return limits[tag]
    if tag[:1].isupper():
        raise FormatError(f"file needs the unknown critical chunk {tag.decode()!r} (written by a newer aecodec?)")
    return MAX_METADATA_BYTES


def check_metadata(tag: bytes, payload: bytes) -> None:
    """Raise FormatError unless an ICC, EXIF or XMP payload is well formed and within its limit."""
    if len(payload) > MAX_METADATA_BYTES:
        raise FormatError(
            f"{tag.decode().strip()} metadata of {len(payload)} bytes is over the limit of {MAX_METADATA_BYTES}"
        )
    if tag == ICC_PROFILE and (len(payload) < 128 or payload[36:40] != b"acsp"):
        raise FormatError("invalid ICC profile (no 'acsp' signature)")
    if tag == EXIF and payload[:4] not in (b"II*\0", b"MM\0*"):
        raise FormatError("invalid EXIF (no TIFF header)")
    if tag == XMP:
        try:
            payload.decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError("invalid XMP (not UTF-8)") from None


def check_chunk(tag: bytes, payload: bytes, header: Header) -> None:
    """Raise FormatError unless a chunk's payload is well formed for its (known) tag."""
    if tag in (ICC_PROFILE, EXIF, XMP):
        check_metadata(tag, payload)
    if tag == ALPHA and not payload:
        raise FormatError("invalid alpha chunk (empty)")
    if tag == RESIDUAL and len(payload) < RESIDUAL_MIN_SIZE:
        raise FormatError("invalid residual chunk: shorter than a version byte and a CRC")
    if tag == CORRECTION_FIELD and len(payload) < CORRECTION_FIELD_PREFIX_SIZE:
        raise FormatError("invalid correction field chunk: shorter than its 4-byte prefix")
    if tag == WIENER_FILTER and len(payload) < WIENER_FILTER_PREFIX_SIZE:
        raise FormatError(f"invalid Wiener filter chunk: shorter than its {WIENER_FILTER_PREFIX_SIZE}-byte prefix")
    if tag == FILTER_TUNING and len(payload) <= FILTER_TUNING_PREFIX_SIZE:
        raise FormatError("invalid filter chunk: not a version byte, a gain byte and an offset per channel")
    if tag == RAW_PIXELS and len(payload) != header.channels * header.width * header.height:
        raise FormatError(
            f"invalid raw pixel chunk: {len(payload)} bytes for a "
            f"{header.width}x{header.height} image of {header.channels} channels"
        )


@dataclass(frozen=True)
class AecFile:
    """A whole `.aec` file: header, an index CRC and a range-coded stream per tile, chunks.

    ``chunks`` holds (tag, payload) pairs in ascending tag order, each tag at most once.
    """

    header: Header
    tile_crcs: tuple[int, ...]
    streams: tuple[bytes, ...]
    chunks: tuple[tuple[bytes, bytes], ...] = ()

    def chunk(self, tag: bytes) -> bytes | None:
        """The payload of the chunk with this tag, or None if the file has none."""
        return dict(self.chunks).get(tag)

    def with_chunk(self, tag: bytes, payload: bytes) -> AecFile:
        """This file with chunk ``tag`` set to ``payload`` (added or replaced; the chunks stay in tag order)."""
        return replace(self, chunks=tuple(sorted({**dict(self.chunks), tag: payload}.items())))

    def without_chunk(self, tag: bytes) -> AecFile:
        """This file without chunk ``tag`` (unchanged if it has none)."""
        return replace(self, chunks=tuple((t, payload) for t, payload in self.chunks if t != tag))


def _check_chunks(chunks: tuple[tuple[bytes, bytes], ...], header: Header) -> None:
    """Validate chunks as `pack` writes them: tags strictly ascending, payloads within bounds."""
    if len(chunks) > MAX_CHUNKS:
        raise FormatError(f"invalid file: {len(chunks)} chunks, at most {MAX_CHUNKS} allowed")
    previous = b""
    for tag, payload in chunks:
        _check_tag(tag, previous)
        _check_length(tag, len(payload), header)
        check_chunk(tag, payload, header)
        previous = tag


def _check_tag(tag: bytes, previous: bytes) -> None:
    if not _TAG_RE.fullmatch(tag):
        raise FormatError(f"invalid chunk tag {tag!r}")
    if tag <= previous:
        raise FormatError(f"chunk {tag.decode()!r} is out of order or repeated")


def _check_length(tag: bytes, length: int, header: Header) -> None:
    limit = chunk_limit(tag, header)
    if length > limit:
        raise FormatError(f"chunk {tag.decode()!r} has {length} bytes, over its limit of {limit}")


def pack(file: AecFile, max_pixels: int = DEFAULT_MAX_PIXELS, legacy: bool = False) -> bytes:
    """Serialize ``file`` in version 3 or (``legacy``, as earlier releases wrote) in version 1 or 2; raise
    FormatError for anything `unpack` (same limit) would reject."""
    header = file.header
    header.validate(max_pixels)
    if not len(file.tile_crcs) == len(file.streams) == header.tile_count:
        raise FormatError(
            f"invalid file: {len(file.tile_crcs)} tile CRCs and {len(file.streams)} streams "
            f"for {header.tile_count} tiles"
        )
    for i, (crc, stream) in enumerate(zip(file.tile_crcs, file.streams, strict=True)):
        if not 0 <= crc <= 0xFFFFFFFF:
            raise FormatError(f"invalid file: index CRC of tile {i} is not a u32")
        if len(stream) % STREAM_WORD_SIZE or len(stream) > 0xFFFFFFFF:
            raise FormatError(f"invalid file: stream of tile {i} has {len(stream)} bytes, not a u32 multiple of 4")
    _check_chunks(file.chunks, header)
    if not legacy:
        head = b"".join(value for _, value in compact_head_fields(file))
        return seal(head, file.streams, [payload for _, payload in file.chunks])
    if header.model_name is None:
        raise FormatError("invalid file: versions 1 and 2 name the model")
    prefix = b"".join(
        [
            _HEADER_STRUCT.pack(
                MAGIC,
                CHUNKED_VERSION if file.chunks else FORMAT_VERSION,
                header.channels,
                header.quality,
                HALF_BASE if header.half_base else 0,
                header.model_name.encode("ascii"),
                header.model_hash,
                header.width,
                header.height,
                header.tile_size,
                header.tile_overlap,
                header.tile_count,
            ),
            *(struct.pack("<II", len(s), crc) for s, crc in zip(file.streams, file.tile_crcs, strict=True)),
        ]
    )
    chunks = [_U32.pack(len(file.chunks))] if file.chunks else []
    for tag, payload in file.chunks:
        head = _CHUNK_HEAD.pack(tag, len(payload))
        chunks += [head, payload, _U32.pack(zlib.crc32(payload, zlib.crc32(head)))]
    return b"".join([prefix, _U32.pack(zlib.crc32(prefix)), *file.streams, *chunks])


def varint(value: int) -> bytes:
    """``value`` (>= 0) in unsigned LEB128: 7 bits a byte, the lowest first, the top bit set on all but the last."""
    out = bytearray()
    while True:
        value, low = value >> 7, value & 0x7F
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def compact_head_fields(file: AecFile) -> list[tuple[str, bytes]]:
    """A version 3 file's fields before its header CRC as (name in docs/FORMAT.md's Layout, bytes), in file order.

    Unchecked (:func:`pack` checks the file first), so a test or the fuzzer can change one and :func:`seal` the rest.
    """
    header = file.header
    flags = (HALF_BASE if header.half_base else 0) | (GRAYSCALE if header.channels == 1 else 0)
    return [
        ("magic", MAGIC),
        ("version", bytes([COMPACT_VERSION])),
        ("flags", bytes([flags])),
        ("quality", bytes([header.quality])),
        ("model_hash", header.model_hash),
        ("width", varint(header.width)),
        ("height", varint(header.height)),
        ("tile_units", bytes([header.tile_size // TILE_SIZE_MULTIPLE])),
        ("overlap_units", bytes([header.tile_overlap // 2])),
        *(("stream_words[i]", varint(len(stream) // STREAM_WORD_SIZE)) for stream in file.streams),
        *(("index_crc[i]", _U32.pack(crc)) for crc in file.tile_crcs),
        ("chunk_count", bytes([len(file.chunks)])),
        *(("chunk_table", tag + varint(len(payload))) for tag, payload in file.chunks),
    ]


def seal(head: bytes, streams: Iterable[bytes], payloads: list[bytes]) -> bytes:
    """A version 3 file from its fields before the header CRC, its tile streams and its chunks' payloads."""
    joined = b"".join(payloads)
    payload_crc = _U32.pack(zlib.crc32(joined)) if payloads else b""
    return b"".join([head, _U32.pack(zlib.crc32(head)), *streams, joined, payload_crc])


def read_header(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Header:
    """Parse and check the header and its checksum only; the streams may be missing (`info`)."""
    data = bytes(data)
    if _version(data) == COMPACT_VERSION:
        return _compact_head(data, max_pixels).header
    return _legacy_header(data, max_pixels)


def _version(data: bytes) -> int:
    if data[:4] != MAGIC:
        raise FormatError("not an .aec file (bad magic bytes)")
    if len(data) < 5:
        raise FormatError(f"truncated .aec file: {len(data)} bytes, no format version")
    if data[4] not in (FORMAT_VERSION, CHUNKED_VERSION, COMPACT_VERSION):
        raise FormatError(f"unsupported format version {data[4]} (this decoder reads versions 1 to 3)")
    return data[4]


def _legacy_header(data: bytes, max_pixels: int) -> Header:
    """The header of a version 1 or 2 file, its CRC checked."""
    if len(data) < HEADER_SIZE:
        raise FormatError(f"truncated .aec file: {len(data)} bytes, the header alone needs {HEADER_SIZE}")
    _, _, channels, quality, flags, raw_name, *sizes = _HEADER_STRUCT.unpack_from(data)
    if flags & ~HALF_BASE:
        raise FormatError(f"invalid header: flags is {flags:#04x}, only bit 0 (half-resolution base) is defined")
    # A non-ASCII byte decodes to U+FFFD and an inner NUL stays, so validate() rejects both.
    name = raw_name.rstrip(b"\0").decode("ascii", "replace")
    header = Header(channels, quality, name, *sizes, half_base=bool(flags & HALF_BASE))
    header.validate(max_pixels)
    if len(data) < header.table_end + CRC_SIZE:
        raise FormatError(
            f"truncated .aec file: {len(data)} bytes, header and tile table need {header.table_end + CRC_SIZE}"
        )
    (stored_crc,) = _U32.unpack_from(data, header.table_end)
    if zlib.crc32(memoryview(data)[: header.table_end]) != stored_crc:
        raise FormatError("header checksum mismatch (file corrupted)")
    return header


@dataclass(frozen=True)
class _CompactHead:
    """What a version 3 file says before its streams: the header, the tile and chunk tables, where streams start."""

    header: Header
    stream_lengths: np.ndarray  # bytes, int64
    tile_crcs: tuple[int, ...]
    chunk_table: tuple[tuple[bytes, int], ...]  # (tag, payload length)
    streams_start: int


def _compact_head(data: bytes, max_pixels: int) -> _CompactHead:
    """Parse a version 3 file up to its streams, each field checked before it sizes anything, then the CRC."""
    if len(data) < COMPACT_FIXED.size:
        raise FormatError(f"truncated .aec file: {len(data)} bytes, the header alone needs {COMPACT_FIXED.size}")
    _, _, flags, quality, model_hash = COMPACT_FIXED.unpack_from(data)
    if flags & ~(HALF_BASE | GRAYSCALE):
        raise FormatError(f"invalid header: flags is {flags:#04x}, only bits 0 and 1 are defined")
    (width, height), at = _varints(data, COMPACT_FIXED.size, 2, "image size")
    if len(data) < at + 2:
        raise FormatError("truncated .aec file: the tile size is missing")
    channels, half_base = 1 if flags & GRAYSCALE else 3, bool(flags & HALF_BASE)
    tile_size, overlap = TILE_SIZE_MULTIPLE * data[at], 2 * data[at + 1]
    header = Header(channels, quality, None, model_hash, int(width), int(height), tile_size, overlap, 0, half_base)
    rows, cols = header.tile_grid if header.tile_step > 0 else (0, 0)  # validate() says why a grid is empty
    header = replace(header, tile_count=rows * cols)
    count = header.tile_count
    header.validate(max_pixels)
    at += 2
    if len(data) - at < (1 + CRC_SIZE) * count + 1 + CRC_SIZE:  # a byte of length and a CRC per tile at least
        raise FormatError(f"truncated .aec file: {len(data)} bytes, too few for the tile table of {count} tiles")
    words, at = _varints(data, at, count, "tile table")
    crcs = tuple(np.frombuffer(data, dtype="<u4", count=count, offset=at).tolist())
    at += CRC_SIZE * count
    chunk_count, at = data[at], at + 1
    if chunk_count > MAX_CHUNKS:
        raise FormatError(f"invalid file: {chunk_count} chunks, at most {MAX_CHUNKS} allowed")
    table, previous = [], b""
    for _ in range(chunk_count):
        tag = data[at : at + 4]
        (length,), at = _varints(data, at + 4, 1, "chunk table")
        _check_tag(tag, previous)
        _check_length(tag, int(length), header)
        table.append((tag, int(length)))
        previous = tag
    if len(data) < at + CRC_SIZE:
        raise FormatError("truncated .aec file: the header checksum is missing")
    if zlib.crc32(memoryview(data)[:at]) != _U32.unpack_from(data, at)[0]:
        raise FormatError("header checksum mismatch (file corrupted)")
    return _CompactHead(header, words * STREAM_WORD_SIZE, crcs, tuple(table), at + CRC_SIZE)


def _varints(data: bytes, at: int, count: int, what: str) -> tuple[np.ndarray, int]:
    """``count`` unsigned LEB128 values from offset ``at``, each minimal and at most MAX_VARINT_BYTES long, and the
    offset after them; FormatError naming ``what`` otherwise. Reads at most MAX_VARINT_BYTES per value."""
    if count == 0:
        return np.zeros(0, dtype=np.int64), at
    window = np.frombuffer(
        data, dtype=np.uint8, count=max(0, min(len(data) - at, count * MAX_VARINT_BYTES)), offset=min(at, len(data))
    )
    ends = np.flatnonzero(window < 0x80)[:count]
    if ends.size < count:
        raise FormatError(f"truncated .aec file: the {what} ends early")
    starts = np.concatenate(([0], ends[:-1] + 1))
    sizes = ends - starts + 1
    if (sizes > MAX_VARINT_BYTES).any() or ((sizes > 1) & (window[ends] == 0)).any():
        raise FormatError(f"invalid {what}: a value is over-long")
    used = window[: ends[-1] + 1]
    group = np.repeat(np.arange(count), sizes)
    values = np.zeros(count, dtype=np.int64)
    np.add.at(values, group, (used & 0x7F).astype(np.int64) << (7 * (np.arange(used.size) - starts[group])))
    return values, at + used.size


def unpack(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> AecFile:
    """Parse a whole `.aec` file: every field checked, streams and chunks filling it exactly."""
    data = bytes(data)
    if _version(data) == COMPACT_VERSION:
        return _unpack_compact(data, max_pixels)
    header = _legacy_header(data, max_pixels)
    table = np.frombuffer(data, dtype="<u4", count=2 * header.tile_count, offset=HEADER_SIZE)
    lengths = table[0::2].astype(np.int64)
    misaligned = np.flatnonzero(lengths % STREAM_WORD_SIZE)
    if misaligned.size:
        i = int(misaligned[0])
        raise FormatError(f"invalid tile table: stream length {lengths[i]} of tile {i} is not a multiple of 4")
    start = header.table_end + CRC_SIZE
    needed, available = int(lengths.sum()), len(data) - start
    if needed > available:
        raise FormatError(f"truncated .aec file: tile streams need {needed} bytes, only {available} remain")
    chunked = data[4] == CHUNKED_VERSION
    if needed < available and not chunked:
        raise FormatError(f"trailing bytes after the last tile stream ({available - needed} bytes)")
    streams = _slices(data, start, lengths)
    chunks = _read_chunks(data, start + needed, header) if chunked else ()
    crcs = tuple(table[1::2].tolist())
    return AecFile(header=header, tile_crcs=crcs, streams=streams, chunks=chunks)


def _unpack_compact(data: bytes, max_pixels: int) -> AecFile:
    head = _compact_head(data, max_pixels)
    payload_lengths = np.array([length for _, length in head.chunk_table], dtype=np.int64)
    payload_crc = CRC_SIZE if head.chunk_table else 0
    streams_size, payloads_size = int(head.stream_lengths.sum()), int(payload_lengths.sum())
    needed, available = streams_size + payloads_size + payload_crc, len(data) - head.streams_start
    if needed > available:
        raise FormatError(f"truncated .aec file: tile streams and chunks need {needed} bytes, only {available} remain")
    if needed < available:
        raise FormatError(f"trailing bytes after the last chunk ({available - needed} bytes)")
    payloads_start = head.streams_start + streams_size
    if head.chunk_table:
        stored = _U32.unpack_from(data, payloads_start + payloads_size)[0]
        if zlib.crc32(memoryview(data)[payloads_start : payloads_start + payloads_size]) != stored:
            raise FormatError("chunk checksum mismatch (file corrupted)")
    payloads = _slices(data, payloads_start, payload_lengths)
    chunks = tuple((tag, payload) for (tag, _), payload in zip(head.chunk_table, payloads, strict=True))
    for tag, payload in chunks:
        check_chunk(tag, payload, head.header)
    streams = _slices(data, head.streams_start, head.stream_lengths)
    return AecFile(header=head.header, tile_crcs=head.tile_crcs, streams=streams, chunks=chunks)


def _slices(data: bytes, start: int, lengths: np.ndarray) -> tuple[bytes, ...]:
    """Consecutive pieces of ``data`` of ``lengths`` bytes from ``start`` (which the caller has checked fit)."""
    ends = (start + np.cumsum(lengths)).tolist()
    return tuple(data[begin:end] for begin, end in zip([start, *ends][: len(ends)], ends, strict=True))


def _read_chunks(data: bytes, at: int, header: Header) -> tuple[tuple[bytes, bytes], ...]:
    """A version 2 file's chunk section from offset `at` to the end; each length is checked before slicing."""
    if len(data) - at < CRC_SIZE:
        raise FormatError("truncated .aec file: the chunk count is missing")
    (count,) = _U32.unpack_from(data, at)
    if not 1 <= count <= MAX_CHUNKS:
        raise FormatError(f"invalid file: {count} chunks, must be 1..{MAX_CHUNKS} in version 2")
    chunks: list[tuple[bytes, bytes]] = []
    previous, at = b"", at + CRC_SIZE
    for _ in range(count):
        if len(data) - at < LEGACY_CHUNK_OVERHEAD:
            raise FormatError(f"truncated chunk at offset {at}")
        tag, length = _CHUNK_HEAD.unpack_from(data, at)
        _check_tag(tag, previous)
        _check_length(tag, length, header)
        end = at + _CHUNK_HEAD.size + length
        if end + CRC_SIZE > len(data):
            raise FormatError(f"truncated chunk {tag.decode()!r}: {length} bytes announced")
        (stored_crc,) = _U32.unpack_from(data, end)
        if zlib.crc32(memoryview(data)[at:end]) != stored_crc:
            raise FormatError(f"chunk {tag.decode()!r} checksum mismatch (file corrupted)")
        payload = data[at + _CHUNK_HEAD.size : end]
        check_chunk(tag, payload, header)
        chunks.append((tag, payload))
        previous, at = tag, end + CRC_SIZE
    if at != len(data):
        raise FormatError(f"trailing bytes after the last chunk ({len(data) - at} bytes)")
    return tuple(chunks)


def index_crc(arrays: Iterable[np.ndarray]) -> int:
    """CRC32 of a tile's index arrays in coding order, each as little-endian uint16 in C order."""
    crc = 0
    for array in arrays:
        array = np.asarray(array)
        if not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"index arrays must have an integer dtype, got {array.dtype}")
        if array.size and (array.min() < 0 or array.max() > MAX_INDEX):
            raise ValueError(f"indices must lie in 0..{MAX_INDEX} to be checksummed as uint16")
        crc = zlib.crc32(np.ascontiguousarray(array, dtype="<u2").tobytes(), crc)
    return crc
