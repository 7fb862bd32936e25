"""Deploy from a storage node over HTTP (issue 17, docs/http-transport.md): no NFS mount.

The task's ``storage.url`` names the image directory: '<url><file>' is one of its files. A path is the imager
server's own route (fetched with the task token, from the server the client talks to); an http(s) URL is an
ordinary web server (nginx …), sent no token.

What happens, in order, before the first write:
- ``manifest.json`` and the small files (partition tables, LVM metadata) are fetched into a local directory,
  which the deploy reads as it reads an NFS image;
- every stream file is asked for its size (HEAD): a missing file or a size other than the manifest's refuses
  the image, naming the URL.
Then each partition stream goes through the same data path as over NFS (datapath.restore_stream: SHA-256 of
the stored bytes → zstd → partclone), read from ``RemoteStream``:
- ``PARALLEL`` range requests of ``SEGMENT`` bytes in flight, handed over in order (a web server that does not
  announce ranges gets one plain GET);
- a dropped connection resumes with ``Range: bytes=<next byte>-`` and the bytes already received are kept;
  network errors, 5xx and 429 are retried with backoff (api.call_with_retries); 4xx are final;
- a file longer or shorter than the manifest says fails, as does a wrong SHA-256 (the deploy then leaves the
  disk blank, as over NFS).
"""
from __future__ import annotations

import logging
import os
import re
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterator, Mapping
from urllib.parse import urlsplit

import requests
import urllib3

from imager import datapath, manifest
from imager.chunkstore import ChunkReader
from imager.incremental import FromChunkStore
from imager.api import Backoff, RetryLater, call_with_retries, reason_of
from imager.errors import ImageNotFound, InvalidImage, InvalidTask
from imager.manifest import MANIFEST, FileEntry
from imager.progress import Progress

log = logging.getLogger(__name__)

# 4 × 8 MiB in flight: on a 200 Mbit/s link with 20 ms of latency one request at a time idles the link
# between segments; the figures are in docs/http-transport.md. Memory: (PARALLEL + 1) × SEGMENT.
SEGMENT = 8 * 1024 * 1024
PARALLEL = 4
MAX_SMALL_FILE = 16 * 1024 * 1024   # manifest, tables, LVM metadata: fetched whole into memory (an index: its size)
READ = 256 * 1024
TIMEOUT = (10.0, 30.0)              # connect, and between two reads of a body
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


@dataclass(frozen=True)
class Remote:
    """Where an image's files are and how to ask for them."""

    base: str                         # absolute URL of the image directory, ending in '/'
    session: requests.Session
    backoff: Backoff = Backoff(attempts=6, base_delay=1.0, max_delay=20.0)
    parallel: int = PARALLEL
    segment: int = SEGMENT

    def url(self, file: str) -> str:
        return self.base + file


def remote_for(url: str, server: str | None = None, authorization: str | None = None,
               session: requests.Session | None = None) -> Remote:
    """The task's ``storage.url``: a path on ``server`` (with the task token's ``authorization`` header) or an
    http(s) URL (no token: a web server is not the imager server)."""
    parts = urlsplit(url)
    if not url.endswith("/"):
        raise InvalidTask(f"the task's image URL {url!r} does not end in '/'")
    if parts.scheme in ("http", "https") and parts.hostname:
        return Remote(url, session or requests.Session())
    if parts.scheme or parts.netloc or not url.startswith("/api/tasks/") or server is None:
        raise InvalidTask(f"the task's image URL {url!r} is neither http(s):// nor a path on the imager server")
    from imager.pinning import session_for  # the imager server's certificate pin applies to its own route
    own = session or session_for(server)
    if authorization:
        own.headers["Authorization"] = authorization
    return Remote(server.rstrip("/") + url, own)


def _final(remote: Remote, file: str, response: requests.Response) -> Exception:
    if response.status_code == 404:
        return ImageNotFound(f"{remote.url(file)}: HTTP 404, the web server has no such file",
                             hint="Check the storage node's HTTP URL and that the image is published there "
                                  "(the same tree as its NFS export).")
    if response.status_code == 416:
        return InvalidImage(f"{remote.url(file)} is shorter than the manifest says (HTTP 416 to a range request)")
    return InvalidImage(f"{remote.url(file)}: HTTP {response.status_code} {reason_of(response)}".rstrip())


