"""Our own chunker over partclone's used-block stream, for bench/chunking.py (issue 17).

A partclone -a0 stream is: a 110-byte header, the block bitmap (+ 4-byte CRC), then
the used blocks in address order.  The grid chunker cuts the device's address space
into ranges of ``grid_blocks`` blocks; a range's chunk is the used blocks inside it,
concatenated.  So a changed block changes only its own range's chunk, and data
inserted elsewhere shifts nothing.  A chunk is named by the SHA-256 of its raw bytes
and stored once, compressed with zstd level 3, as ``<store>/<2 hex>/<sha256>.zst``.

Restores: ``restore_full`` feeds the rebuilt stream to partclone.restore, as imager's
data path does; ``restore_seeded`` reads and hashes what the target already holds at
each range's used blocks, and fetches and writes only the ranges that differ.
"""
from __future__ import annotations

import collections
import hashlib
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, TypeVar

import zstandard

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from contract.chunkindex import range_bits, used_runs  # noqa: E402
from imager.partclone import HEADER_SIZE, StreamHeader, parse_header, restore_argv  # noqa: E402

ZSTD_LEVEL = 3
CRC_SIZE = 4
# Chunks in flight per worker: enough to keep both cores busy, bounded memory.
WINDOW_PER_WORKER = 4
T = TypeVar("T")


@dataclass(frozen=True)
class GridChunk:
    """One non-empty range of the grid: which range, how many used blocks, its name."""
    range_index: int
    used_blocks: int
    sha256: str
    stored_size: int


