"""The data path: every byte of an image passes through here.

capture: partclone's stdout → zstd (multi-threaded) → SHA-256 of the stored bytes → file
deploy:  file (or udp-receiver's pipe) → SHA-256 of the stored bytes → zstd decompress → partclone's stdin

The checksum is of the stored (compressed) file, so ``imager verify`` can check
an image without decompressing it; zstd's own frame checksum additionally
guards the decompressed stream.  Both directions are one pass, one thread of
Python plus zstd's worker threads; chunks are large so per-call overhead
disappears next to the compression work.
"""
from __future__ import annotations

import bz2
import fcntl
import hashlib
import lzma
import os
import zlib
from dataclasses import dataclass
from typing import IO, Any, Callable, Protocol, cast

import zstandard

from imager import partclone, process
from imager.errors import ChecksumMismatch, InvalidImage

CHUNK = 4 * 1024 * 1024
# Level 2: on /usr, 21 % less CPU than level 3 for a 3 % larger image (bench/engine.py, issue 3 note).
DEFAULT_LEVEL = 2
# Bigger pipes mean fewer wake-ups between partclone and us (Linux caps at 1 MiB unprivileged).
PIPE_SIZE = 1024 * 1024
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)

ProgressFn = Callable[[int], None]


class Readable(Protocol):
    """A file, or a pipe from a process: read into our buffer, no copy."""

    def readinto(self, buffer: bytearray | memoryview, /) -> int | None: ...


@dataclass
class StreamResult:
    raw_bytes: int      # bytes of the partclone stream (uncompressed)
    stored_bytes: int   # bytes written to / read from the image file
    sha256: str         # of the stored bytes