def _retryable(response: requests.Response) -> RetryLater | None:
    if response.status_code >= 500 or response.status_code == 429:
        return RetryLater(f"HTTP {response.status_code}", at_least=float(response.headers.get("Retry-After", "0")
                                                                          or 0) if response.status_code == 429 else 0)
    return None


def fetch_small(remote: Remote, file: str, limit: int = MAX_SMALL_FILE) -> bytes:
    """A whole small file (manifest, table, chunk index), retried like any server call."""
    def judge(response: requests.Response) -> bytes | RetryLater:
        retry = _retryable(response)
        if retry:
            return retry
        if response.status_code != 200:
            raise _final(remote, file, response)
        if len(response.content) > limit:
            raise InvalidImage(f"{remote.url(file)} is {len(response.content)} bytes: not an image's small file")
        return response.content
    return call_with_retries(file, remote.base, lambda: remote.session.get(remote.url(file), timeout=TIMEOUT),
                             judge, remote.backoff)


@dataclass(frozen=True)
class FileInfo:
    size: int
    ranges: bool   # the server announces byte ranges (Accept-Ranges: bytes)


def head(remote: Remote, file: str) -> FileInfo:
    def judge(response: requests.Response) -> FileInfo | RetryLater:
        retry = _retryable(response)
        if retry:
            return retry
        if response.status_code != 200:
            raise _final(remote, file, response)
        length = response.headers.get("Content-Length", "")
        if not length.isdigit():
            raise InvalidImage(f"{remote.url(file)}: the web server gives no Content-Length")
        return FileInfo(int(length), response.headers.get("Accept-Ranges", "").lower() == "bytes")
    return call_with_retries(f"HEAD {file}", remote.base,
                             lambda: remote.session.head(remote.url(file), timeout=TIMEOUT, allow_redirects=True),
                             judge, remote.backoff)


def fetch_range(remote: Remote, file: str, start: int, end: int, total: int) -> bytes:
    """Bytes ``start``..``end``-1 of ``file`` (``total`` long): a dropped connection goes on from the last byte
    received with a new Range request; a server that answers 200 instead is read from its start, skipping."""
    got = bytearray()

    def send() -> requests.Response:
        headers = {"Range": f"bytes={start + len(got)}-{end - 1}"}
        return remote.session.get(remote.url(file), headers=headers, timeout=TIMEOUT, stream=True)

    def judge(response: requests.Response) -> bytes | RetryLater:
        with response:
            retry = _retryable(response)
            if retry:
                return retry
            at = start + len(got)
            if response.status_code == 206:
                found = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
                if not found or int(found.group(1)) != at:
                    raise InvalidImage(f"{remote.url(file)}: the server answered the range from byte {at} with "
                                       f"{response.headers.get('Content-Range')!r}")
                if found.group(3) != "*" and int(found.group(3)) != total:
                    raise InvalidImage(f"{remote.url(file)} is {found.group(3)} bytes, the manifest says {total}")
                skip = 0
            elif response.status_code == 200:  # ranges not honoured: the whole file again, up to here skipped
                skip = at
            else:
                raise _final(remote, file, response)
            try:
                for chunk in body_parts(response):
                    if skip:
                        dropped = min(skip, len(chunk))
                        chunk, skip = chunk[dropped:], skip - dropped
                    got.extend(chunk[:end - start - len(got)])
                    if len(got) == end - start:
                        return bytes(got)
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
                log.warning("%s: connection lost after byte %d (%s); resuming with a range request",
                            file, start + len(got), exc)
                return RetryLater(f"connection lost at byte {start + len(got)}")
            return RetryLater(f"the answer ended at byte {start + len(got)} of {end}")
    return call_with_retries(f"{file} bytes {start}-{end - 1}", remote.base, send, judge, remote.backoff)


def body_parts(response: requests.Response) -> Iterator[bytes]:
    """The body as it arrives. ``read1`` (urllib3 ≥ 2.2) gives what has come, so a connection cut loses no byte
    already received (``read(n)`` there waits for n bytes and drops them with the error); urllib3 1.26 (the boot
    image's) gives a short read before the error."""
    read = getattr(response.raw, "read1", None) or response.raw.read
    while chunk := read(READ):
        yield chunk