@dataclass
class GridIndex:
    """A version's index: partclone's header and bitmap, then the chunks in address order."""
    header: bytes
    bitmap: bytes  # with partclone's 4-byte CRC, as in the stream
    info: StreamHeader
    grid_blocks: int
    chunks: list[GridChunk] = field(default_factory=list)

    def __post_init__(self) -> None:
        # The bitmap without its CRC, padded so the last (short) range reads whole bytes.
        self.padded_bits = self.bitmap[:-CRC_SIZE] + bytes(self.grid_blocks // 8)

    def index_bytes(self) -> int:
        """What the index would weigh on disk: header, bitmap, 32 + 8 bytes a chunk."""
        return len(self.header) + len(self.bitmap) + 40 * len(self.chunks)


@dataclass
class CaptureStats:
    seconds: float
    raw_bytes: int
    new_chunks: int
    new_stored_bytes: int


@dataclass
class SeededStats:
    seconds: float
    reused_bytes: int
    fetched_bytes: int  # compressed, what would cross the network
    written_bytes: int


def chunk_path(store: Path, sha256: str) -> Path:
    return store / sha256[:2] / f"{sha256}.zst"


def _read_exact(stream: BinaryIO, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise ValueError(f"partclone stream ends early: wanted {size} bytes, got {len(data)}")
    return data


def _windowed(pool: ThreadPoolExecutor, jobs: Iterator[Callable[[], T]], window: int) -> Iterator[T]:
    """Run jobs on the pool, at most ``window`` at once, yielding results in order."""
    pending: collections.deque[Future[T]] = collections.deque()
    for job in jobs:
        pending.append(pool.submit(job))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


@dataclass
class _Claims:
    """Chunk names this capture is writing: two workers holding the same chunk write it once."""
    names: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def claim(self, sha: str, path: Path) -> bool:
        with self.lock:
            if sha in self.names or path.exists():
                return False
            self.names.add(sha)
            return True


def _store_chunk(store: Path, data: bytes, claims: _Claims) -> tuple[str, int, int]:
    """Hash one chunk, write it compressed unless the store has it: (sha256, stored size, bytes added)."""
    sha = hashlib.sha256(data).hexdigest()
    path = chunk_path(store, sha)
    if not claims.claim(sha, path):
        return sha, -1, 0  # stored (or being stored) already: its size is read once the capture ends
    packed = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(data)
    path.parent.mkdir(exist_ok=True)
    # Written aside, then renamed: a reader never sees half a chunk.
    tmp = path.with_name(f".{sha}.{os.getpid()}.{id(data)}")
    tmp.write_bytes(packed)
    os.replace(tmp, path)
    return sha, len(packed), len(packed)


def capture(stream_path: Path, store: Path, grid_blocks: int, workers: int) -> tuple[GridIndex, CaptureStats]:
    """Chunk one partclone -a0 stream file into ``store``."""
    if grid_blocks % 8:
        raise ValueError("grid_blocks must be a multiple of 8 (whole bitmap bytes)")
    store.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(stream_path, "rb", buffering=0) as stream:
        header = _read_exact(stream, HEADER_SIZE)
        info = parse_header(header)
        if info is None:
            raise ValueError(f"{stream_path}: not a partclone v2 stream")
        bitmap = _read_exact(stream, (info.total_blocks + 7) // 8 + CRC_SIZE)
        index = GridIndex(header, bitmap, info, grid_blocks)
        ranges = (info.total_blocks + grid_blocks - 1) // grid_blocks
        counts = [range_bits(index.padded_bits, grid_blocks, r).bit_count() for r in range(ranges)]
        if sum(counts) != info.used_blocks:
            raise ValueError(f"bitmap holds {sum(counts)} used blocks, header says {info.used_blocks}")
        occupied = [(r, n) for r, n in enumerate(counts) if n]

        def jobs() -> Iterator[Callable[[], tuple[str, int, int]]]:
            for _r, used in occupied:
                data = _read_exact(stream, used * info.block_size)
                yield lambda data=data: _store_chunk(store, data, claims)  # type: ignore[misc]

        new_chunks = new_bytes = 0
        claims = _Claims()
        with ThreadPoolExecutor(workers) as pool:
            for (r, used), (sha, stored, added) in zip(occupied, _windowed(pool, jobs(), workers * WINDOW_PER_WORKER)):
                if stored < 0:
                    stored = chunk_path(store, sha).stat().st_size
                index.chunks.append(GridChunk(r, used, sha, stored))
                new_chunks += bool(added)
                new_bytes += added
    raw = info.used_blocks * info.block_size
    return index, CaptureStats(time.perf_counter() - start, raw, new_chunks, new_bytes)


def _fetch(store: Path, chunk: GridChunk, block_size: int) -> bytes:
    """A chunk's raw bytes from the store, checked against its name."""
    data = zstandard.ZstdDecompressor().decompress(chunk_path(store, chunk.sha256).read_bytes(),
                                                   max_output_size=chunk.used_blocks * block_size)
    if len(data) != chunk.used_blocks * block_size or hashlib.sha256(data).hexdigest() != chunk.sha256:
        raise ValueError(f"chunk {chunk.sha256} is damaged in the store")
    return data


def restore_full(index: GridIndex, store: Path, device: str, workers: int) -> float:
    """Every chunk fetched, checked and streamed into partclone.restore; wall seconds."""
    start = time.perf_counter()
    # partclone runs quiet (-q): its stderr is a few lines at most, read once it has ended.
    proc = subprocess.Popen(restore_argv(index.info.fs, device), stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stderr is not None
    try:
        proc.stdin.write(index.header)
        proc.stdin.write(index.bitmap)
        jobs = (lambda c=c: _fetch(store, c, index.info.block_size) for c in index.chunks)
        with ThreadPoolExecutor(workers) as pool:
            for data in _windowed(pool, jobs, workers * WINDOW_PER_WORKER):
                proc.stdin.write(data)
        proc.stdin.close()
    except BaseException:
        proc.kill()
        raise
    finally:
        err = proc.stderr.read()
        proc.wait()
    if proc.returncode:
        raise RuntimeError(f"partclone.restore failed ({proc.returncode}): {err.decode(errors='replace')[-400:]}")
    return time.perf_counter() - start


def _sync_range(fd: int, store: Path, index: GridIndex, chunk: GridChunk) -> tuple[int, int, int]:
    """One range: hash what the target holds at its used blocks; on a mismatch fetch and write it.

    Returns (bytes reused, compressed bytes fetched, bytes written)."""
    block = index.info.block_size
    base = chunk.range_index * index.grid_blocks
    runs = used_runs(range_bits(index.padded_bits, index.grid_blocks, chunk.range_index))
    digest = hashlib.sha256()
    for first, count in runs:
        digest.update(os.pread(fd, count * block, (base + first) * block))
    size = chunk.used_blocks * block
    if digest.hexdigest() == chunk.sha256:
        return size, 0, 0
    data = _fetch(store, chunk, block)
    offset = 0
    for first, count in runs:
        os.pwrite(fd, data[offset:offset + count * block], (base + first) * block)
        offset += count * block
    return 0, chunk.stored_size, size


def restore_seeded(index: GridIndex, store: Path, device: str, workers: int) -> SeededStats:
    """Bring ``device`` (holding anything of the same size) to the version ``index`` describes."""
    start = time.perf_counter()
    reused = fetched = written = 0
    fd = os.open(device, os.O_RDWR)
    try:
        jobs = (lambda c=c: _sync_range(fd, store, index, c) for c in index.chunks)
        with ThreadPoolExecutor(workers) as pool:
            for r, f, w in _windowed(pool, jobs, workers * WINDOW_PER_WORKER):
                reused, fetched, written = reused + r, fetched + f, written + w
        os.fsync(fd)
    finally:
        os.close(fd)
    return SeededStats(time.perf_counter() - start, reused, fetched, written)