def widen_pipe(stream: IO) -> None:
    """Ask for a 1 MiB pipe buffer; harmless when the fd is not a pipe."""
    try:
        fcntl.fcntl(stream.fileno(), _F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:
        pass


class _HashingFile:
    """A write-only file that hashes and counts what passes through it."""

    def __init__(self, fileobj: IO[bytes]) -> None:
        self._file = fileobj
        self.sha256 = hashlib.sha256()
        self.count = 0

    def write(self, data: bytes | memoryview) -> int:
        self.sha256.update(data)
        self.count += len(data)
        return self._file.write(data)

    def flush(self) -> None:
        self._file.flush()


def compress_to_file(source: Readable, dest_path: str, *, level: int = DEFAULT_LEVEL, threads: int = -1,
                     on_progress: ProgressFn | None = None,
                     on_head: Callable[[bytes], None] | None = None,
                     on_stored: ProgressFn | None = None) -> StreamResult:
    """Read ``source`` to EOF and store it zstd-compressed at ``dest_path`` (fsynced).

    ``on_head`` sees the first chunk (at least 4 KiB unless the stream is
    shorter) before anything is written, e.g. to read partclone's header.
    """
    cctx = zstandard.ZstdCompressor(level=level, threads=threads, write_checksum=True)
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    raw = 0
    with open(dest_path, "wb") as out:
        sink = _HashingFile(out)
        with cctx.stream_writer(cast(IO[bytes], sink), closefd=False) as zwriter:
            first = True
            while True:
                n = source.readinto(buf)
                if not n:
                    break
                if first and on_head is not None:
                    while n < 4096:
                        more = source.readinto(view[n:])
                        if not more:
                            break
                        n += more
                    on_head(bytes(view[:n]))
                first = False
                before = sink.count
                zwriter.write(view[:n])
                raw += n
                if on_stored and sink.count > before:  # zstd emits output in bursts: counted as it comes
                    on_stored(sink.count - before)
                if on_progress:
                    on_progress(n)
        out.flush()
        os.fsync(out.fileno())
    return StreamResult(raw, sink.count, sink.sha256.hexdigest())


def decompress_from_file(src_path: str, dest: IO[bytes], *, expected_sha256: str | None = None,
                         expected_size: int | None = None,
                         on_progress: ProgressFn | None = None,
                         on_stored: ProgressFn | None = None) -> StreamResult:
    """Stream the zstd file at ``src_path`` decompressed into ``dest`` (see decompress_stream)."""
    with open(src_path, "rb") as src:
        return decompress_stream(src, os.path.basename(src_path), dest, expected_sha256=expected_sha256,
                                 expected_size=expected_size, on_progress=on_progress, on_stored=on_stored)


def decompress_stream(src: Readable, name: str, dest: IO[bytes], *, expected_sha256: str | None = None,
                      expected_size: int | None = None,
                      on_progress: ProgressFn | None = None,
                      on_stored: ProgressFn | None = None) -> StreamResult:
    """Stream the zstd bytes read from ``src`` (a file, or a pipe from udp-receiver) decompressed into ``dest``.

    The stored bytes are hashed on the way; a mismatch with the manifest
    raises ChecksumMismatch after the stream ends (the caller fails the task).
    ``on_progress`` counts decompressed bytes.
    """
    dctx = zstandard.ZstdDecompressor()
    sha = hashlib.sha256()
    stored = 0
    raw = 0

    class _Counting:
        def write(self, data: bytes) -> int:
            nonlocal raw
            dest.write(data)
            raw += len(data)
            if on_progress:
                on_progress(len(data))
            return len(data)

    buf = bytearray(CHUNK)
    view = memoryview(buf)
    try:
        with dctx.stream_writer(cast(IO[bytes], _Counting()), closefd=False) as zwriter:
            while True:
                n = src.readinto(buf)
                if not n:
                    break
                sha.update(view[:n])
                stored += n
                if on_stored:
                    on_stored(n)
                zwriter.write(view[:n])
    except zstandard.ZstdError as exc:
        raise InvalidImage(f"{name} is not a valid zstd stream: {exc}") from exc
    digest = sha.hexdigest()
    if expected_size is not None and stored != expected_size:
        raise ChecksumMismatch(f"{name} is {stored} bytes, the manifest says {expected_size}")
    if expected_sha256 is not None and digest != expected_sha256:
        raise ChecksumMismatch(f"{name}: SHA-256 {digest} does not match the manifest's {expected_sha256}")
    return StreamResult(raw, stored, digest)


def restore_stream(src: Readable, name: str, tool: str, device: str, *, expected_sha256: str | None,
                   expected_size: int | None, on_progress: ProgressFn | None = None,
                   on_stored: ProgressFn | None = None, shrunk: bool = False) -> None:
    """Stored bytes from ``src`` → SHA-256 check → zstd decompress → ``partclone`` restore onto ``device``."""
    feed_partclone(tool, device, lambda sink: decompress_stream(
        src, name, sink, expected_sha256=expected_sha256, expected_size=expected_size, on_progress=on_progress,
        on_stored=on_stored), shrunk=shrunk)


def feed_partclone(tool: str, device: str, feed: Callable[[IO[bytes]], object], shrunk: bool = False) -> None:
    """Run partclone's restore onto ``device`` with ``feed`` writing the stream into its stdin."""
    feed_process(partclone.restore_argv(tool, device, shrunk), feed)


def feed_process(argv: list[str], feed: Callable[[IO[bytes]], object]) -> None:
    """Run ``argv`` with ``feed`` writing into its stdin; its failure (with its own reason) wins."""
    writer = process.spawn(argv, stdin=process.PIPE, stdout=process.DEVNULL)
    widen_pipe(writer.stdin)
    try:
        feed(writer.stdin)
    except BrokenPipeError:
        writer.wait()  # partclone stopped reading: its own message is the real reason
        raise
    except BaseException:
        writer.kill()
        raise
    writer.wait()


def decompress_pieces(paths: list[str], compression: str, dest: IO[bytes],
                      on_progress: ProgressFn | None = None, check_end: bool = True) -> int:
    """Concatenate split pieces (FOG .img, .img.001…, Clonezilla .aa…) and decompress them into ``dest``.

    gzip may hold several members (pigz, concatenated files), zstd several frames, xz several streams.
    ``check_end``: a stream that stops mid-member is truncated (off only to read the first bytes).
    Returns the decompressed byte count.
    """
    total = 0

    def emit(data: bytes) -> None:
        nonlocal total
        if data:
            dest.write(data)
            total += len(data)
            if on_progress:
                on_progress(len(data))

    new_decoder = _DECODERS.get(compression)
    if new_decoder is None and compression != "none":
        raise InvalidImage(f"{os.path.basename(paths[0])}: {compression} compression is not supported")
    decoder = new_decoder() if new_decoder else None
    try:
        for path in paths:
            with open(path, "rb") as src:
                while chunk := src.read(CHUNK):
                    if decoder is None:
                        emit(chunk)
                        continue
                    while chunk:
                        emit(decoder.decompress(chunk))
                        chunk = decoder.unused_data
                        if chunk and new_decoder:  # the next gzip member, zstd frame, xz or bzip2 stream
                            decoder = new_decoder()
    except (zlib.error, zstandard.ZstdError, lzma.LZMAError, OSError, EOFError) as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            raise
        raise InvalidImage(f"{os.path.basename(paths[0])}…: corrupt {compression} stream: {exc}") from exc
    if check_end and decoder is not None and not decoder.eof:
        raise InvalidImage(f"{os.path.basename(paths[-1])}: the {compression} stream is truncated")
    return total


_DECODERS: dict[str, Callable[[], Any]] = {
    "gzip": lambda: zlib.decompressobj(zlib.MAX_WBITS | 16),
    "zstd": lambda: zstandard.ZstdDecompressor().decompressobj(),
    "xz": lzma.LZMADecompressor,
    "bzip2": bz2.BZ2Decompressor,
}


def hash_file(path: str) -> tuple[int, str]:
    """Size and SHA-256 of a stored file, for offline verification."""
    sha = hashlib.sha256()
    size = 0
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(path, "rb") as f:
        while n := f.readinto(buf):
            sha.update(view[:n])
            size += n
    return size, sha.hexdigest()


def write_bytes_fsync(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
