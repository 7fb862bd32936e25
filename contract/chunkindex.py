"""A chunked partition stream's index (``dNpM.cidx``) and where its chunks live (docs/image-format.md).

A partclone stream (``-a0``) is a 110-byte header, the block bitmap and its 4-byte CRC, then the used
blocks in address order.  The *grid* cuts the device's blocks into ranges of ``grid_blocks``; a range's
chunk is the used blocks inside it, concatenated, named by the SHA-256 of those raw bytes and stored
once, zstd-compressed, at ``<root>/.chunks/<2 hex>/<sha256>.zst``.  A changed block changes only its
own range's chunk, so a version that differs a little from the last shares most of its chunks.

The index holds partclone's header and bitmap verbatim and one record per non-empty range:

    magic "imager-chunk-index\\0", format u16, grid_blocks u32, chunk count u32
    header (110 bytes), bitmap length u32, the bitmap + CRC zlib-compressed (stdlib: the contract stays a leaf)
    records: range u32, used blocks u32, stored size u32, SHA-256 (32 bytes)   (little-endian)

While a capture runs, the records are appended to ``dNpM.cidx.partial`` (count 0) as each chunk is
stored: the garbage collector reads that file as the in-flight capture's needs.  The client writes
indexes (imager); the server's collector and verify read them; neither imports the other.
"""
from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field


MAGIC = b"imager-chunk-index\0"
FORMAT = 1
CHUNKS_DIR = ".chunks"       # at a storage node's root, beside .images/: one store per node (per group)
TRASH_DIR = ".trash"         # inside CHUNKS_DIR: what the collector quarantined (chunkgc)
INDEX_SUFFIX = ".cidx"
PARTIAL_SUFFIX = ".cidx.partial"
HEADER_SIZE = 110            # partclone's v2 image header
CRC_SIZE = 4
GRID_BYTES = 64 * 1024       # docs/chunking.md: store growth and fetch under 10 % at 64 KiB
_FIXED = struct.Struct("<19sHII")
_RECORD = struct.Struct("<III32s")
RECORD_SIZE = _RECORD.size   # 44
_LENGTH = struct.Struct("<I")
_PARTCLONE = struct.Struct("<16s14s4sH16sQQQQI")


class IndexError_(ValueError):
    """An index file that is not whole or not ours (its message names what is wrong)."""


@dataclass(frozen=True)
class Chunk:
    """One non-empty range: which range, how many used blocks, its stored size and name."""

    range_index: int
    used_blocks: int
    stored_size: int
    sha256: str


@dataclass(frozen=True)
class StreamInfo:
    """What partclone's header says."""

    fs: str
    device_size: int
    total_blocks: int
    used_blocks: int
    block_size: int


