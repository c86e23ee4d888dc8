"""Fuzzing the decoder: every mutated .aec file must end in FormatError or a faithful decode, fast and small.

``python -m aecodec.bench.fuzz --count N --seed S [--model PATH]`` codes a few small images with a
tiny random model (64 px tiles, so files have several tiles), damages them with a seeded mutator and
runs :func:`~aecodec.bitstream.format.read_header` (what ``aecodec info`` reads) and
:meth:`Codec.decompress` on each mutant. Case ``K`` depends only on ``(S, K)``: ``--case K`` replays it.

Every sample is written twice: in version 3 (what this release writes) and in version 2 (what earlier releases
wrote, still read). Blind damage hits either; the structure-aware forgeries of fixed-width fields work on
version 2, and their result is also re-packed as version 3 where it parses (``compact_twin``); ``compact_field``
forges version 3's own fields (varints, the chunk table).

Mutants are either *damaged* (bytes changed blindly, so the header CRC still guards them) or *forged*
(header CRC recomputed, as an attacker would). A damaged file may only decode to the original image;
a forged one may also decode to a different image of the size and mode it declares, since it can be
a valid file. *Structure-aware* forgeries go further: boundary values of every field, the most expensive
grids a small image may declare, two valid files spliced, and (``valid_crcs``) every tile's index CRC
recomputed from what its stream decodes to with the public model, so every integrity check passes and
only the decoder's limits stand between the file and its cost. Anything else is a failure: another
exception, a decode that differs without a forgery, more CPU time than ``--time-limit`` or a peak RSS
growing by more than ``--rss-limit-mb``.
"""

from __future__ import annotations

import argparse
import random
import struct
import sys
import time
import traceback
import zlib
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from aecodec.bench.memory import peak_rss_mb, reset_peak_rss
from aecodec.bench.metrics import torch_threads
from aecodec.bitstream.format import (
    ALPHA,
    CHUNKED_VERSION,
    COMPACT_VERSION,
    CORRECTION_FIELD,
    CRC_SIZE,
    FILTER_TUNING,
    FORMAT_VERSION,
    HALF_BASE,
    HEADER_SIZE,
    LEGACY_CHUNK_OVERHEAD,
    MAGIC,
    MAX_CHUNKS,
    MAX_DIMENSION,
    MAX_METADATA_BYTES,
    MAX_TILE_COUNT,
    MAX_TILE_SIZE,
    MIN_TILE_SIZE,
    TILE_ENTRY_SIZE,
    WIENER_FILTER,
    XMP,
    compact_head_fields,
    pack,
    read_header,
    seal,
    unpack,
    varint,
)
from aecodec.codec.api import Codec
from aecodec.codec.correction_field import field_shape, pack_field
from aecodec.codec.filter_tuning import pack_tuning
from aecodec.codec.images import load_source
from aecodec.codec.index_coding import decode_indices, indices_crc
from aecodec.codec.options import DEFAULT_EFFORT, DEFAULT_TUNE
from aecodec.codec.tiling import tile_grid
from aecodec.codec.wiener_filter import WienerFilter, pack_filter, taps_per_channel
from aecodec.errors import AecError, FormatError
from aecodec.models.model_files import CodecModel, load_model_file
from aecodec.models.postfilter import FilterTuning
from aecodec.testing import random_residual_model

TILE_SIZE = 64
# (height, width, grayscale, quality, overlap) of the valid files that get mutated.
SAMPLE_SPECS = ((90, 130, False, 1, 8), (50, 70, True, 2, 0), (1, 1, False, 1, 8), (64, 100, False, 3, 12))
# Header fields as (offset, struct format), from the layout table of docs/FORMAT.md.
FIELDS = {
    "version": (4, "<B"),
    "channels": (5, "<B"),
    "quality": (6, "<B"),
    "flags": (7, "<B"),
    "model_name": (8, "16s"),
    "model_hash": (24, "8s"),
    "width": (32, "<I"),
    "height": (36, "<I"),
    "tile_size": (40, "<H"),
    "tile_overlap": (42, "<H"),
    "tile_count": (44, "<I"),
}
# (width, height, tile size, overlap) of the grids that make a decoder work most before a tile's CRC is
# checked: the largest tile, and the most tiles (4 px apart, MAX_TILE_COUNT of them).
EXTREME_GRIDS = ((MAX_TILE_SIZE, MAX_TILE_SIZE, MAX_TILE_SIZE, 0), (4096, 4096, 64, 14), (4096, 4096, 64, 30))
# Forgeries whose index CRCs get recomputed decode for real: their grid's decode work stays below this
# (a 256x256 image in the most overlapping legal grid), so a case costs well under a second.
MAX_VALID_CRC_WORK = 4 * 256 * 256
# Forged tile grids larger than this get their declared count only, not a matching table.
MAX_FORGED_TABLE = 1 << 17
OK_OUTCOMES = ("format-error", "identical", "valid-forgery")


