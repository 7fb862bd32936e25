"""What multicasting a chunked partition costs on each side, next to a stream file of the same data (issue 17).

    python3 bench/multicast_chunked.py [MiB]

Builds a chunk store of MiB of half-compressible 64 KiB ranges (as a capture stores them: one zstd frame each,
level 3) and the same data as one stream file (level 2, the stream format's); then times
  server: ChunkFeed writing the chunked stream into a pipe read to the end (what udp-sender reads);
  client: receive_chunked (zstd → CheckedChunks) against datapath.decompress_stream (zstd → SHA-256 of the stored
          bytes), both into a null sink.
"""
from __future__ import annotations

import hashlib
import io
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from contract import chunkindex  # noqa: E402
from contract.chunkindex import Chunk, ChunkIndex  # noqa: E402
from imager import datapath  # noqa: E402
from imager.chunkstream import receive_chunked  # noqa: E402
from server_stub.chunkfeed import ChunkFeed  # noqa: E402

BLOCK = 4096
GRID = 16   # 64 KiB ranges


class Null:
    def write(self, data: bytes) -> int:
        return len(data)


def header(total: int) -> bytes:
    import struct
    packed = struct.pack("<16s14s4sH16sQQQQI", b"partclone-image\0", b"0.3.23", b"0002", 0xC0DE, b"EXTFS",
                         total * BLOCK, total, total, total, BLOCK)
    return packed.ljust(chunkindex.HEADER_SIZE, b"\0")


def main() -> None:
    mib = int(sys.argv[1]) if len(sys.argv) > 1 else 256
    ranges = mib * 16
    with tempfile.TemporaryDirectory() as root:
        index = ChunkIndex(header(ranges * GRID), b"\xff" * (ranges * GRID // 8) + b"\0" * 4, GRID, [])
        packer = zstandard.ZstdCompressor(level=3, write_checksum=True)
        raw = bytearray()
        for i in range(ranges):
            data = os.urandom(GRID * BLOCK // 2) + bytes(GRID * BLOCK // 2)
            raw += data
            name = hashlib.sha256(data).hexdigest()
            path = os.path.join(root, chunkindex.chunk_relpath(name))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            packed = packer.compress(data)
            Path(path).write_bytes(packed)
            index.chunks.append(Chunk(i, GRID, len(packed), name))
        chunkindex.check(index, "bench")
        index_path = os.path.join(root, "d1p1.cidx")
        Path(index_path).write_bytes(chunkindex.encode(index))
        stream_file = zstandard.ZstdCompressor(level=2, threads=-1).compress(index.header + index.bitmap + bytes(raw))

        feed = ChunkFeed.open(root, index_path)
        got = bytearray()
        started = time.monotonic()
        feed.start()
        with os.fdopen(os.dup(feed.read_fd), "rb") as reader:
            while data := reader.read(1 << 20):
                got += data
        feed.close()
        feed_s = time.monotonic() - started

        started = time.monotonic()
        receive_chunked(io.BytesIO(bytes(got)), index, "bench", Null())  # type: ignore[arg-type]
        chunked_s = time.monotonic() - started
        started = time.monotonic()
        datapath.decompress_stream(io.BytesIO(stream_file), "bench", Null(),  # type: ignore[arg-type]
                                   expected_sha256=hashlib.sha256(stream_file).hexdigest())
        stream_s = time.monotonic() - started
        raw_mib = len(raw) / 2**20
        print(f"{raw_mib:.0f} MiB raw in {ranges} chunks; sent {len(got) / 2**20:.1f} MiB chunked, "
              f"{len(stream_file) / 2**20:.1f} MiB as a stream file")
        print(f"server  ChunkFeed into a pipe:             {raw_mib / feed_s:7.0f} MiB/s raw ({feed_s:.2f} s)")
        print(f"client  zstd + CheckedChunks (chunked):     {raw_mib / chunked_s:7.0f} MiB/s raw ({chunked_s:.2f} s)")
        print(f"client  SHA-256 + zstd (stream file):       {raw_mib / stream_s:7.0f} MiB/s raw ({stream_s:.2f} s)")
        print(f"threads left: {[t.name for t in threading.enumerate() if t.name.startswith('chunkfeed')]}")


if __name__ == "__main__":
    main()