class RemoteStream:
    """A remote file as something datapath reads (``readinto``): segments fetched ahead, in order."""

    def __init__(self, remote: Remote, file: str, size: int, ranges: bool = True) -> None:
        self.remote, self.file, self.size = remote, file, size
        # Without announced ranges, one request for the whole file (a resume may still get a 206 or a 200).
        self.segment = remote.segment if ranges else max(size, 1)
        self.workers = remote.parallel if ranges else 1
        self._pending: deque[Future[bytes]] = deque()
        self._next = 0
        self._buffer = memoryview(b"")
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix=f"http-{file}")
        self._stop = threading.Event()

    def _fill(self) -> None:
        while len(self._pending) < self.workers and self._next < self.size:
            start, end = self._next, min(self.size, self._next + self.segment)
            self._pending.append(self._pool.submit(self._fetch, start, end))
            self._next = end

    def _fetch(self, start: int, end: int) -> bytes:
        if self._stop.is_set():
            return b""
        return fetch_range(self.remote, self.file, start, end, self.size)

    def readinto(self, buffer: bytearray | memoryview, /) -> int:
        if not self._buffer:
            self._fill()
            if not self._pending:
                return 0
            self._buffer = memoryview(self._pending.popleft().result())
            self._fill()
        n = min(len(buffer), len(self._buffer))
        buffer[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n

    def close(self) -> None:
        self._stop.set()  # segments not yet started fetch nothing; one in flight ends with its own timeouts
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> RemoteStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class HttpImage(FromChunkStore):
    """The image's streams over HTTP: deploy.StreamSource for ``deploy_image``, and the sizes the manifest is
    checked against (``size_of``)."""

    label = ""

    def __init__(self, remote: Remote, files: Mapping[str, FileEntry], infos: Mapping[str, FileInfo],
                 chunks: ChunkReader | None = None) -> None:
        self.remote, self.files, self.infos, self.chunks = remote, files, infos, chunks

    def chunk_reader(self) -> ChunkReader:
        if self.chunks is None:
            raise InvalidTask("the image is chunked but the task gives no chunks_url for its storage node")
        return self.chunks

    def size_of(self, file: str) -> int | None:
        info = self.infos.get(file)
        return info.size if info else None

    def restore(self, file: str, tool: str, device: str, progress: Progress, shrunk: bool = False) -> None:
        meta = self.files[file]
        info = self.infos[file]
        with RemoteStream(self.remote, file, meta["size"], info.ranges) as stream:
            datapath.restore_stream(stream, file, tool, device, expected_sha256=meta.get("sha256"),
                                    expected_size=meta.get("size"), on_progress=progress.add,
                                    on_stored=progress.add_stored, shrunk=shrunk)


def fetch_image(remote: Remote, local_dir: str, chunks: ChunkReader | None = None) -> HttpImage:
    """The manifest and small files into ``local_dir``, every other file's size asked: nothing written to a disk."""
    import json

    raw = fetch_small(remote, MANIFEST)
    try:
        listed = json.loads(raw)
        files = listed["files"]
        small = {name for disk in listed.get("disks", []) for name in manifest.small_files(disk)}
        names = list(files)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InvalidImage(f"{remote.url(MANIFEST)} is not an imager manifest ({exc})") from None
    datapath.write_bytes_fsync(os.path.join(local_dir, MANIFEST), raw)
    infos: dict[str, FileInfo] = {}
    for name in names:
        if not isinstance(name, str) or "/" in name or name.startswith("."):
            raise InvalidImage(f"{remote.url(MANIFEST)} names an unsafe file {name!r}")
        if name in small:
            data = fetch_small(remote, name, limit=max(MAX_SMALL_FILE, int(files[name].get("size") or 0)))
            datapath.write_bytes_fsync(os.path.join(local_dir, name), data)
            infos[name] = FileInfo(len(data), False)
        else:
            infos[name] = head(remote, name)
        expected = files[name].get("size") if isinstance(files[name], dict) else None
        if infos[name].size != expected:
            raise InvalidImage(f"{remote.url(name)} is {infos[name].size} bytes, the manifest says {expected}",
                               hint="The web server holds another version of this file: check the node's HTTP URL "
                                    "and its replication.")
    return HttpImage(remote, files, infos, chunks)
