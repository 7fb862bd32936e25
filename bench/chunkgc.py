"""How long the chunk store's collector takes and how much memory it holds, on a synthetic store of real files:
``python -m bench.chunkgc [CHUNKS]`` (default 200,000 chunks, half of them named by a version's indexes).

Chunk files are tiny (their content does not matter to the collector; their number does): the figures are the
cost of listing, marking and renaming, not of bytes."""
from __future__ import annotations

import os
import resource
import secrets
import sys
import tempfile
import time

from contract import chunkindex
from contract.chunkindex import Chunk, ChunkIndex
from server_stub.chunkgc import collect

GRID, BLOCK = 8, 4096


def index_of(names: list[str]) -> bytes:
    import struct
    count = len(names)
    header = struct.pack("<16s14s4sH16sQQQQI", b"partclone-image\0", b"0.3.23", b"0002", 0xC0DE, b"EXTFS",
                         count * GRID * BLOCK, count * GRID, count, count, BLOCK).ljust(chunkindex.HEADER_SIZE, b"\0")
    return chunkindex.encode(ChunkIndex(header, b"\x01" * count + b"\0" * 4, GRID,
                                        [Chunk(i, 1, 100, n) for i, n in enumerate(names)]))


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    with tempfile.TemporaryDirectory(prefix="bench-chunkgc-") as root:
        names = [secrets.token_hex(32) for _ in range(count)]
        started = time.monotonic()
        old = time.time() - 7200
        for name in names:
            path = os.path.join(root, chunkindex.chunk_relpath(name))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(b"x")
            os.utime(path, (old, old))
        version = os.path.join(root, ".images", "img@20260101T000000-aaaaaa")
        os.makedirs(version)
        half = names[: count // 2]
        for part in range(4):  # four partitions' indexes
            with open(os.path.join(version, f"d1p{part + 1}.cidx"), "wb") as f:
                f.write(index_of(half[part::4]))
        print(f"store of {count} chunks made in {time.monotonic() - started:.1f} s")
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        first = collect(root, now=time.time())
        second = collect(root, now=time.time())
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(f"run 1: marked {first.marked}, quarantined {first.quarantined} in {first.seconds:.2f} s")
        print(f"run 2: marked {second.marked}, deleted {second.deleted} in {second.seconds:.2f} s")
        print(f"peak RSS {peak / 1024:.0f} MiB (before the runs {before / 1024:.0f} MiB)")


if __name__ == "__main__":
    main()