@dataclass
class ChunkIndex:
    header: bytes        # partclone's 110 bytes, verbatim
    bitmap: bytes        # with partclone's CRC, as in the stream
    grid_blocks: int
    chunks: list[Chunk] = field(default_factory=list)

    @property
    def info(self) -> StreamInfo:
        info = parse_partclone_header(self.header)
        if info is None:
            raise IndexError_("the index's partclone header is not a v2 header")
        return info

    @property
    def raw_bytes(self) -> int:
        """The whole partclone stream's size (what a full deploy feeds partclone)."""
        return len(self.header) + len(self.bitmap) + sum(c.used_blocks for c in self.chunks) * self.info.block_size

    @property
    def stored_bytes(self) -> int:
        return sum(c.stored_size for c in self.chunks)

    def padded_bits(self) -> bytes:
        """The bitmap without its CRC or the bits past the last block, padded so the last range reads whole bytes."""
        return usable_bits(self.bitmap, self.info.total_blocks) + bytes(self.grid_blocks // 8)

    def runs(self, chunk: Chunk, bits: bytes | None = None) -> list[tuple[int, int]]:
        """(first block, count) on the device of each run of used blocks in the chunk's range."""
        bits = bits if bits is not None else self.padded_bits()
        base = chunk.range_index * self.grid_blocks
        return [(base + first, count) for first, count in used_runs(range_bits(bits, self.grid_blocks, chunk.range_index))]


def parse_partclone_header(head: bytes) -> StreamInfo | None:
    if len(head) < HEADER_SIZE or not head.startswith(b"partclone-image"):
        return None
    _magic, _ptc, version, _endian, fs, dev_size, total, used, _sb_used, block = _PARTCLONE.unpack_from(head)
    if version != b"0002":
        return None
    return StreamInfo(fs.split(b"\0")[0].decode(errors="replace"), dev_size, total, used, block)


def grid_blocks_for(block_size: int, grid_bytes: int = GRID_BYTES) -> int:
    """Blocks per range: ``grid_bytes`` of them, a multiple of 8 (whole bitmap bytes), at least 8."""
    return max(8, (grid_bytes // max(block_size, 1)) // 8 * 8)


def bitmap_size(info: StreamInfo) -> int:
    return (info.total_blocks + 7) // 8 + CRC_SIZE


def usable_bits(bitmap: bytes, total_blocks: int) -> bytes:
    """The bitmap's bytes without partclone's CRC, the bits past ``total_blocks`` cleared (partclone may set
    them; it never streams those blocks)."""
    bits = bytearray(bitmap[:(total_blocks + 7) // 8])
    if total_blocks % 8:
        bits[-1] &= (1 << (total_blocks % 8)) - 1
    return bytes(bits)


def range_bits(bits: bytes, grid_blocks: int, range_index: int) -> int:
    """One range's bits as an int, bit i = block range_start + i (partclone: least significant bit first)."""
    step = grid_blocks // 8
    return int.from_bytes(bits[range_index * step:(range_index + 1) * step], "little")


def used_counts(bits: bytes, grid_blocks: int, total_blocks: int) -> list[int]:
    """Used blocks in each range of the grid."""
    ranges = (total_blocks + grid_blocks - 1) // grid_blocks
    return [range_bits(bits, grid_blocks, r).bit_count() for r in range(ranges)]


def used_runs(bits: int) -> list[tuple[int, int]]:
    """(first, count) of each run of set bits, lowest first."""
    runs = []
    while bits:
        start = (bits & -bits).bit_length() - 1
        shifted = bits >> start
        length = (~shifted & (shifted + 1)).bit_length() - 1
        runs.append((start, length))
        bits &= ~(((1 << length) - 1) << start)
    return runs


def chunk_relpath(sha256: str) -> str:
    """A chunk's path under the node's root."""
    return f"{CHUNKS_DIR}/{sha256[:2]}/{sha256}.zst"


def is_chunk_name(name: str) -> bool:
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)


def head_bytes(header: bytes, bitmap: bytes, grid_blocks: int, count: int = 0) -> bytes:
    """The index up to its first record (``count`` 0 while the capture runs)."""
    packed = zlib.compress(bitmap, 6)
    return _FIXED.pack(MAGIC, FORMAT, grid_blocks, count) + header + _LENGTH.pack(len(packed)) + packed


def record_bytes(chunk: Chunk) -> bytes:
    return _RECORD.pack(chunk.range_index, chunk.used_blocks, chunk.stored_size, bytes.fromhex(chunk.sha256))


def encode(index: ChunkIndex) -> bytes:
    return head_bytes(index.header, index.bitmap, index.grid_blocks, len(index.chunks)) + b"".join(
        record_bytes(c) for c in index.chunks)


def decode(data: bytes, name: str = "index", partial: bool = False) -> ChunkIndex:
    """An index from its bytes; ``partial``: a capture's unfinished index (records up to a whole one)."""
    if len(data) < _FIXED.size + HEADER_SIZE + _LENGTH.size:
        raise IndexError_(f"{name} is too short to be a chunk index")
    magic, fmt, grid_blocks, count = _FIXED.unpack_from(data)
    if magic != MAGIC or fmt != FORMAT:
        raise IndexError_(f"{name} is not a chunk index of format {FORMAT}")
    if grid_blocks < 8 or grid_blocks % 8:
        raise IndexError_(f"{name}: grid of {grid_blocks} blocks is not a multiple of 8")
    at = _FIXED.size
    header = data[at:at + HEADER_SIZE]
    at += HEADER_SIZE
    (packed_len,) = _LENGTH.unpack_from(data, at)
    at += _LENGTH.size
    try:
        bitmap = zlib.decompress(data[at:at + packed_len])
    except zlib.error as exc:
        raise IndexError_(f"{name}: its bitmap does not decompress ({exc})") from exc
    at += packed_len
    body = data[at:]
    if partial:
        body = body[:len(body) - len(body) % RECORD_SIZE]
    elif len(body) != count * RECORD_SIZE:
        raise IndexError_(f"{name} names {count} chunks but holds {len(body) // RECORD_SIZE}")
    index = ChunkIndex(header, bitmap, grid_blocks, [Chunk(r, used, stored, sha.hex())
                                                     for r, used, stored, sha in _RECORD.iter_unpack(body)])
    if not partial:
        check(index, name)
    return index


def check(index: ChunkIndex, name: str) -> None:
    """The records agree with the bitmap: every non-empty range once, in order, with its used blocks."""
    info = index.info
    if len(index.bitmap) != bitmap_size(info):
        raise IndexError_(f"{name}: the bitmap is {len(index.bitmap)} bytes, the header needs {bitmap_size(info)}")
    counts = used_counts(index.padded_bits(), index.grid_blocks, info.total_blocks)
    expected = [(r, n) for r, n in enumerate(counts) if n]
    if [(c.range_index, c.used_blocks) for c in index.chunks] != expected or sum(counts) != info.used_blocks:
        raise IndexError_(f"{name}: its chunks do not match its bitmap")


def read(path: str, partial: bool = False) -> ChunkIndex:
    with open(path, "rb") as f:
        return decode(f.read(), os.path.basename(path), partial)


def names_in(path: str) -> Iterator[str]:
    """The chunk names an index (or a capture's partial index) needs."""
    partial = path.endswith(PARTIAL_SUFFIX)
    for chunk in read(path, partial=partial).chunks:
        yield chunk.sha256
