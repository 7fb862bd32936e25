"""The data path of chunked images (docs/image-format.md#chunked-images); datapath.py is the stream format's.

capture:      partclone's stdout → header + bitmap → each grid range's used blocks → SHA-256 → the chunk store
              (compressed, only when the store lacks it) → the version's index, record by record
full deploy:  index → each chunk fetched (a repeated one once) and checked against its name → header + bitmap
              + blocks → partclone
incremental:  for each range: the target's blocks at the version's used positions hashed → equal: reused;
              else the chunk fetched, checked and written at those positions

Ranges are hashed and compressed on a few threads (hashlib and zstd release the GIL) and handed back in
address order, so the index and partclone's stream stay in order.  A chunk is only ever written whole
(chunkstore), and every byte written to a disk was checked against the SHA-256 that names it.
"""
from __future__ import annotations

import collections
import functools
import hashlib
import logging
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, Callable, Iterator, TypeVar, cast

import zstandard

from contract import chunkindex
from contract.chunkindex import Chunk, ChunkIndex
from imager import datapath, partclone, process
from imager.chunkstore import ChunkReader, LocalChunks
from imager.errors import InvalidImage
from imager.progress import Progress

log = logging.getLogger(__name__)

# Chunks are compressed one by one, so each loses the context of its neighbours: level 6 stores 2.8 % more than
# the stream format's level 2 (level 3: 7.8 %) at 0.8× level 3's speed (bench/chunk_tuning.py, docs/chunking.md).
ZSTD_LEVEL = 6
WORKERS = max(2, min(4, os.cpu_count() or 2))
TARGET_READERS = 8   # the target's ranges read and hashed at once: a disk's queue, not the CPUs, sets this
REPEATS_HELD = 256   # repeated chunks a full deploy keeps for their next use (≤ 64 KiB raw each: ≤ 16 MiB)
T = TypeVar("T")


@dataclass
class ChunkedResult:
    raw_bytes: int       # the partclone stream's bytes (header, bitmap, used blocks)
    stored_bytes: int    # this version's chunks, compressed
    new_bytes: int       # what this capture added to the store
    count: int
    grid_blocks: int


@dataclass
class Transfer:
    """What a deploy reused from the disk, fetched from the store (compressed) and wrote (the task keeps them)."""

    reused: int = 0
    fetched: int = 0
    wrote: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, reused: int = 0, fetched: int = 0, wrote: int = 0) -> None:
        with self.lock:
            self.reused += reused
            self.fetched += fetched
            self.wrote += wrote

    def figures(self) -> dict[str, int]:
        return {"reused_bytes": self.reused, "fetched_bytes": self.fetched, "wrote_bytes": self.wrote}


def in_order(jobs: Iterator[Callable[[], T]], workers: int) -> Iterator[T]:
    """Run jobs on ``workers`` threads, a bounded number ahead, yielding results in submission order."""
    pending: collections.deque[Future[T]] = collections.deque()
    with ThreadPoolExecutor(workers, thread_name_prefix="chunks") as pool:
        try:
            for job in jobs:
                pending.append(pool.submit(job))
                if len(pending) >= workers * 4:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def _read_exact(source: datapath.Readable, size: int, what: str) -> bytes:
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        n = source.readinto(view[got:])
        if not n:
            raise InvalidImage(f"partclone's stream ends early in {what}: {got} of {size} bytes")
        got += n
    return bytes(buf)


_local = threading.local()


def _compressor() -> zstandard.ZstdCompressor:
    """One compressor a thread: making one per chunk costs as much as compressing a small chunk."""
    if not hasattr(_local, "compressor"):
        _local.compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True)
    return cast(zstandard.ZstdCompressor, _local.compressor)


class _Storer:
    """Stores a capture's chunks: each name once, written only if the store lacks it, touched if it has it."""

    def __init__(self, store: LocalChunks) -> None:
        self.store = store
        self.sizes: dict[str, int] = {}          # chunks this capture has stored or touched: their stored size
        self.busy: dict[str, threading.Event] = {}
        self.lock = threading.Lock()

    def __call__(self, data: bytes) -> tuple[str, int, int]:
        """(name, stored size, bytes added to the store)."""
        sha = hashlib.sha256(data).hexdigest()
        with self.lock:
            if sha in self.sizes:
                return sha, self.sizes[sha], 0
            waiting = self.busy.get(sha)
            if waiting is None:
                self.busy[sha] = threading.Event()
        if waiting is not None:  # another thread is storing the same bytes (zeros, copies): its size
            waiting.wait()
            return sha, self.sizes[sha], 0
        try:
            added = 0
            if self.store.keep(sha):
                size = os.stat(self.store.path(sha)).st_size
            else:
                packed = _compressor().compress(data)
                self.store.put(sha, packed)
                size = added = len(packed)
            with self.lock:
                self.sizes[sha] = size
            return sha, size, added
        finally:
            self.busy.pop(sha).set()


