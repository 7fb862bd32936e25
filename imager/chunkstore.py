"""A storage node's chunk store (docs/image-format.md#chunked-images): ``<root>/.chunks/<2 hex>/<sha256>.zst``.

One store per node, shared by every version of every image there: a chunk's name is the SHA-256 of its raw
bytes, so a chunk that exists is the one wanted.  Written as a temporary name, fsynced and renamed: a reader
never sees half a chunk.  The garbage collector (server_stub/chunkgc.py) quarantines unreferenced chunks into
``.chunks/.trash/`` and deletes them a run later; a capture that reuses a chunk touches it first (its mtime
tells the collector it is wanted) and, before publishing, takes back any the collector quarantined.

Readers: ``LocalChunks`` (the mounted NFS export, or a local directory) and ``HttpChunks`` (a storage node's
``chunks_url``).  Both hand back a chunk's raw bytes only after checking them against its name.
"""
from __future__ import annotations

import hashlib
import os
import threading
from typing import Protocol

import zstandard

from contract.chunkindex import CHUNKS_DIR, TRASH_DIR, Chunk, chunk_relpath
from imager.errors import ChecksumMismatch, InvalidImage


class ChunkReader(Protocol):
    """Where a deploy's chunks come from."""

    where: str      # for messages: a directory or a URL
    parallel: int   # fetches at once: enough to hide the network's latency
    batch: int      # chunks a ``fetch_many`` asks for at once (1: the store serves one chunk a request)

    def fetch(self, chunk: Chunk, raw_size: int) -> bytes:
        """The chunk's raw bytes (``raw_size`` of them), checked against its name."""

    def fetch_many(self, chunks: list[Chunk], raw_sizes: list[int]) -> list[bytes]:
        """Each chunk's raw bytes, in order, each checked against its name."""

    def fetched_bytes(self) -> int:
        """Compressed bytes read so far (what crossed the network)."""


_local = threading.local()


def unpack(packed: bytes, chunk: Chunk, raw_size: int, where: str) -> bytes:
    """Decompress a stored chunk and check it is what its name says."""
    if not hasattr(_local, "decompressor"):  # one a thread: a new one per chunk costs as much as the chunk
        _local.decompressor = zstandard.ZstdDecompressor()
    try:
        data = _local.decompressor.decompress(packed, max_output_size=raw_size)
    except zstandard.ZstdError as exc:
        raise ChecksumMismatch(f"chunk {chunk.sha256} in {where} is damaged: {exc}") from exc
    if len(data) != raw_size or hashlib.sha256(data).hexdigest() != chunk.sha256:
        raise ChecksumMismatch(f"chunk {chunk.sha256} in {where} does not match its name "
                               f"({len(data)} bytes, {raw_size} expected)")
    return data


class LocalChunks:
    """The chunk store of a node's root directory (an NFS mount on a client, a local directory on a test)."""

    parallel = 8   # over NFS each chunk is an open, a read and a close: round trips to overlap
    batch = 1

    def __init__(self, root: str) -> None:
        self.dir = os.path.join(root, CHUNKS_DIR)
        self.where = self.dir
        self._fetched = 0
        self._lock = threading.Lock()

    def path(self, sha256: str) -> str:
        return os.path.join(os.path.dirname(self.dir), chunk_relpath(sha256))

    def keep(self, sha256: str) -> bool:
        """Mark an existing chunk as wanted now (mtime: the collector spares it); False if the store lacks it."""
        try:
            os.utime(self.path(sha256))
            return True
        except FileNotFoundError:
            return False

    def put(self, sha256: str, packed: bytes) -> None:
        """Store a chunk whole or not at all."""
        path = self.path(sha256)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = os.path.join(os.path.dirname(path), f".{sha256}.{os.getpid()}.{threading.get_ident()}")
        with open(tmp, "wb") as f:
            f.write(packed)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def reclaim(self, sha256: str) -> bool:
        """A chunk the collector quarantined, put back (before publishing a version that needs it)."""
        try:
            os.replace(os.path.join(self.dir, TRASH_DIR, f"{sha256}.zst"), self.path(sha256))
            return True
        except FileNotFoundError:
            return False

    def missing(self, names: list[str]) -> list[str]:
        """Names the store lacks, after taking back any the collector quarantined."""
        return [name for name in dict.fromkeys(names)
                if not os.path.exists(self.path(name)) and not self.reclaim(name)]

    def read(self, sha256: str, size: int | None = None) -> bytes:
        """The stored chunk; ``size`` (its stored size, from the index) spares asking the file's: over NFS every
        system call on a chunk can be a round trip, so it is an open, a read and a close, nothing else (Python's
        ``open`` adds two stats, two seeks and a terminal ioctl). What comes is checked by ``unpack`` anyway."""
        try:
            fd = os.open(self.path(sha256), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise InvalidImage(f"chunk {sha256} is missing from {self.dir}",
                               hint="The chunk store lost a chunk this version needs: run `imager verify`, "
                                    "capture the image again.") from None
        try:
            want = os.fstat(fd).st_size if size is None else size
            parts = []
            while want > 0 and (part := os.read(fd, want)):
                parts.append(part)
                want -= len(part)
            return b"".join(parts)
        finally:
            os.close(fd)

    def fetch(self, chunk: Chunk, raw_size: int) -> bytes:
        packed = self.read(chunk.sha256, chunk.stored_size)
        with self._lock:
            self._fetched += len(packed)
        return unpack(packed, chunk, raw_size, self.dir)

    def fetch_many(self, chunks: list[Chunk], raw_sizes: list[int]) -> list[bytes]:
        return [self.fetch(chunk, raw_size) for chunk, raw_size in zip(chunks, raw_sizes)]

    def fetched_bytes(self) -> int:
        return self._fetched


def store_root(image_dir: str) -> str:
    """The node root an image directory lives under: ``<root>/<name>`` → ``<root>/.images/<version>``."""
    version_dir = os.path.realpath(image_dir)
    return os.path.dirname(os.path.dirname(version_dir))
