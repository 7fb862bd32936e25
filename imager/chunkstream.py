"""A chunked partition received as one stream (multicast, docs/multicast.md#chunked-images), checked chunk by chunk.

The server sends zstd frames: the index's partclone header and bitmap, then each chunk the index names, in
order.  There is no stored file whose SHA-256 the manifest holds, so the check is the index's own: between the
zstd decompressor and partclone, ``CheckedChunks`` cuts the decompressed stream at the lengths the index gives
(header + bitmap, then used blocks × block size a chunk), compares the header and bitmap with the index's and
each chunk's SHA-256 with its name, and passes a piece on only once it matched.  Every byte partclone gets was
checked; the first mismatch, a frame that does not decompress, a stream too short or too long each raise
ChecksumMismatch naming the chunk.
"""
from __future__ import annotations

import hashlib
from typing import IO, cast

from contract.chunkindex import ChunkIndex
from imager import datapath
from imager.datapath import ProgressFn, Readable
from imager.errors import ChecksumMismatch, InvalidImage


class CheckedChunks:
    """A write-only sink: the decompressed stream in, only checked pieces out to ``dest``."""

    def __init__(self, index: ChunkIndex, name: str, dest: IO[bytes]) -> None:
        self.name = name
        self.dest = dest
        self.head = index.header + index.bitmap
        self.block = index.info.block_size
        self.chunks = index.chunks
        self.piece = -1                    # -1: the header and bitmap; then the chunk's position in the index
        self.buffer = bytearray()
        self.raw_bytes = 0

    def _size(self) -> int:
        return len(self.head) if self.piece < 0 else self.chunks[self.piece].used_blocks * self.block

    def what(self) -> str:
        """The piece being received, for messages."""
        if self.piece < 0:
            return "its header and bitmap"
        if self.piece >= len(self.chunks):
            return "the end of its last chunk"
        chunk = self.chunks[self.piece]
        return f"chunk {self.piece + 1}/{len(self.chunks)} ({chunk.sha256}, range {chunk.range_index})"

    def write(self, data: bytes | memoryview) -> int:
        view = memoryview(data)
        while view:
            if self.piece >= len(self.chunks):
                raise ChecksumMismatch(f"{self.name}: the stream goes on past its last chunk")
            take = view[:self._size() - len(self.buffer)]
            self.buffer += take
            view = view[len(take):]
            if len(self.buffer) == self._size():
                self._complete()
        return len(data)

    def _complete(self) -> None:
        piece = bytes(self.buffer)
        if self.piece < 0:
            if piece != self.head:
                raise ChecksumMismatch(f"{self.name}: the header and bitmap received differ from the index's")
        else:
            got = hashlib.sha256(piece).hexdigest()
            if got != self.chunks[self.piece].sha256:
                raise ChecksumMismatch(f"{self.name}: {self.what()} arrived with SHA-256 {got}")
        self.dest.write(piece)
        self.raw_bytes += len(piece)
        self.buffer.clear()
        self.piece += 1

    def finish(self) -> None:
        """The stream ended: it must have ended after the last chunk, not inside or before one."""
        if self.piece < len(self.chunks):
            raise ChecksumMismatch(f"{self.name}: the stream ends early, in {self.what()} "
                                   f"({len(self.buffer)} of {self._size()} bytes)")


def receive_chunked(src: Readable, index: ChunkIndex, name: str, dest: IO[bytes], *,
                    on_progress: ProgressFn | None = None, on_stored: ProgressFn | None = None) -> int:
    """The stored frames read from ``src`` → zstd (datapath) → CheckedChunks → ``dest``; the raw bytes passed on."""
    sink = CheckedChunks(index, name, dest)
    try:
        datapath.decompress_stream(src, name, cast(IO[bytes], sink), on_progress=on_progress, on_stored=on_stored)
    except ChecksumMismatch:
        raise
    except InvalidImage as exc:  # a frame that does not decompress: name the chunk it was in
        raise ChecksumMismatch(f"{name}: {sink.what()} does not decompress ({exc.message})") from exc
    sink.finish()
    return sink.raw_bytes
