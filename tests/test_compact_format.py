"""Tests of the version 3 .aec container, what this release writes: agreement with docs/FORMAT.md, the same content
as versions 1 and 2 in fewer bytes, and hostile input (forged varints, grids, chunk tables)."""

from __future__ import annotations

import dataclasses
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_format import CHUNKS, legacy_pack, make_file, worked_example

from aecodec.bitstream.format import (
    COMPACT_VERSION,
    MAX_CHUNKS,
    XMP,
    AecFile,
    compact_head_fields,
    pack,
    read_header,
    seal,
    unpack,
    varint,
)
from aecodec.errors import FormatError

FORMAT_MD = Path(__file__).resolve().parent.parent / "docs" / "FORMAT.md"


def anonymous(file: AecFile) -> AecFile:
    """``file`` as version 3 reads it back: its header names no model."""
    return dataclasses.replace(file, header=dataclasses.replace(file.header, model_name=None))


def chunked(chunks: tuple = CHUNKS) -> AecFile:
    return dataclasses.replace(make_file(), chunks=chunks)


def forge(file: AecFile, **fields: bytes | list[bytes]) -> bytes:
    """``file`` in version 3 with the named head fields replaced (a list replaces every field of that name, with as
    many as it holds), both CRCs recomputed: what an attacker can write."""
    head, done = [], set()
    for name, value in compact_head_fields(file):
        key = name.removesuffix("[i]")
        if key not in fields:
            head.append(value)
        elif key not in done:
            head += [fields[key]] if isinstance(fields[key], bytes) else fields[key]
            done.add(key)
    return seal(b"".join(head), file.streams, [payload for _, payload in file.chunks])


def test_round_trip_and_the_same_content_as_version_2() -> None:
    for original in (make_file(), chunked()):
        data = pack(original)
        assert data[4] == COMPACT_VERSION
        assert unpack(data) == anonymous(original) == anonymous(unpack(legacy_pack(original)))
        assert pack(unpack(data)) == data
        assert len(data) < len(legacy_pack(original))
    assert (len(legacy_pack(worked_example())), len(pack(worked_example()))) == (64, 33)


def test_read_header_needs_no_stream() -> None:
    data = pack(chunked())
    head = b"".join(value for _, value in compact_head_fields(chunked()))
    assert read_header(data[: len(head) + 4]) == anonymous(chunked()).header
    with pytest.raises(FormatError, match="truncated"):
        unpack(data[: len(head) + 4])


def test_layout_in_format_md_matches_the_code() -> None:
    section = FORMAT_MD.read_text().split("## Layout\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d+|\*) +\| (\d+n?|\*) +\| (\S+) +\| `([^`]+)`", section, re.M)
    documented = [field for *_, field in rows]
    assert documented[-4:] == ["header_crc", "streams", "payloads", "payload_crc"]
    file = chunked(CHUNKS[:2])
    written = list(dict.fromkeys(name for name, _ in compact_head_fields(file)))
    assert written == documented[:-4]
    offset, seen = 0, set()
    for name, value in compact_head_fields(file):
        at, size, _, _ = rows[documented.index(name)]
        assert name in seen or at == "*" or int(at) == offset, name
        assert not size.isdigit() or int(size) == len(value), name
        offset, seen = offset + len(value), seen | {name}
    data = pack(file)
    payloads = b"".join(payload for _, payload in file.chunks)
    assert data[offset : offset + 4] == struct.pack("<I", zlib.crc32(data[:offset]))
    assert data[-4 - len(payloads) :] == payloads + struct.pack("<I", zlib.crc32(payloads))
    assert data[offset + 4 : -4 - len(payloads)] == b"".join(file.streams)


def test_worked_example_in_format_md_is_exact() -> None:
    section = FORMAT_MD.read_text().split("## Worked example\n", 1)[1]
    dump = section.split("```", 2)[1]
    documented = bytes.fromhex("".join(line[10:] for line in dump.strip().splitlines()))
    assert pack(worked_example()) == documented
    assert unpack(documented) == anonymous(worked_example())


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 16383, 16384, 1 << 20, (1 << 35) - 1])
def test_varints_are_the_documented_minimal_leb128(value: int) -> None:
    encoded = varint(value)
    assert sum((byte & 0x7F) << 7 * k for k, byte in enumerate(encoded)) == value
    assert all(byte & 0x80 for byte in encoded[:-1]) and not encoded[-1] & 0x80
    assert len(encoded) == max(1, -(-value.bit_length() // 7)) <= 5


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"width": b"\xac\x82\x00"}, "over-long"),  # 300 with a needless zero byte
        ({"height": b"\xc8\x80\x80\x80\x80\x00"}, "over-long"),  # six bytes
        ({"width": b"\x80\x80\x80\x80\x80\x01"}, "over-long"),
        ({"stream_words": [b"\x80\x00"]}, "over-long"),
        ({"flags": b"\x04"}, "flags"),
        ({"version": b"\x04"}, "unsupported format version 4"),
        ({"quality": b"\x00"}, "quality"),
        ({"tile_units": b"\x03"}, "tile size 48"),
        ({"tile_units": b"\x81"}, "tile size 2064"),
        ({"overlap_units": b"\x10"}, "quarter of the tile size"),
        ({"width": varint(1 << 20), "height": varint(1 << 20)}, "exceeds the limit"),
        ({"chunk_count": bytes([MAX_CHUNKS + 1])}, "17 chunks"),
    ],
)
def test_forged_fields_are_refused_in_one_line(fields: dict, message: str) -> None:
    with pytest.raises(FormatError, match=message) as error:
        unpack(forge(make_file(), **fields))
    assert "\n" not in str(error.value)