def capture_stream(source: datapath.Readable, store: LocalChunks, index_path: str, progress: Progress) -> ChunkedResult:
    """partclone's -a0 stream from ``source`` into the store, and its index at ``index_path`` (``.cidx``).

    The index is written as ``.cidx.partial`` record by record while chunks are stored (the collector's view of
    what this capture needs) and renamed once whole."""
    header = _read_exact(source, chunkindex.HEADER_SIZE, "its header")
    info = chunkindex.parse_partclone_header(header)
    if info is None:
        raise InvalidImage("partclone's stream has no v2 header: it cannot be chunked")
    progress.total = info.used_blocks * info.block_size + chunkindex.HEADER_SIZE + chunkindex.bitmap_size(info)
    bitmap = _read_exact(source, chunkindex.bitmap_size(info), "its bitmap")
    index = ChunkIndex(header, bitmap, chunkindex.grid_blocks_for(info.block_size))
    counts = chunkindex.used_counts(index.padded_bits(), index.grid_blocks, info.total_blocks)
    if sum(counts) != info.used_blocks:
        raise InvalidImage(f"partclone's bitmap holds {sum(counts)} used blocks, its header says {info.used_blocks}")
    occupied = [(r, n) for r, n in enumerate(counts) if n]
    progress.add(len(header) + len(bitmap))
    partial = index_path[:-len(chunkindex.INDEX_SUFFIX)] + chunkindex.PARTIAL_SUFFIX
    storer = _Storer(store)
    new_bytes = 0

    def jobs() -> Iterator[Callable[[], tuple[str, int, int]]]:
        for _range, used in occupied:
            data = _read_exact(source, used * info.block_size, "its blocks")
            progress.add(len(data))
            yield lambda data=data: storer(data)  # type: ignore[misc]

    with open(partial, "wb") as out:
        out.write(chunkindex.head_bytes(header, bitmap, index.grid_blocks))
        out.flush()
        for (range_index, used), (sha, size, added) in zip(occupied, in_order(jobs(), WORKERS)):
            chunk = Chunk(range_index, used, size, sha)
            index.chunks.append(chunk)
            out.write(chunkindex.record_bytes(chunk))
            out.flush()  # the collector reads what this capture holds so far
            new_bytes += added
            progress.add_stored(size)
    if source.readinto(bytearray(1)):
        raise InvalidImage("partclone's stream goes on past its last used block")
    # Whole or absent under its name: written aside, then renamed (the collector reads the partial till then).
    aside = os.path.join(os.path.dirname(index_path), f".{os.path.basename(index_path)}.tmp")
    datapath.write_bytes_fsync(aside, chunkindex.encode(index))
    os.replace(aside, index_path)
    os.unlink(partial)
    return ChunkedResult(index.raw_bytes, index.stored_bytes, new_bytes, len(index.chunks), index.grid_blocks)


def batches(chunks: list[Chunk], size: int) -> Iterator[list[Chunk]]:
    for at in range(0, len(chunks), size):
        yield chunks[at:at + size]


@dataclass(frozen=True)
class Step:
    fetch: bool   # this position's chunk comes from the store (else from memory: fetched for an earlier one)
    keep: bool    # its bytes stay in memory after this position, for a later one


def repeat_plan(chunks: list[Chunk], held_most: int = REPEATS_HELD) -> list[Step]:
    """A full deploy's steps: a chunk named again later (an empty or zeroed range, a file stored twice) is
    fetched once and kept for its next uses, at most ``held_most`` such chunks at once; beyond, fetched again."""
    last = {chunk.sha256: at for at, chunk in enumerate(chunks)}
    held: set[str] = set()
    steps = []
    for at, chunk in enumerate(chunks):
        later = last[chunk.sha256] > at
        if chunk.sha256 in held:
            steps.append(Step(fetch=False, keep=later))
            if not later:
                held.discard(chunk.sha256)
        elif later and len(held) < held_most:
            held.add(chunk.sha256)
            steps.append(Step(fetch=True, keep=True))
        else:
            steps.append(Step(fetch=True, keep=False))
    return steps


