"""A chunked partition's multicast stream, written into udp-sender's stdin (docs/multicast.md#chunked-images).

udp-sender sends one byte stream per file.  A chunked partition has no such file: its index (``dNpM.cidx``)
names chunks in the node's store.  The stream is a concatenation of zstd frames: one holding the index's
partclone header and bitmap, then every chunk file the index names, in index order, as stored (each is one
frame).  Decompressed, that is partclone's ``-a0`` stream, which the receivers check chunk by chunk against
the index they read from the image directory (imager/chunkstream.py).

Why a pipe and a thread, not a file assembled first: nothing is written to disk (a full disk cannot fail a
session, a dead server leaves no file behind), the first byte goes out at once, and the writer's life is tied
to udp-sender's: when udp-sender ends or is stopped, the pipe breaks and the writer returns.  Only chunk files
under the node's own ``.chunks/`` are read (names come from the index: 64 hex digits, no path to escape).

    feed = ChunkFeed.open(node_root, index_path)   # reads and checks the index; IndexError_ if it is not one
    sender = SenderProcess(argv_without_file, stdin=feed.read_fd)
    sender.start(); feed.start()
    ...
    feed.close()     # always: closes our ends of the pipe, joins the writer (udp-sender stopped first)
    feed.error       # a chunk that could not be read (the session fails with it)
"""
from __future__ import annotations

import fcntl
import os
import threading

import zstandard

from contract import chunkindex
from contract.chunkindex import ChunkIndex

PIPE_SIZE = 1024 * 1024
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
JOIN_TIMEOUT = 10.0   # s: the writer returns at once once the pipe's reader is gone


def head_frame(index: ChunkIndex) -> bytes:
    """The stream's first frame: partclone's header and bitmap, as the index holds them."""
    return zstandard.ZstdCompressor(level=3, write_checksum=True).compress(index.header + index.bitmap)


def chunk_file(root: str, sha256: str) -> str:
    """Where a chunk is read from: the store, else the collector's trash (a chunk quarantined by mistake is
    still whole there until the next run; reading it does not move it)."""
    path = os.path.join(root, chunkindex.chunk_relpath(sha256))
    if os.path.exists(path):
        return path
    trashed = os.path.join(root, chunkindex.CHUNKS_DIR, chunkindex.TRASH_DIR, sha256 + ".zst")
    return trashed if os.path.exists(trashed) else path


def missing_chunks(root: str, index: ChunkIndex, limit: int = 5) -> list[str]:
    """Up to ``limit`` chunk names of the index that the node's store lacks."""
    missing: list[str] = []
    for chunk in index.chunks:
        if not os.path.exists(chunk_file(root, chunk.sha256)):
            missing.append(chunk.sha256)
            if len(missing) >= limit:
                break
    return missing


class ChunkFeed:
    """Writes one chunked partition's stream into a pipe; ``read_fd`` is udp-sender's stdin."""

    def __init__(self, root: str, index: ChunkIndex, name: str) -> None:
        self.root = root
        self.index = index
        self.name = name
        self.error: str | None = None     # why the stream stopped short (udp-sender then sends an early end)
        self.bytes_written = 0
        self.read_fd, self._write_fd = os.pipe()   # both close-on-exec: only udp-sender's dup'd stdin survives
        try:
            fcntl.fcntl(self._write_fd, _F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            pass
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._write_all, name=f"chunkfeed-{name}", daemon=True)

    @classmethod
    def open(cls, root: str, index_path: str) -> "ChunkFeed":
        return cls(root, chunkindex.read(index_path), os.path.basename(index_path))

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Our end of udp-sender's stdin closed (it holds its own), the writer joined. Call after udp-sender was
        started (or failed to start) and, on any early end, after it was stopped: the pipe then has no reader,
        and a writer blocked in write() gets EPIPE and returns."""
        with self._lock:
            if self.read_fd >= 0:
                os.close(self.read_fd)
                self.read_fd = -1
        if self._thread.ident is None:
            self._close_writer()   # never started: nobody else closes it
        else:
            self._thread.join(JOIN_TIMEOUT)   # its own finally closes the write end

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _close_writer(self) -> None:
        with self._lock:
            if self._write_fd >= 0:
                os.close(self._write_fd)
                self._write_fd = -1

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self._write_fd, view)
            view = view[n:]
            self.bytes_written += n

    def _write_all(self) -> None:
        current = "its header"
        try:
            self._write(head_frame(self.index))
            for i, chunk in enumerate(self.index.chunks, 1):
                current = f"chunk {i}/{len(self.index.chunks)} ({chunk.sha256})"
                with open(chunk_file(self.root, chunk.sha256), "rb") as f:
                    data = f.read()
                self._write(data)
        except BrokenPipeError:
            pass   # udp-sender ended or was stopped: nothing more to send, nothing to report
        except OSError as exc:
            self.error = f"{self.name}: {current} could not be read: {exc.strerror or exc}"
        finally:
            self._close_writer()   # EOF: udp-sender sends what it has and ends
