"""Real chunk stores for the collector's and replication's tests: chunks zstd-compressed under their SHA-256,
indexes written by contract.chunkindex.encode with a partclone header and a bitmap they agree with."""
from __future__ import annotations

import hashlib
import os
import struct

import zstandard

from contract import chunkindex
from contract.chunkindex import Chunk, ChunkIndex

BLOCK = 4096
GRID = 8  # blocks a range: one used block in each, so each range is one chunk


def partclone_header(total_blocks: int, used_blocks: int) -> bytes:
    packed = struct.pack("<16s14s4sH16sQQQQI", b"partclone-image\0", b"0.3.23", b"0002", 0xC0DE, b"EXTFS",
                         total_blocks * BLOCK, total_blocks, used_blocks, used_blocks, BLOCK)
    return packed.ljust(chunkindex.HEADER_SIZE, b"\0")


def store_chunk(root: str, data: bytes) -> str:
    """``data`` as a chunk of ``root``'s store; its name."""
    name = hashlib.sha256(data).hexdigest()
    path = os.path.join(root, chunkindex.chunk_relpath(name))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(zstandard.ZstdCompressor().compress(data))
    return name


def block_of(seed: str) -> bytes:
    return hashlib.sha256(seed.encode()).digest() * (BLOCK // 32)


def index_for(names: list[str]) -> ChunkIndex:
    """An index of one used block in each of len(names) ranges, the i-th range's chunk being names[i]."""
    count = len(names)
    bitmap = bytes([1]) * count + b"\0\0\0\0"  # one bit a range of 8 blocks, then partclone's CRC
    index = ChunkIndex(partclone_header(count * GRID, count), bitmap, GRID,
                       [Chunk(i, 1, 100, name) for i, name in enumerate(names)])
    chunkindex.check(index, "test index")
    return index


def write_version(root: str, version: str, names: list[str], suffix: str = chunkindex.INDEX_SUFFIX,
                  file: str = "d1p1") -> str:
    folder = os.path.join(root, ".images", version)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, file + suffix)
    index = index_for(names)
    with open(path, "wb") as f:
        if suffix == chunkindex.PARTIAL_SUFFIX:  # as a capture writes it: count 0, records appended
            f.write(chunkindex.head_bytes(index.header, index.bitmap, index.grid_blocks)
                    + b"".join(chunkindex.record_bytes(c) for c in index.chunks))
        else:
            f.write(chunkindex.encode(index))
    return path


def chunk_path(root: str, name: str) -> str:
    return os.path.join(root, chunkindex.chunk_relpath(name))


def age(path: str, seconds: float, now: float) -> None:
    os.utime(path, (now - seconds, now - seconds))