def restore_full(index: ChunkIndex, reader: ChunkReader, tool: str, device: str, progress: Progress,
                 transfer: Transfer, shrunk: bool = False) -> None:
    """Every chunk fetched (a repeated one once) and checked, fed to partclone with the index's header and
    bitmap, in order."""
    block = index.info.block_size
    steps = repeat_plan(index.chunks)
    wanted = [chunk for chunk, step in zip(index.chunks, steps) if step.fetch]

    def fetch(group: list[Chunk]) -> list[bytes]:
        return reader.fetch_many(group, [c.used_blocks * block for c in group])

    def feed(sink: IO[bytes]) -> None:
        sink.write(index.header)
        sink.write(index.bitmap)
        progress.add(len(index.header) + len(index.bitmap))
        before = reader.fetched_bytes()
        jobs = (lambda g=g: fetch(g) for g in batches(wanted, reader.batch))
        fetched = (data for group in in_order(jobs, reader.parallel) for data in group)
        kept: dict[str, bytes] = {}
        for chunk, step in zip(index.chunks, steps):
            data = next(fetched) if step.fetch else kept[chunk.sha256]
            if step.keep:
                kept[chunk.sha256] = data
            elif not step.fetch:  # its last use
                del kept[chunk.sha256]
            sink.write(data)
            progress.add(len(data))
            transfer.count(wrote=len(data))
        transfer.count(fetched=reader.fetched_bytes() - before)

    datapath.feed_partclone(tool, device, feed, shrunk=shrunk)


class TargetUnreadable(Exception):
    """The target could not be read where the version's blocks go: deploy it in full instead."""


def restore_incremental(index: ChunkIndex, reader: ChunkReader, device: str, progress: Progress,
                        transfer: Transfer) -> None:
    """Bring ``device`` to the version: ranges whose blocks already match are kept, the others fetched (a batch
    at a time when the store serves batches) and written."""
    block = index.info.block_size
    bits = index.padded_bits()
    progress.add(len(index.header) + len(index.bitmap))

    def differs(fd: int, chunk: Chunk) -> Chunk | None:
        """The chunk if the target's blocks at its positions do not hash to its name (None: reused)."""
        digest = hashlib.sha256()
        for first, count in index.runs(chunk, bits):
            at, end = first * block, (first + count) * block
            while at < end:   # a read stops short before a bad sector: the next one names it
                try:
                    got = os.pread(fd, end - at, at)
                except OSError as exc:
                    raise TargetUnreadable(f"{device} cannot be read at block {at // block}: {exc.strerror}") from exc
                if not got:
                    raise TargetUnreadable(f"{device} ends before block {first + count}")
                digest.update(got)
                at += len(got)
        if digest.hexdigest() != chunk.sha256:
            return chunk
        transfer.count(reused=chunk.used_blocks * block)
        progress.add(chunk.used_blocks * block)
        return None

    def write(fd: int, group: list[Chunk]) -> None:
        for chunk, data in zip(group, reader.fetch_many(group, [c.used_blocks * block for c in group])):
            at = 0
            for first, count in index.runs(chunk, bits):
                os.pwrite(fd, data[at:at + count * block], first * block)
                at += count * block
            transfer.count(wrote=len(data))
            progress.add(len(data))

    before = reader.fetched_bytes()
    fd = os.open(device, os.O_RDWR)
    try:
        with ThreadPoolExecutor(reader.parallel, thread_name_prefix="chunk-writes") as writers:
            pending: collections.deque[Future[None]] = collections.deque()
            group: list[Chunk] = []
            checks = (functools.partial(differs, fd, c) for c in index.chunks)
            for chunk in in_order(checks, TARGET_READERS):
                if chunk is not None:
                    group.append(chunk)
                if len(group) == reader.batch:
                    pending.append(writers.submit(write, fd, group))
                    group = []
                while len(pending) > reader.parallel * 2 or (pending and pending[0].done()):
                    pending.popleft().result()
            if group:
                pending.append(writers.submit(write, fd, group))
            for job in pending:
                job.result()
        os.fsync(fd)
    finally:
        os.close(fd)
        transfer.count(fetched=reader.fetched_bytes() - before)


def why_not_incremental(index: ChunkIndex, tool: str, device: str) -> str | None:
    """None when ``device`` holds a filesystem the version can be laid onto in place; else why not.

    partclone itself reads the target's header and bitmap (the same reading a capture does): another
    filesystem, another block size, an unreadable device or one too small each mean a full deploy."""
    want = index.info
    reader = process.spawn(partclone.clone_argv(tool, device), stdout=process.PIPE)
    try:
        head = reader.stdout.read(chunkindex.HEADER_SIZE)
    finally:
        reader.kill()
    have = chunkindex.parse_partclone_header(head)
    if have is None:
        return f"{device} holds no {want.fs or tool} filesystem partclone can read"
    if have.fs != want.fs or have.block_size != want.block_size:
        return f"{device} holds {have.fs} with {have.block_size}-byte blocks, the image {want.fs} with {want.block_size}"
    with open(device, "rb") as f:
        size = f.seek(0, os.SEEK_END)
    if size < want.total_blocks * want.block_size:
        return f"{device} holds {size} bytes, the image's filesystem needs {want.total_blocks * want.block_size}"
    return None