def test_a_forged_grid_is_refused_before_its_table_is_read() -> None:
    """A 33-byte file declaring 2**20 x 108 pixels in tiles 36 apart (87,384 tiles) needs 437 KB of table."""
    data = forge(worked_example(), width=varint(1 << 20), height=varint(108), overlap_units=bytes([7]))
    with pytest.raises(FormatError, match="too few for the tile table of 87384 tiles"):
        read_header(data)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ([XMP + varint(4), b"iccp" + varint(4)], "out of order"),
        ([b"ENHN" + varint(1)], "unknown critical chunk 'ENHN'"),
        ([b"1abc" + varint(1)], "invalid chunk tag"),
        ([XMP + varint((1 << 20) + 1)], "over its limit"),
        ([XMP + b"\x84\x00"], "over-long"),
        ([XMP + varint(5)], "truncated"),
        ([XMP + varint(3)], "trailing bytes"),
    ],
)
def test_forged_chunk_tables_are_refused(table: list[bytes], message: str) -> None:
    file = chunked(((XMP, b"<x/>"),))
    with pytest.raises(FormatError, match=message):
        unpack(forge(file, chunk_count=bytes([len(table)]), chunk_table=table))


def test_truncation_at_every_offset_and_trailing_bytes() -> None:
    for file in (make_file(), chunked()):
        data = pack(file)
        for cut in range(len(data)):
            with pytest.raises(FormatError):
                unpack(data[:cut])
        with pytest.raises(FormatError, match="trailing bytes"):
            unpack(data + b"\0")


def test_bit_flips() -> None:
    """A flip in the head or in a payload is always caught; one in a tile stream is left to the index CRC."""
    original = chunked()
    data = pack(original)
    streams_start = sum(len(value) for _, value in compact_head_fields(original)) + 4
    streams_end = streams_start + sum(map(len, original.streams))
    rng = np.random.default_rng(1234)
    for _ in range(2000):
        position = int(rng.integers(len(data)))
        flipped = bytearray(data)
        flipped[position] ^= 1 << int(rng.integers(8))
        if streams_start <= position < streams_end:
            parsed = unpack(bytes(flipped))
            assert (parsed.header, parsed.tile_crcs, parsed.chunks) == (
                anonymous(original).header,
                original.tile_crcs,
                original.chunks,
            )
        else:
            with pytest.raises(FormatError):
                unpack(bytes(flipped))


@settings(max_examples=400, deadline=1000)
@given(
    width=st.sampled_from([0, 1, 300, 1 << 20, (1 << 20) + 1, (1 << 35) - 1]),
    height=st.sampled_from([0, 1, 200, 1 << 20, (1 << 35) - 1]),
    tile_units=st.integers(0, 255),
    overlap_units=st.integers(0, 255),
    words=st.lists(st.sampled_from([0, 1, 11, (1 << 30), (1 << 35) - 1]), max_size=13),
    flags=st.integers(0, 3),
)
def test_forged_heads_raise_only_format_error(
    width: int, height: int, tile_units: int, overlap_units: int, words: list[int], flags: int
) -> None:
    data = forge(
        make_file(),
        width=varint(width),
        height=varint(height),
        tile_units=bytes([tile_units]),
        overlap_units=bytes([overlap_units]),
        stream_words=[varint(w) for w in words],
        flags=bytes([flags]),
    )
    try:
        parsed = unpack(data)
    except FormatError:
        return
    assert pack(parsed) == data  # only a consistent file parses, and then it is the one written


@settings(max_examples=300, deadline=1000)
@given(data=st.binary(max_size=300), keep_prefix=st.integers(0, 40))
def test_random_bytes_raise_only_format_error(data: bytes, keep_prefix: int) -> None:
    data = pack(chunked(((XMP, b"<x/>"),)))[:keep_prefix] + data[keep_prefix:]
    try:  # random bytes that happen to parse are fine; any exception but FormatError is not
        read_header(data)
        unpack(data)
    except FormatError:
        pass