@dataclass(frozen=True)
class Sample:
    """A valid file, in version 3 and in version 2, and the image both decode to."""

    data: bytes
    legacy: bytes
    pixels: np.ndarray

    @classmethod
    def of(cls, codec: Codec, data: bytes) -> Sample:
        file = unpack(data)
        named = replace(file, header=replace(file.header, model_name=codec.model.name))
        return cls(pack(file), pack(named, legacy=True), np.asarray(codec.decompress(data)))


@dataclass(frozen=True)
class Mutant:
    """A mutated file; ``forged`` if its header CRC was recomputed (so it may be a valid file)."""

    data: bytes
    forged: bool
    valid_crcs: bool = False  # recompute every index CRC from the decoded streams (see with_index_crcs)


@dataclass(frozen=True)
class Parts:
    """A valid file cut into header, tile table, streams and (version 2) chunk section, for forgeries."""

    header: bytes
    entries: list[tuple[int, int]]  # (stream length, index CRC) per tile
    streams: list[bytes]
    tail: bytes = b""  # the chunk section after the last stream, kept as is

    @classmethod
    def of(cls, data: bytes) -> Parts:
        file = unpack(data)
        end = read_header(data).table_end + CRC_SIZE + sum(len(s) for s in file.streams)
        entries = [(len(s), c) for s, c in zip(file.streams, file.tile_crcs)]
        return cls(data[:HEADER_SIZE], entries, list(file.streams), data[end:])

    def get(self, name: str) -> int:
        offset, fmt = FIELDS[name]
        return struct.unpack_from(fmt, self.header, offset)[0]

    def with_field(self, name: str, value: int | bytes) -> Parts:
        offset, fmt = FIELDS[name]
        header = bytearray(self.header)
        struct.pack_into(
            fmt, header, offset, value if isinstance(value, bytes) else value % 256 ** struct.calcsize(fmt)
        )
        return replace(self, header=bytes(header))

    def with_tiles(self, entries: list[tuple[int, int]], streams: list[bytes], count: int | None = None) -> Parts:
        """Other tiles; the declared tile count follows them unless ``count`` is given."""
        return replace(self, entries=entries, streams=streams).with_field(
            "tile_count", len(entries) if count is None else count
        )

    def forge(self) -> Mutant:
        """The bytes with a correct header CRC over whatever the parts say."""
        prefix = self.header + b"".join(struct.pack("<II", n % 2**32, crc) for n, crc in self.entries)
        return Mutant(prefix + struct.pack("<I", zlib.crc32(prefix)) + b"".join(self.streams) + self.tail, forged=True)


def _truncate(rng: random.Random, data: bytes) -> Mutant:
    """The file cut anywhere, often within its last word."""
    cut = rng.randrange(len(data)) if rng.random() < 0.7 else len(data) - rng.randint(1, 8)
    return Mutant(data[:cut], forged=False)


