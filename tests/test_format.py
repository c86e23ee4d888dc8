"""Tests of the .aec container of versions 1 and 2 (earlier releases' files, still read): round trips, agreement
with docs/FORMAT.md, and hostile input. Version 3, what this release writes: tests/test_compact_format.py."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aecodec.bitstream.entropy import SymbolEncoder
from aecodec.bitstream.format import (
    ALPHA,
    CHUNKED_VERSION,
    CORRECTION_FIELD,
    DEFAULT_MAX_PIXELS,
    EXIF,
    FILTER_TUNING,
    FORMAT_VERSION,
    HEADER_SIZE,
    ICC_PROFILE,
    MAGIC,
    MAX_CHUNKS,
    MAX_WORK_FACTOR,
    RAW_PIXELS,
    RESIDUAL,
    WIENER_FILTER,
    XMP,
    AecFile,
    Header,
    chunk_limit,
    index_crc,
    pack,
    read_header,
    unpack,
)
from aecodec.errors import FormatError

FORMAT_MD = Path(__file__).resolve().parent.parent / "docs" / "FORMAT.md"
legacy_pack = functools.partial(pack, legacy=True)
STRUCT_CODES = {"u8": "B", "u16": "H", "u32": "I"}


def make_header(**changes: object) -> Header:
    """A valid header: 300x200 RGB in 128-pixel tiles overlapping by 16 (step 96, 3x4 grid)."""
    fields = {
        "channels": 3,
        "quality": 42,
        "model_name": "vq2-base.v1",
        "model_hash": bytes(range(1, 9)),
        "width": 300,
        "height": 200,
        "tile_size": 128,
        "tile_overlap": 16,
        "tile_count": 12,
    }
    return Header(**{**fields, **changes})


def make_file(header: Header | None = None) -> AecFile:
    """A valid file with streams of 0..44 bytes of distinct content."""
    header = header or make_header()
    streams = tuple(bytes([i + 1]) * (4 * (i % 12)) for i in range(header.tile_count))
    crcs = tuple((0x9E3779B9 * (i + 1)) & 0xFFFFFFFF for i in range(header.tile_count))
    return AecFile(header=header, tile_crcs=crcs, streams=streams)


def with_header_crc(data: bytes, tile_count: int) -> bytes:
    """`data` with its header CRC recomputed, so a forged header gets past the checksum."""
    end = HEADER_SIZE + 8 * tile_count
    if len(data) < end + 4:
        return data
    return data[:end] + struct.pack("<I", zlib.crc32(data[:end])) + data[end + 4 :]


def test_round_trip() -> None:
    original = make_file()
    data = legacy_pack(original)
    assert unpack(data) == original
    assert unpack(bytearray(data)) == original
    assert read_header(data) == original.header
    assert original.header.tile_step == 96
    assert original.header.tile_grid == (3, 4)


def test_read_header_ignores_missing_streams() -> None:
    original = make_file()
    data = legacy_pack(original)
    prefix = data[: HEADER_SIZE + 8 * 12 + 4]
    assert read_header(prefix) == original.header
    with pytest.raises(FormatError, match="truncated"):
        unpack(prefix)


def test_index_crc_known_values() -> None:
    indices = np.arange(4, dtype=np.int64).reshape(2, 2)
    assert index_crc([indices]) == zlib.crc32(b"\x00\x00\x01\x00\x02\x00\x03\x00") == 0x2F5A9784
    assert index_crc([np.array([[1, 0], [0, 0]], dtype=np.int32)]) == 0xA988DFF7
    # C order, and the CRC runs across arrays as if they were concatenated.
    big = np.array([[513, 65535], [7, 0]], dtype=np.uint16)
    assert index_crc([big.T.copy(), np.arange(3)]) == zlib.crc32(bytes([1, 2, 7, 0, 255, 255, 0, 0, 0, 0, 1, 0, 2, 0]))
    assert index_crc([]) == 0


@pytest.mark.parametrize("bad", [np.array([65536]), np.array([-1]), np.array([0.5])])
def test_index_crc_rejects_non_uint16(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"integer dtype|0..65535"):
        index_crc([bad])


def layout_rows() -> list[tuple[str, int | None, str, str]]:
    """(offset, size, type, field) of every row of the tables in the Layout section of FORMAT.md."""
    section = FORMAT_MD.read_text().split("## Layout of versions 1 and 2", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and re.fullmatch(r"\d+( \+ \d+\*[in])?", cells[0]):
            size = int(cells[1]) if cells[1].isdigit() else None
            rows.append((cells[0], size, cells[2], cells[3].strip("`")))
    return rows


def doc_offset(expression: str, i: int, n: int) -> int:
    """Evaluate an offset of the form `A` or `A + B*i` / `A + B*n` from FORMAT.md."""
    base, _, term = expression.partition(" + ")
    if not term:
        return int(base)
    factor, variable = term.split("*")
    return int(base) + int(factor) * {"i": i, "n": n}[variable]


def test_layout_in_format_md_matches_the_code() -> None:
    rows = layout_rows()
    fixed = [row for row in rows if row[0].isdigit()]
    assert [row[3] for row in fixed] == [
        "magic", "version", "channels", "quality", "flags", "model_name", "model_hash",
        "width", "height", "tile_size", "tile_overlap", "tile_count",
    ]  # fmt: skip
    assert all(int(a[0]) + a[1] == int(b[0]) for a, b in itertools.pairwise(fixed))
    assert int(fixed[-1][0]) + fixed[-1][1] == HEADER_SIZE

    original = make_file()
    header, data = original.header, legacy_pack(original)
    n = header.tile_count
    values = {field: getattr(header, field, None) for *_, field in fixed}
    values.update(
        magic=MAGIC,
        version=FORMAT_VERSION,
        flags=0,
        model_name=header.model_name.encode().ljust(16, b"\0"),
    )
    stream_start = doc_offset(rows[-1][0], 0, n)
    for offset, size, kind, field in rows:
        for i in range(n) if "[i]" in field else [0]:
            at = doc_offset(offset, i, n)
            if field == "streams":
                assert data[at:] == b"".join(original.streams)
                continue
            raw = data[at : at + size]
            value = raw if kind == "bytes" else struct.unpack("<" + STRUCT_CODES[kind], raw)[0]
            expected = {
                "stream_length[i]": len(original.streams[i]),
                "index_crc[i]": original.tile_crcs[i],
                "header_crc": zlib.crc32(data[: stream_start - 4]),
            }.get(field, values.get(field))
            assert value == expected, field


def worked_example() -> AecFile:
    """The file described in the Worked example section of FORMAT.md, built with the real coder."""
    indices = np.array([[1, 0], [0, 0]])
    encoder = SymbolEncoder()
    encoder.encode(indices.ravel(), np.tile([3, 1], (4, 1)))
    header = Header(
        channels=3,
        quality=8,
        model_name="example",
        model_hash=hashlib.sha256(b"").digest()[:8],
        width=48,
        height=32,
        tile_size=64,
        tile_overlap=0,
        tile_count=1,
    )
    return AecFile(header=header, tile_crcs=(index_crc([indices]),), streams=(encoder.finish(),))


def test_worked_example_in_format_md_is_exact() -> None:
    section = FORMAT_MD.read_text().split("## Worked example of version 1", 1)[1]
    dump = section.split("```", 2)[1]
    documented = bytes.fromhex("".join(line[10:] for line in dump.strip().splitlines()))
    assert legacy_pack(worked_example()) == documented
    assert unpack(documented) == worked_example()


def test_pack_refuses_invalid_files() -> None:
    good = make_file()
    with pytest.raises(FormatError, match="tile count"):
        legacy_pack(make_file(make_header(tile_count=11)))
    with pytest.raises(FormatError, match="12 streams"):
        legacy_pack(dataclasses.replace(good, tile_crcs=good.tile_crcs[:-1]))
    with pytest.raises(FormatError, match="multiple of 4"):
        legacy_pack(dataclasses.replace(good, streams=(b"abc",) + good.streams[1:]))
    with pytest.raises(FormatError, match="u32"):
        legacy_pack(dataclasses.replace(good, tile_crcs=(-1,) + good.tile_crcs[1:]))
    for changes in [
        {"model_name": "Caps"},
        {"model_name": ""},
        {"model_name": "a" * 17},
        {"model_hash": b"x"},
    ]:
        with pytest.raises(FormatError):
            legacy_pack(make_file(make_header(**changes)))


def test_max_pixels_guard() -> None:
    data = legacy_pack(make_file())
    with pytest.raises(FormatError, match="max_pixels"):
        unpack(data, max_pixels=300 * 200 - 1)
    assert unpack(data, max_pixels=300 * 200) == make_file()
    big = make_header(width=1 << 14, height=1 << 14, tile_size=2048, tile_overlap=0, tile_count=64)
    assert DEFAULT_MAX_PIXELS < 1 << 28
    with pytest.raises(FormatError, match="max_pixels"):
        legacy_pack(make_file(big))
    assert unpack(legacy_pack(make_file(big), max_pixels=1 << 28), max_pixels=1 << 28).header == big


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: b"PNG\x1a" + d[4:], "not an .aec file"),
        (lambda d: d[:4] + b"\x04" + d[5:], "unsupported format version 4"),
        (lambda d: d[:7] + b"\x02" + d[8:], "flags"),
        (lambda d: d[:-1], "truncated"),
        (lambda d: d + b"\0", "trailing bytes"),
        (lambda d: d[:100] + bytes([d[100] ^ 1]) + d[101:], "header checksum mismatch"),
        (lambda d: d[:20], "truncated"),
        (lambda d: b"", "not an .aec file"),
    ],
)
def test_error_messages(mutate, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        unpack(mutate(legacy_pack(make_file())))


def test_truncation_at_every_offset() -> None:
    data = legacy_pack(make_file())
    for cut in range(len(data)):
        with pytest.raises(FormatError):
            unpack(data[:cut])


def test_bit_flips() -> None:
    """A flip in header or table is always caught; one in a payload is left to the index CRC."""
    original = make_file()
    data = legacy_pack(original)
    stream_start = len(data) - sum(map(len, original.streams))
    rng = np.random.default_rng(1234)
    for _ in range(2000):
        position = int(rng.integers(len(data)))
        flipped = bytearray(data)
        flipped[position] ^= 1 << int(rng.integers(8))
        if position < stream_start:
            with pytest.raises(FormatError):
                unpack(bytes(flipped))
        else:
            parsed = unpack(bytes(flipped))
            assert (parsed.header, parsed.tile_crcs) == (
                original.header,
                original.tile_crcs,
            )


def test_forged_huge_tile_count_is_rejected_before_reading_the_table() -> None:
    # A legal 2**20 x 108 grid of step-36 tiles: 87384 tiles, whose table would need 699 KB.
    header = make_header(width=1 << 20, height=108, tile_size=64, tile_overlap=14, tile_count=87384)
    header.validate()
    forged = bytearray(legacy_pack(make_file(make_header(tile_count=12))))
    forged[32:48] = struct.pack("<IIHHI", header.width, header.height, 64, 14, header.tile_count)
    with pytest.raises(FormatError, match=f"truncated .aec file: .* header and tile table need {header.table_end + 4}"):
        unpack(bytes(forged))


@pytest.mark.parametrize(("tile_size", "overlap"), [(64, 16), (64, 30), (128, 62), (2048, 512)])
def test_overlaps_no_writer_produces_are_rejected(tile_size: int, overlap: int) -> None:
    """Tiles 4 px apart made a 2.1 KB 64x64 forgery cost 3 s: overlap must stay below a quarter."""

    def header(overlap: int) -> Header:
        count = (-(-64 // (tile_size - 2 * overlap))) ** 2
        return make_header(width=64, height=64, tile_size=tile_size, tile_overlap=overlap, tile_count=count)

    with pytest.raises(FormatError, match="quarter of the tile size"):
        header(overlap).validate()
    header(tile_size // 4 - 2).validate()


@pytest.mark.parametrize("tile_size", [64, 80, 128, 1024, 2048])
def test_decode_work_of_every_writer_grid_is_within_the_bound(tile_size: int) -> None:
    """Every grid a writer can make decodes at most MAX_WORK_FACTOR x the padded image's pixels."""
    rng = np.random.default_rng(tile_size)
    for overlap in range(0, tile_size // 4, 2):
        step = tile_size - 2 * overlap
        for width, height in [
            (1, 1),
            (step + 1, 1),
            (3 * step - 1, 2 * step + 3),
            *rng.integers(1, 4 * tile_size, (5, 2)),
        ]:
            rows, cols = -(-int(height) // step), -(-int(width) // step)
            header = make_header(
                width=int(width), height=int(height), tile_size=tile_size, tile_overlap=overlap, tile_count=rows * cols
            )
            header.validate()
            padded = (-(-int(width) // 16) * 16) * (-(-int(height) // 16) * 16)
            assert header.decode_work <= MAX_WORK_FACTOR * padded


EXTREMES = {
    32: [0, 1, 1 << 20, (1 << 20) + 1, 2**32 - 1],  # width
    36: [0, 1, 1 << 20, (1 << 20) + 1, 2**32 - 1],  # height
    40: [0, 16, 64, 2048, 2064, 65535],  # tile size
    42: [0, 1, 14, 16, 32, 65534],  # tile overlap
    44: [0, 1, 12, 1 << 20, (1 << 20) + 1, 2**32 - 1],  # tile count
}
FIELD_FORMATS = {32: "<I", 36: "<I", 40: "<H", 42: "<H", 44: "<I"}


@settings(max_examples=400, deadline=1000)
@given(
    mutations=st.dictionaries(st.sampled_from(sorted(EXTREMES)), st.integers(0, 5), min_size=1, max_size=5),
    byte_mutations=st.dictionaries(st.integers(4, 47), st.integers(0, 255), max_size=3),
    fix_crc=st.booleans(),
)
def test_mutated_headers_raise_only_format_error(mutations: dict, byte_mutations: dict, fix_crc: bool) -> None:
    data = bytearray(legacy_pack(make_file()))
    for offset, choice in mutations.items():
        values = EXTREMES[offset]
        struct.pack_into(FIELD_FORMATS[offset], data, offset, values[choice % len(values)])
    for offset, value in byte_mutations.items():
        data[offset] = value
    data = bytes(data)
    if fix_crc:
        data = with_header_crc(data, struct.unpack_from("<I", data, 44)[0])
    assert_rejected_or_faithful(data)


def assert_rejected_or_faithful(data: bytes) -> None:
    """Only mutations that keep a consistent, checksummed file may parse, and then re-pack exactly."""
    try:
        parsed = unpack(data)
    except FormatError:
        return
    assert legacy_pack(parsed) == data


@settings(max_examples=300, deadline=1000)
@given(
    lengths=st.dictionaries(st.integers(0, 11), st.sampled_from([0, 1, 3, 4, 40, 44, 48, 2**31, 2**32 - 4, 2**32 - 1])),
    extra=st.binary(max_size=12),
    cut=st.integers(0, 12),
)
def test_forged_tile_table_raises_only_format_error(lengths: dict, extra: bytes, cut: int) -> None:
    """Stream lengths forged behind a valid header CRC: truncated, trailing or misaligned."""
    data = bytearray(legacy_pack(make_file()))
    for tile, length in lengths.items():
        struct.pack_into("<I", data, HEADER_SIZE + 8 * tile, length)
    data = with_header_crc(bytes(data), 12)
    data = data[: len(data) - cut] + extra
    assert_rejected_or_faithful(data)


@settings(max_examples=300, deadline=1000)
@given(data=st.binary(max_size=300), keep_prefix=st.integers(0, 8), fix_crc=st.booleans())
def test_random_bytes_raise_only_format_error(data: bytes, keep_prefix: int, fix_crc: bool) -> None:
    data = legacy_pack(make_file())[:keep_prefix] + data[keep_prefix:]
    if fix_crc and len(data) >= HEADER_SIZE:
        data = with_header_crc(data, min(struct.unpack_from("<I", data, 44)[0], 1 << 20))
    try:  # random bytes that happen to parse are fine; any exception but FormatError is not
        read_header(data)
        unpack(data)
    except FormatError:
        pass


ICC = bytes(36) + b"acsp" + bytes(88)
CHUNKS = ((ALPHA, b"\0" + zlib.compress(bytes(300 * 200))), (EXIF, b"II*\0" + bytes(10)),
          (ICC_PROFILE, ICC), (XMP, "<x:xmpmeta>é</x:xmpmeta>".encode()))  # fmt: skip


def chunked_file(chunks: tuple = CHUNKS) -> AecFile:
    return dataclasses.replace(make_file(), chunks=chunks)


def test_chunks_round_trip_as_version_2() -> None:
    data = legacy_pack(chunked_file())
    assert data[4] == CHUNKED_VERSION and legacy_pack(make_file())[4] == FORMAT_VERSION
    assert unpack(data) == chunked_file()
    assert unpack(data).chunk(XMP) == CHUNKS[3][1] and unpack(data).chunk(b"abcd") is None
    count, tail = data[len(legacy_pack(make_file())) :][:4], data[len(legacy_pack(make_file())) + 4 :]
    assert count == struct.pack("<I", len(CHUNKS))
    tag, length = struct.unpack_from("<4sI", tail)
    assert (tag, length) == (ALPHA, len(CHUNKS[0][1]))
    assert struct.unpack_from("<I", tail, 8 + length)[0] == zlib.crc32(tail[: 8 + length])


def test_chunk_table_in_format_md_matches_the_code() -> None:
    section = FORMAT_MD.read_text().split("## Chunks", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(.{4})` \| (critical|ancillary) +\| `([^`]+)`", section, re.M)
    known = (ALPHA, CORRECTION_FIELD, FILTER_TUNING, RAW_PIXELS, RESIDUAL, WIENER_FILTER, EXIF, ICC_PROFILE, XMP)
    assert {tag for tag, *_ in rows} == {t.decode() for t in known}
    for header in (make_header(), make_header(width=4, height=4, channels=1, tile_count=1)):
        sizes = {"w": header.width, "h": header.height, "channels": header.channels}
        for tag, kind, limit in rows:
            assert (kind == "critical") == tag[0].isupper()
            expected = eval(limit, {}, sizes) if header.width * header.height <= 64 or tag != "PIXL" else 0
            assert chunk_limit(tag.encode(), header) == expected, tag
    assert f"**1 to {MAX_CHUNKS} chunks**" in section


def test_unknown_chunks_follow_the_case_rule() -> None:
    ancillary = chunked_file(((b"zzzz", b"kept"),))
    assert unpack(legacy_pack(ancillary)) == ancillary
    with pytest.raises(FormatError, match="unknown critical chunk 'ENHN'"):
        legacy_pack(chunked_file(((b"ENHN", b"x"),)))


@pytest.mark.parametrize(
    ("chunks", "message"),
    [
        (((XMP, b"a"), (EXIF, b"II*\0")), "out of order"),
        (((XMP, b"a"), (XMP, b"b")), "out of order or repeated"),
        (((b"1abc", b""),), "invalid chunk tag"),
        (((ICC_PROFILE, b"x" * 200),), "acsp"),
        (((EXIF, b"Exif\0\0II*\0"),), "TIFF"),
        (((XMP, b"\xff"),), "UTF-8"),
        (((RAW_PIXELS, bytes(9)),), "limit of 0"),
        (((ALPHA, b""),), "empty"),
        (((FILTER_TUNING, b"\x01\x40"),), "invalid filter chunk"),
        (((CORRECTION_FIELD, b"\x01\x06"),), "4-byte prefix"),
        (((WIENER_FILTER, b"\x01\x04\x02\x08"),), "5-byte prefix"),
        (((XMP, bytes((1 << 20) + 1)),), "over its limit"),
        (tuple((b"z%03d" % i, b"") for i in range(MAX_CHUNKS + 1)), "17 chunks"),
    ],
)
def test_invalid_chunks_are_refused_by_writer_and_reader(chunks: tuple, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        legacy_pack(chunked_file(chunks))
    # Forge the same chunks behind a valid header to check that the reader refuses them too.
    body = b"".join(
        struct.pack("<4sI", tag, len(p)) + p + struct.pack("<I", zlib.crc32(struct.pack("<4sI", tag, len(p)) + p))
        for tag, p in chunks
    )
    data = legacy_pack(make_file())
    with pytest.raises(FormatError, match=message):
        unpack(with_header_crc(data[:4] + b"\x02" + data[5:], 12) + struct.pack("<I", len(chunks)) + body)


def test_forged_chunk_lengths_and_damage() -> None:
    data = legacy_pack(chunked_file())
    start = len(legacy_pack(make_file()))
    huge = data[: start + 4] + struct.pack("<4sI", ALPHA, 2**32 - 1) + data[start + 12 :]
    with pytest.raises(FormatError, match="over its limit"):
        unpack(huge)
    with pytest.raises(FormatError, match="count is missing"):
        unpack(with_header_crc(legacy_pack(make_file())[:4] + b"\x02" + legacy_pack(make_file())[5:], 12))
    for cut in range(start, len(data)):
        with pytest.raises(FormatError):
            unpack(data[:cut])
    rng = np.random.default_rng(7)
    for _ in range(300):
        position = int(rng.integers(start, len(data)))
        flipped = bytearray(data)
        flipped[position] ^= 1 << int(rng.integers(8))
        with pytest.raises(FormatError):
            unpack(bytes(flipped))


@settings(max_examples=200, deadline=1000)
@given(tail=st.binary(max_size=64), keep=st.integers(0, 40))
def test_random_chunk_sections_raise_only_format_error(tail: bytes, keep: int) -> None:
    data = legacy_pack(chunked_file(((b"abcd", b"0123456789"), (XMP, b"<x/>"))))
    start = len(legacy_pack(make_file()))
    assert_rejected_or_faithful(data[: start + keep] + tail)