def _bitflip(rng: random.Random, data: bytes) -> Mutant:
    """1 to 8 flipped bits anywhere, or (half the time) only in the tile streams, past the header CRC."""
    out = bytearray(data)
    streams = 8 * _streams_start(data)
    first = streams if rng.random() < 0.5 and streams < 8 * len(data) else 0
    for bit in rng.sample(range(first, 8 * len(data)), rng.randint(1, 8)):
        out[bit // 8] ^= 1 << (bit % 8)
    return Mutant(bytes(out), forged=False)


def _streams_start(data: bytes) -> int:
    """Offset of a valid file's first tile stream."""
    if data[4] == COMPACT_VERSION:
        return sum(len(value) for _, value in compact_head_fields(unpack(data))) + CRC_SIZE
    return read_header(data).table_end + CRC_SIZE


def _overwrite(rng: random.Random, data: bytes) -> Mutant:
    """1 to 16 bytes replaced by random bytes, zeros or 0xff."""
    out = bytearray(data)
    offset, size = rng.randrange(len(data)), rng.randint(1, 16)
    fill = rng.choice([rng.randbytes(size), b"\0" * size, b"\xff" * size])
    out[offset : offset + size] = fill[: len(data) - offset]
    return Mutant(bytes(out), forged=False)


def _stream_length(rng: random.Random, data: bytes) -> Mutant:
    """A tile's length field pointing past the end, huge, misaligned, or stealing from its neighbour."""
    parts = Parts.of(data)
    entries = list(parts.entries)
    i = rng.randrange(len(entries))
    length, crc = entries[i]
    rest = sum(n for n, _ in entries) - length
    choice = rng.randrange(4)
    if choice == 0:
        length = len(data) + 4 * rng.randint(0, 4)
    elif choice == 1:
        length = rng.choice([2**32 - 4, 2**32 - 1, 2**31, 2**32 - 4 - rest])
    elif choice == 2:
        length += rng.choice([-3, -2, -1, 1, 2, 3])
    elif i + 1 < len(entries):  # move whole words to the next tile: the total still fits the file
        moved = 4 * rng.randint(-(length // 4), entries[i + 1][0] // 4)
        entries[i + 1] = (entries[i + 1][0] - moved, entries[i + 1][1])
        length += moved
    entries[i] = (length, crc)
    return replace(parts, entries=entries).forge()


def _grid_tiles(parts: Parts, count: int) -> Parts:
    """The original tiles first, then empty streams, up to ``count`` tiles (a plausible forged table)."""
    extra = max(0, count - len(parts.entries))
    return parts.with_tiles(parts.entries[:count] + [(0, 0)] * extra, parts.streams[:count] + [b""] * extra)


def _declared_grid(parts: Parts) -> int:
    """Tiles in the grid the header declares (the current count if its step is not positive)."""
    step = parts.get("tile_size") - 2 * parts.get("tile_overlap")
    if step <= 0:
        return len(parts.entries)
    halve = parts.get("flags") & HALF_BASE  # the grid covers the half-resolution base
    height, width = (-(-parts.get(side) // 2) if halve else parts.get(side) for side in ("height", "width"))
    return -(-height // step) * -(-width // step)


def _matched_grid(rng: random.Random, parts: Parts) -> Parts:
    """Usually a tile table matching the declared grid (to get past the count check), else as is."""
    count = _declared_grid(parts)
    if rng.random() < 0.8 and count <= MAX_FORGED_TABLE:
        return _grid_tiles(parts, count)
    return parts


def _huge_size(rng: random.Random, data: bytes) -> Mutant:
    """Huge declared width, height or tile count."""
    parts = Parts.of(data)
    if rng.random() < 0.3:
        count = rng.choice([MAX_TILE_COUNT, MAX_TILE_COUNT + 1, 2**31, 2**32 - 1, rng.randrange(2**32)])
        return parts.with_field("tile_count", count).forge()
    for name in rng.sample(["width", "height"], rng.randint(1, 2)):
        value = rng.choice([2**20, 2**20 + 1, 11585, 11586, 2**27, 2**31, 2**32 - 1, rng.randrange(2**32)])
        parts = parts.with_field(name, value)
    return _matched_grid(rng, parts).forge()


def extreme_grid(data: bytes, grid: tuple[int, int, int, int]) -> Mutant:
    """A header declaring ``grid`` (width, height, tile size, overlap) with a matching table of empty tiles."""
    parts = Parts.of(data)
    for name, value in zip(("width", "height", "tile_size", "tile_overlap"), grid):
        parts = parts.with_field(name, value)
    return _grid_tiles(parts, _declared_grid(parts)).forge()


def _extreme_grid(rng: random.Random, data: bytes) -> Mutant:
    """One of EXTREME_GRIDS."""
    return extreme_grid(data, rng.choice(EXTREME_GRIDS))


def _zero_size(rng: random.Random, data: bytes) -> Mutant:
    """Zero width, height, tile size, overlap or tile count, all streams empty, or an empty file."""
    parts = Parts.of(data)
    choice = rng.randrange(6)
    if choice == 5:
        return Mutant(b"", forged=False)
    if choice == 4:
        return parts.with_tiles([(0, crc) for _, crc in parts.entries], [b""] * len(parts.entries)).forge()
    if choice == 3:
        return parts.with_tiles([], []).forge()
    return _matched_grid(rng, parts.with_field(("width", "height", "tile_size", "tile_overlap")[choice], 0)).forge()


def _tile_geometry(rng: random.Random, data: bytes) -> Mutant:
    """Extreme tile sizes and overlaps, usually with a tile table matching the new grid."""
    parts = Parts.of(data)
    size = rng.choice(
        [
            0,
            16,
            48,
            62,
            64,
            80,
            128,
            MAX_TILE_SIZE - 16,
            MAX_TILE_SIZE,
            MAX_TILE_SIZE + 16,
            4096,
            2**16 - 1,
            16 * rng.randint(4, 128),
        ]
    )
    overlap = rng.choice([0, 1, 7, 8, 30, size // 2 - 2, size // 2 - 1, size // 2, 2**16 - 1, 2 * rng.randint(0, 64)])
    if rng.random() < 0.5:
        parts = parts.with_field("tile_size", size)
    if rng.random() < 0.7:
        parts = parts.with_field("tile_overlap", overlap)
    return _matched_grid(rng, parts).forge()


def _chunks(rng: random.Random, data: bytes) -> Mutant:
    """Tiles swapped, duplicated, removed, reversed or appended, with or without their table entries."""
    parts = Parts.of(data)
    entries, streams = list(parts.entries), list(parts.streams)
    i, j = rng.randrange(len(entries)), rng.randrange(len(entries))
    choice = rng.randrange(5)
    if choice == 0:
        streams[i], streams[j] = streams[j], streams[i]
        if rng.random() < 0.5:
            entries[i], entries[j] = entries[j], entries[i]
        else:  # keep each slot's CRC, fix up the lengths only
            entries[i], entries[j] = (entries[j][0], entries[i][1]), (entries[i][0], entries[j][1])
    elif choice == 1:
        entries.insert(i, entries[i])
        streams.insert(i, streams[i])
    elif choice == 2:
        del entries[i], streams[i]
    elif choice == 3:
        entries.reverse()
        streams.reverse()
    else:
        streams.append(streams[i])
        if rng.random() < 0.5:
            entries.append(entries[i])
    keep_count = rng.random() < 0.3
    return parts.with_tiles(entries, streams, len(parts.entries) if keep_count else None).forge()


def _chunk_list(tail: bytes) -> list[tuple[bytes, bytes]]:
    """(tag, payload) pairs of a well-formed chunk section (docs/FORMAT.md, Chunks)."""
    (count,), chunks, at = struct.unpack_from("<I", tail), [], 4
    for _ in range(count):
        tag, length = struct.unpack_from("<4sI", tail, at)
        chunks.append((tag, tail[at + 8 : at + 8 + length]))
        at += LEGACY_CHUNK_OVERHEAD + length
    return chunks


def _chunk_bytes(tag: bytes, payload: bytes, length: int | None = None, crc: bool = True) -> bytes:
    """One chunk: tag, declared ``length`` (default: the payload's), payload, a CRC (broken if not ``crc``)."""
    head = struct.pack("<4sI", tag, len(payload) if length is None else length % 2**32)
    check = zlib.crc32(payload, zlib.crc32(head)) ^ (0 if crc else 1)
    return head + payload + struct.pack("<I", check)


def _chunk_section(rng: random.Random, data: bytes) -> Mutant:
    """A forged version-2 chunk section (a file without one gets an XMP chunk first): tags unknown, critical,
    malformed, repeated or out of order; lengths off by one, past the end or over their limit; payloads
    changed under a valid or a broken CRC; the count wrong; chunks dropped or trailing bytes appended."""
    parts = Parts.of(data)
    chunks = _chunk_list(parts.tail) if parts.tail else [(XMP, b"<x:xmpmeta/>")]
    parts = parts.with_field("version", CHUNKED_VERSION)
    i = rng.randrange(len(chunks))
    tag, payload = chunks[i]
    count, length, crc, trailing = len(chunks), None, True, b""
    choice = rng.randrange(7)
    if choice == 0:  # tag forgeries
        tag = rng.choice([b"ABCD", b"abcd", b"AL\0H", b"1xyz", b"alph", ALPHA, b"zzzz", rng.randbytes(4)])
    elif choice == 1:  # length forgeries: the rest of the section shifts
        length = rng.choice([0, len(payload) - 1, len(payload) + 1, len(data), MAX_METADATA_BYTES + 1, 2**32 - 1])
    elif choice == 2:  # payload changed, its CRC recomputed (an attacker's forgery) or left stale
        changed = bytearray(payload or b"\0")
        changed[rng.randrange(len(changed))] ^= 1 << rng.randrange(8)
        payload, crc = bytes(changed), rng.random() < 0.7
    elif choice == 3:
        count = rng.choice([0, count - 1, count + 1, MAX_CHUNKS + 1, 2**32 - 1])
    elif choice == 4:  # chunks reordered, repeated or dropped, every CRC valid
        chunks = rng.choice([chunks[::-1], chunks + [chunks[i]], chunks[:i] + chunks[i + 1 :]])
        count = len(chunks)
    elif choice == 5:
        trailing = rng.choice([b"\0", rng.randbytes(rng.randint(1, 16)), _chunk_bytes(b"zzzz", b"")])
    else:  # the section dropped (version 2 without chunks) or kept under version 1
        if rng.random() < 0.5:
            return replace(parts, tail=b"").forge()
        parts, count = parts.with_field("version", 1), len(chunks)
    body = [_chunk_bytes(t, p) for t, p in chunks]
    if choice in (0, 1, 2):
        body[i] = _chunk_bytes(tag, payload, length, crc)
    return replace(parts, tail=struct.pack("<I", count % 2**32) + b"".join(body) + trailing).forge()


def _header_field(rng: random.Random, data: bytes) -> Mutant:
    """Another quality, channel count, version, flags, model name or hash, with a fixed header CRC."""
    parts = Parts.of(data)
    name = rng.choice(["quality", "channels", "version", "flags", "model_name", "model_hash"])
    values: dict[str, list] = {
        "quality": [0, 1, 2, 3, 4, 255, rng.randrange(256)],
        "channels": [0, 1, 2, 3, 4, 255],
        "version": [0, 2, 255],
        "flags": [1, 128, 255],
        "model_name": [b"", b"Random", b"rand\0m", b"random2", b"\xff" * 16, b"a" * 16, rng.randbytes(16)],
        "model_hash": [bytes(8), rng.randbytes(8)],
    }
    return parts.with_field(name, rng.choice(values[name])).forge()


def _random_bytes(rng: random.Random, data: bytes) -> Mutant:
    """Random bytes, bare, after the magic, or after a valid header."""
    prefix = rng.choice([b"", MAGIC, data[:HEADER_SIZE], data[: HEADER_SIZE + TILE_ENTRY_SIZE]])
    return Mutant(prefix + rng.randbytes(rng.randint(0, 600)), forged=False)


def _boundaries(rng: random.Random, data: bytes) -> Mutant:
    """One field at, just inside or just outside a limit of docs/FORMAT.md, the tile table matching the grid."""
    parts = Parts.of(data)
    tile = parts.get("tile_size")
    values = {
        "width": [0, 1, 2, MAX_DIMENSION, MAX_DIMENSION + 1],
        "height": [0, 1, 2, MAX_DIMENSION, MAX_DIMENSION + 1],
        "tile_size": [MIN_TILE_SIZE - 16, MIN_TILE_SIZE - 1, MIN_TILE_SIZE, MAX_TILE_SIZE, MAX_TILE_SIZE + 16],
        "tile_overlap": [tile // 4 - 2, tile // 4 - 1, tile // 4, tile // 2 - 2, tile // 2],
        "quality": [0, 1, 3, 4, 255],
        "channels": [0, 1, 2, 3, 4],
        "version": [0, 1, 2],
        "flags": [0, 1],
    }
    name = rng.choice(sorted(values))
    return _matched_grid(rng, parts.with_field(name, rng.choice(values[name]))).forge()


def _expensive_grid(rng: random.Random, data: bytes) -> Mutant:
    """A small image in the grid a decoder pays most for (smallest tiles, largest overlap, or one huge tile),
    its streams empty and its index CRCs valid, without chunks (version 1): a legal file that costs all the decode
    work its size allows."""
    parts = replace(Parts.of(data), tail=b"").with_field("version", FORMAT_VERSION)
    tile, overlap = rng.choice(
        [(MIN_TILE_SIZE, MIN_TILE_SIZE // 4 - 2), (80, 18), (MAX_TILE_SIZE, MAX_TILE_SIZE // 4 - 2)]
    )
    for name, value in (
        ("width", rng.randint(1, 256)),
        ("height", rng.randint(1, 256)),
        ("tile_size", tile),
        ("tile_overlap", overlap),
        ("quality", rng.randint(1, 3)),
        ("flags", 0),  # qualities 1-3 code no residual, so no half-resolution base
    ):
        parts = parts.with_field(name, value)
    grid = _grid_tiles(parts, _declared_grid(parts))
    return Mutant(grid.with_tiles([(0, 0)] * len(grid.entries), [b""] * len(grid.entries)).forge().data, True, True)


def _splice(rng: random.Random, data: bytes, other: bytes) -> Mutant:
    """Two valid files spliced: one's header with the other's tiles, or a prefix of one's tiles and the rest of
    the other's, the header CRC fixed; half the time the index CRCs are recomputed too."""
    first, second = Parts.of(data), Parts.of(other)
    if rng.random() < 0.5:
        spliced = first.with_tiles(second.entries, second.streams)
    else:
        cut = rng.randint(0, len(first.entries))
        spliced = first.with_tiles(
            first.entries[:cut] + second.entries[cut:], first.streams[:cut] + second.streams[cut:]
        )
    return Mutant(_matched_grid(rng, spliced).forge().data, forged=True, valid_crcs=rng.random() < 0.5)


def _valid_crcs(rng: random.Random, data: bytes) -> Mutant:
    """A structural forgery (tiles moved, lengths shifted, another geometry) whose index CRCs are then made valid."""
    mutator = rng.choice([_chunks, _chunk_section, _stream_length, _tile_geometry, _boundaries, _zero_size])
    return Mutant(mutator(rng, data).data, forged=True, valid_crcs=True)


def with_index_crcs(codec: Codec, mutant: Mutant, max_work: int = MAX_VALID_CRC_WORK) -> Mutant:
    """``mutant`` with every tile's index CRC set to what its stream decodes to under ``codec``'s model.

    This is what an attacker with the public model can do; files the codec refuses before decoding any tile
    (or whose decode work is over ``max_work``) are returned unchanged.
    """
    try:
        file = unpack(mutant.data)
        header = file.header
        if header.decode_work > max_work or header.model_hash != codec.model.digest:
            return mutant
        stages = codec.model.network.stages_for_quality(codec.model.quality_plan(header.quality, header.half_base)[0])
        tiles = tile_grid(*header.base_size, header.tile_size, header.tile_overlap)
        crcs = [
            indices_crc(*decode_indices(codec.model.prior, stream, codec.bottom_shape(tile), stages))
            for tile, stream in zip(tiles, file.streams)
        ]
    except (AecError, ValueError):
        return mutant
    return Mutant(pack(replace(file, tile_crcs=tuple(crcs)), legacy=mutant.data[4] != COMPACT_VERSION), forged=True)


def _compact_twin(rng: random.Random, data: bytes) -> Mutant:
    """A structural forgery of version 2 (tiles moved, another geometry, a costly grid, spliced files) re-packed
    as version 3 where it parses: the same hostile content in the layout this release writes."""
    mutator = rng.choice([_chunks, _stream_length, _tile_geometry, _boundaries, _zero_size, _expensive_grid])
    mutant = mutator(rng, data)
    try:
        return replace(mutant, data=pack(unpack(mutant.data)))
    except FormatError:
        return mutant


def _compact_field(rng: random.Random, data: bytes) -> Mutant:
    """One field of a version 3 file forged behind valid CRCs: a varint huge, over-long or not minimal, a byte at
    a limit or random, a field dropped, repeated or followed by junk, a chunk's tag or length wrong; or the
    payload CRC broken."""
    file = unpack(data)
    names, fields = map(list, zip(*compact_head_fields(file), strict=True))
    payloads = [payload for _, payload in file.chunks]
    i = rng.randrange(len(fields))
    value, choice = fields[i], rng.randrange(4)
    if choice == 0 and names[i] in ("width", "height", "stream_words[i]"):
        fields[i] = rng.choice(
            [
                varint(rng.choice([0, 1, MAX_DIMENSION, MAX_DIMENSION + 1, 2**30, 2**35 - 1, rng.randrange(2**20)])),
                value[:-1] + bytes([value[-1] | 0x80, 0]),  # the same value, over-long
                b"\x80" * 5 + b"\x01",
            ]
        )
    elif choice == 0 and names[i] == "chunk_table":
        tag, length = value[:4], len(payloads[i - names.index("chunk_table")])
        fields[i] = rng.choice([b"ABCD", b"abcd", b"1xyz", XMP, rng.randbytes(4), tag]) + varint(
            rng.choice([0, length - 1 if length else 0, length + 1, len(data), MAX_METADATA_BYTES + 1, 2**35 - 1])
        )
    elif choice == 0 or choice == 1:
        fields[i] = rng.choice([bytes([rng.choice([0, 1, 2, 3, 4, 16, 127, 128, 255])]), rng.randbytes(len(value))])
    elif choice == 2:
        fields[i] = rng.choice([b"", value * 2, value + rng.randbytes(rng.randint(1, 4))])
    forged = seal(b"".join(fields), file.streams, payloads)
    if choice == 3 and payloads:
        forged = forged[:-1] + bytes([forged[-1] ^ 1])
    return Mutant(forged, forged=True)


# Mutation kinds: (mutator, relative frequency). Extreme grids are slow to build and to reject, and forgeries
# with valid index CRCs decode every tile (twice: to forge, to judge): rarer.
MUTATORS: dict[str, tuple[Callable[..., Mutant], float]] = {
    "truncate": (_truncate, 1),
    "bitflip": (_bitflip, 1),
    "overwrite": (_overwrite, 1),
    "stream_length": (_stream_length, 1),
    "huge_size": (_huge_size, 1),
    "zero_size": (_zero_size, 1),
    "tile_geometry": (_tile_geometry, 1),
    "chunks": (_chunks, 1),
    "chunk_section": (_chunk_section, 1),
    "header_field": (_header_field, 1),
    "random_bytes": (_random_bytes, 1),
    "extreme_grid": (_extreme_grid, 0.01),
    "boundaries": (_boundaries, 1),
    "expensive_grid": (_expensive_grid, 0.02),
    "splice": (_splice, 0.5),
    "valid_crcs": (_valid_crcs, 0.2),
    "compact_field": (_compact_field, 2),
    "compact_twin": (_compact_twin, 1),
}
# Kinds that damage bytes blindly: on either version. The others forge version 2's fields (compact_field forges
# version 3's).
BLIND = {"truncate", "bitflip", "overwrite", "random_bytes"}
COMPACT = {"compact_field"}
# Mutators that take a second valid file (drawn from the samples) after the first.
SPLICERS = {"splice"}


@dataclass(frozen=True)
class CaseResult:
    """What one case did: its decode and header outcomes, CPU and wall seconds, peak RSS growth."""

    case: int
    kind: str
    outcome: str
    header: str
    cpu_s: float
    wall_s: float
    rss_growth_mb: float
    detail: str = ""


@dataclass
class Report:
    """All cases of a run."""

    seed: int
    kinds: tuple[str, ...]
    results: list[CaseResult] = field(default_factory=list)

    @property
    def failures(self) -> list[CaseResult]:
        """The cases to replay."""
        return [r for r in self.results if r.outcome not in OK_OUTCOMES]


def make_samples(codec: Codec) -> list[Sample]:
    """The valid files to mutate: smooth noisy images, RGB and grayscale, 1 to 6 tiles, one with chunks,
    for a model with a residual layer two with a residual chunk, with a post-filter one with a filter chunk
    (effort 5), and one with a correction field."""
    rng = np.random.default_rng(0)
    samples = []
    for height, width, gray, quality, overlap in SAMPLE_SPECS:
        ramp = np.add.outer(np.arange(height), np.arange(width))[:, :, None] * np.array([1, 2, 3])
        pixels = ((ramp + rng.integers(0, 40, (height, width, 3))) % 256).astype(np.uint8)
        pixels = pixels[:, :, 0] if gray else pixels
        data = Codec(codec.model, TILE_SIZE, overlap).compress(pixels, quality)
        samples.append(Sample.of(codec, data))
    # A version-2 file: an alpha plane and XMP metadata in its chunk section.
    ramp = np.add.outer(np.arange(40), np.arange(70)).astype(np.uint8)
    image = Image.fromarray(np.stack([ramp, ramp[::-1], ramp * 3, 255 - ramp], axis=2), "RGBA")
    image.info["xmp"] = b"<x:xmpmeta xmlns:x='adobe:ns:meta/'/>"
    data = Codec(codec.model, TILE_SIZE, 8).compress(image, 2)
    samples.append(Sample.of(codec, data))
    if codec.model.residual is not None:  # residual chunks on a half- and on a full-resolution base (the
        # default effort's and the one earlier releases wrote), at the lowest and the highest residual quality
        writer, source = Codec(codec.model, TILE_SIZE, 8), load_source(pixels, codec.max_pixels, False)
        for quality, half in ((codec.model.residual.base_only + 1, True), (codec.model.num_qualities, False)):
            data = pack(writer._file(source, quality, DEFAULT_TUNE, None, DEFAULT_EFFORT, half))
            samples.append(Sample.of(codec, data))
    if codec.model.postfilter is not None:
        data = Codec(codec.model, TILE_SIZE, 8).compress(pixels, 1, effort=max(codec.efforts))
        samples.append(Sample.of(codec, data))
        # A version-2 filter chunk, whichever version the encoder chose: every later bias a few steps off.
        postfilter, file = codec.model.postfilter, unpack(data)
        layers = tuple(torch.linspace(-0.1, 0.1, conv.out_channels) for conv in postfilter.later_convolutions())
        tuning = FilterTuning(torch.zeros(postfilter.quality_bias.shape[1]), 1.0, layers)
        data = pack(file.with_chunk(FILTER_TUNING, pack_tuning(tuning, 7)))
        samples.append(Sample.of(codec, data))
    # A correction field on the first (colour) sample, whichever the encoder chose: -3..3 quarter levels per cell.
    file = unpack(samples[0].data)
    shape = field_shape(file.header.width, file.header.height, 5)
    data = pack(file.with_chunk(CORRECTION_FIELD, pack_field((np.arange(np.prod(shape)) % 7 - 3).reshape(shape), 1, 5)))
    samples.append(Sample.of(codec, data))
    # And a Wiener filter of the largest shape beside it, both guides, four filters: taps of -40..40 in 1/256.
    taps = (np.arange(4 * 3 * taps_per_channel(5, 3, 3)) * 7 % 81 - 40).reshape(4, 3, -1)
    wiener = WienerFilter(5, 3, 8, taps, guides=3, bins=(0, 1, 2, 3))
    data = pack(unpack(data).with_chunk(WIENER_FILTER, pack_filter(wiener)))
    samples.append(Sample.of(codec, data))
    return samples


def _decode_outcome(codec: Codec, sample: Sample, mutant: Mutant) -> tuple[str, str]:
    try:
        image = codec.decompress(mutant.data)
    except FormatError:
        return "format-error", ""
    pixels = np.asarray(image)
    if pixels.shape == sample.pixels.shape and np.array_equal(pixels, sample.pixels):
        return "identical", ""
    header = read_header(mutant.data)
    bands = len(image.getbands()) - ("A" in image.getbands())  # an alpha chunk adds a band
    if mutant.forged and image.size == (header.width, header.height) and bands == header.channels:
        return "valid-forgery", ""
    return "FAIL-undetected", f"decoded a {image.size} {image.mode} image that differs from the original"


def _header_outcome(data: bytes) -> str:
    try:
        read_header(data)
    except FormatError:
        return "format-error"
    return "ok"


def mutate(
    samples: list[Sample], seed: int, case: int, kinds: Collection[str] = tuple(MUTATORS), codec: Codec | None = None
) -> tuple[str, Sample, Mutant]:
    """Case ``case`` of run ``seed`` among ``kinds``: its mutation kind, source sample and mutant (deterministic).

    With ``codec``, mutants that ask for valid index CRCs get them (:func:`with_index_crcs`).
    """
    rng = random.Random(f"{seed}:{case}")
    kinds = sorted(kinds)
    sample, kind = rng.choice(samples), rng.choices(kinds, [MUTATORS[k][1] for k in kinds])[0]
    compact = kind in COMPACT or (kind in BLIND and rng.random() < 0.75)
    others = [rng.choice(samples).legacy] if kind in SPLICERS else []
    mutant = MUTATORS[kind][0](rng, sample.data if compact else sample.legacy, *others)
    return kind, sample, with_index_crcs(codec, mutant) if codec and mutant.valid_crcs else mutant


def judge(
    codec: Codec, sample: Sample, mutant: Mutant, time_limit: float = 2.0, rss_limit_mb: float = 256.0
) -> tuple[str, str, float, float, float, str]:
    """Read the header and decode on one torch thread (so CPU time is the decoder's own work).

    Returns the decode outcome, the header outcome, CPU and wall seconds, peak RSS growth and a detail.
    """
    reset_peak_rss()
    rss, cpu, wall = peak_rss_mb(), time.process_time(), time.perf_counter()
    try:
        with torch_threads(1):
            header = _header_outcome(mutant.data)
            outcome, detail = _decode_outcome(codec, sample, mutant)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        header, outcome = "?", "FAIL-crash"
        detail = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    cpu, wall, growth = time.process_time() - cpu, time.perf_counter() - wall, peak_rss_mb() - rss
    if outcome in OK_OUTCOMES and cpu > time_limit:
        outcome, detail = "FAIL-slow", f"{cpu:.2f} s CPU > {time_limit} s"
    if outcome in OK_OUTCOMES and growth > rss_limit_mb:
        outcome, detail = "FAIL-memory", f"peak RSS grew by {growth:.0f} MiB > {rss_limit_mb} MiB"
    return outcome, header, cpu, wall, growth, detail


def fuzz(
    codec: Codec,
    samples: list[Sample],
    seed: int,
    cases: range,
    time_limit: float = 2.0,
    rss_limit_mb: float = 256.0,
    kinds: Collection[str] = tuple(MUTATORS),
    progress: Callable[[int], None] | None = None,
) -> Report:
    """Run ``cases`` of run ``seed`` against ``samples``, drawing mutations from ``kinds``."""
    report = Report(seed, tuple(kinds))
    for case in cases:
        kind, sample, mutant = mutate(samples, seed, case, kinds, codec)
        report.results.append(CaseResult(case, kind, *judge(codec, sample, mutant, time_limit, rss_limit_mb)))
        if progress:
            progress(case)
    return report


def summary(report: Report) -> str:
    """Counts per mutation kind and outcome, header outcomes, the slowest case and the failures."""
    outcomes = [*OK_OUTCOMES, *sorted({r.outcome for r in report.failures})]
    columns = ["cases", *outcomes, "header ok", "header error"]
    width = max(len(c) for c in columns) + 2
    lines = ["kind".ljust(16) + "".join(c.rjust(width) for c in columns)]
    for kind in [*sorted({r.kind for r in report.results}), "total"]:
        rows = [r for r in report.results if kind in ("total", r.kind)]
        counts = Counter(r.outcome for r in rows)
        headers = Counter(r.header for r in rows)
        values = [len(rows), *(counts[o] for o in outcomes), headers["ok"], headers["format-error"]]
        lines.append(kind.ljust(16) + "".join(str(v).rjust(width) for v in values))
    slowest = max(report.results, key=lambda r: r.cpu_s)
    slowest_wall = max(report.results, key=lambda r: r.wall_s)
    lines.append(
        f"slowest case: {slowest.case} ({slowest.kind}) {slowest.cpu_s:.3f} s CPU; "
        f"slowest wall time: case {slowest_wall.case} ({slowest_wall.kind}) {slowest_wall.wall_s:.3f} s"
    )
    lines.append(f"largest peak-RSS growth in one case: {max(r.rss_growth_mb for r in report.results):.1f} MiB")
    kinds = "" if set(report.kinds) == set(MUTATORS) else f" --kinds {','.join(report.kinds)}"
    for failure in report.failures:
        lines.append(
            f"FAILURE case {failure.case} ({failure.kind}): {failure.outcome}: {failure.detail}; "
            f"replay: python -m aecodec.bench.fuzz --seed {report.seed} --case {failure.case}{kinds}"
        )
    return "\n".join(lines)


def replay(codec: Codec, samples: list[Sample], seed: int, case: int, kinds: Collection[str]) -> int:
    """Run one case verbosely, letting any exception show its traceback."""
    kind, sample, mutant = mutate(samples, seed, case, kinds, codec)
    print(
        f"case {case} of seed {seed}: {kind}, {'forged' if mutant.forged else 'damaged'}, {len(mutant.data)} bytes "
        f"(from a {len(sample.data)}-byte file)"
    )
    for name, call in (
        ("read_header", lambda: read_header(mutant.data)),
        ("decompress", lambda: codec.decompress(mutant.data)),
    ):
        try:
            print(f"{name}: {call()}")
        except FormatError as exc:
            print(f"{name}: FormatError: {exc}")
        except BaseException:
            print(f"{name}: {traceback.format_exc()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aecodec.bench.fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="number of cases (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", type=int, default=0, help="first case number (to split a run)")
    parser.add_argument("--case", type=int, help="replay this one case verbosely")
    parser.add_argument("--kinds", default=",".join(MUTATORS), help="mutation kinds to draw from (default: all)")
    parser.add_argument("--model", type=Path, help="model file (default: a tiny random model)")
    parser.add_argument("--time-limit", type=float, default=2.0, help="CPU seconds per case (default %(default)s)")
    parser.add_argument(
        "--rss-limit-mb", type=float, default=256.0, help="peak RSS growth per case (default %(default)s)"
    )
    args = parser.parse_args(argv)
    kinds = args.kinds.split(",")
    if not set(kinds) <= set(MUTATORS):
        parser.error(f"unknown kinds {sorted(set(kinds) - set(MUTATORS))}; choose from {', '.join(MUTATORS)}")
    model: CodecModel = load_model_file(args.model) if args.model else random_residual_model()
    codec = Codec(model, TILE_SIZE, overlap=8)
    samples = make_samples(codec)
    if args.case is not None:
        return replay(codec, samples, args.seed, args.case, kinds)
    start = time.perf_counter()

    def progress(case: int) -> None:
        done = case - args.start + 1
        if done % 1000 == 0:
            print(f"{done}/{args.count} cases, {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)

    report = fuzz(
        codec,
        samples,
        args.seed,
        range(args.start, args.start + args.count),
        args.time_limit,
        args.rss_limit_mb,
        kinds,
        progress,
    )
    elapsed = time.perf_counter() - start
    print(
        f"seed {args.seed}, cases {args.start}..{args.start + args.count - 1}: {elapsed:.0f} s wall, "
        f"{args.count / elapsed:.1f} cases/s"
    )
    print(summary(report))
    return 1 if report.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
