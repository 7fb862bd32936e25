"""A storage node's chunk store over HTTP (issue 17, docs/http-transport.md#chunk-batches).

- one chunk a request from any web server: ``GET <chunks_url><2 hex>/<sha256>.zst``, ``CHUNKS_PARALLEL`` in
  flight, on the session's own connection pool (plain http), or the careful path (retries with backoff, a
  dropped answer resumed with a range request) for anything unusual;
- many chunks a request from the imager server (``chunks_batch_url``, server_stub/chunkbatch.py): a full deploy
  needs tens of thousands of chunks, and a request each costs both ends more CPU than the chunk's bytes;
- from a plain web server (nginx), over http or https, a group's GETs sent back to back on one connection of
  our own (HTTP/1.1 pipelining) and the answers read in turn; over https with the certificate checks the
  session would make (its CA bundle, REQUESTS_CA_BUNDLE, or none if told so).
A group that fails in any way (refused, cut short, a chunk that does not match its name) is not an error: what
it did not deliver whole is fetched one chunk a request, through the careful path, which says what is wrong;
after GIVE_UP_BATCHES such groups in a row, every chunk is.

Every chunk is checked against its name after decompressing (chunkstore.unpack), whichever way it came.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO, cast
from urllib.parse import urlsplit

import requests
import urllib3

from contract.chunkindex import Chunk, chunk_relpath
from imager.chunkstore import unpack
from imager.errors import ChecksumMismatch
from imager.httpstore import TIMEOUT, Remote, body_parts, fetch_range
from imager.pinning import pooled_adapter

log = logging.getLogger(__name__)

CHUNKS_PARALLEL = 16   # chunks of ~30 KiB one a request: 16 in flight fill 200 Mbit/s at 20 ms of latency
BATCH_CHUNKS = 64      # chunks a batch: ~2 MiB stored, 4 MiB raw
BATCHES_PARALLEL = 4   # batches in flight (the server takes 6 a task)
GIVE_UP_BATCHES = 3    # batches failing in a row before the rest go one chunk a request
READ_BUFFER = 256 * 1024
MAX_HEAD_LINE, MAX_HEAD_LINES = 8192, 100   # an answer's head: what a web server sends, with room


class HttpChunks:
    """``ChunkReader`` over HTTP: ``fetch`` one chunk, ``fetch_many`` a batch (one request when the server can)."""

    def __init__(self, remote: Remote, batch_url: str | None = None) -> None:
        self.remote = remote
        self.where = remote.base
        self.batch_url = batch_url
        self._group = self._batch_post if batch_url else self._pipelined_gets if _pipelinable(remote) else None
        https = self._group == self._pipelined_gets and remote.base.startswith("https://")
        self._tls = _tls_context(remote) if https else None
        if https and self._tls is None:
            self._group = None
        self.batch = BATCH_CHUNKS if self._group else 1
        self.parallel = BATCHES_PARALLEL if self._group else CHUNKS_PARALLEL
        token = remote.session.headers.get("Authorization")
        self._headers = {"Accept-Encoding": "identity", **({"Authorization": str(token)} if token else {})}
        self._fetched = 0
        self._failed_batches = 0
        self._lock = threading.Lock()

    def fetch(self, chunk: Chunk, raw_size: int) -> bytes:
        name = chunk_relpath(chunk.sha256).split("/", 1)[1]   # '<2 hex>/<sha>.zst' below the store
        packed = self._plain_get(name, chunk.stored_size)
        if packed is None:  # anything unusual: the careful path retries, resumes and says what is wrong
            packed = fetch_range(self.remote, name, 0, chunk.stored_size, chunk.stored_size)
        self._count(len(packed))
        return unpack(packed, chunk, raw_size, self.remote.url(name))

    def fetch_many(self, chunks: list[Chunk], raw_sizes: list[int]) -> list[bytes]:
        """Each chunk's raw bytes, in order: one batch request, then one request each for what it lacked."""
        got = self._group(chunks) if self._group and len(chunks) > 1 and self._batches_work() else []
        out: list[bytes | None] = []
        for at, (chunk, raw_size) in enumerate(zip(chunks, raw_sizes)):
            out.append(None)
            if at < len(got):
                try:
                    out[at] = unpack(got[at], chunk, raw_size, f"{self.batch_url or self.where} (a batch)")
                except ChecksumMismatch as exc:
                    log.warning("%s; fetching it alone", exc)
                    self._batch_failed("a chunk did not match its name")
        lacking = [at for at, data in enumerate(out) if data is None]
        if got and not lacking:
            self._failed_batches = 0  # failures are counted in a row
        if len(lacking) > 1:  # as many GETs in flight as without batches: this call is one of `parallel`
            with ThreadPoolExecutor(max(1, CHUNKS_PARALLEL // self.parallel), thread_name_prefix="chunk-gets") as pool:
                for at, data in zip(lacking, pool.map(lambda at: self.fetch(chunks[at], raw_sizes[at]), lacking)):
                    out[at] = data
        elif lacking:
            out[lacking[0]] = self.fetch(chunks[lacking[0]], raw_sizes[lacking[0]])
        return [data for data in out if data is not None]

    def fetched_bytes(self) -> int:
        return self._fetched

    def _count(self, size: int) -> None:
        with self._lock:
            self._fetched += size

    def _batches_work(self) -> bool:
        return self._failed_batches < GIVE_UP_BATCHES

    def _batch_post(self, chunks: list[Chunk]) -> list[bytes]:
        """The stored bytes of the leading chunks a batch answer delivered whole (all of them, normally)."""
        assert self.batch_url is not None
        pieces: list[bytes] = []
        body = json.dumps({"chunks": [chunk.sha256 for chunk in chunks]})
        try:
            with self.remote.session.post(self.batch_url, data=body, stream=True, timeout=TIMEOUT,
                                          headers={"Content-Type": "application/json",
                                                   "Accept-Encoding": "identity"}) as answer:
                sizes = answer.headers.get("Chunk-Sizes", "")
                expected = ",".join(str(chunk.stored_size) for chunk in chunks)
                if answer.status_code != 200 or sizes != expected:
                    self._batch_failed(f"HTTP {answer.status_code}" if answer.status_code != 200 else
                                       "the chunk sizes it announced are not the index's")
                    return []
                buffer = bytearray()
                sizes_left = [chunk.stored_size for chunk in reversed(chunks)]
                for part in body_parts(answer):
                    buffer += part
                    while sizes_left and len(buffer) >= sizes_left[-1]:
                        size = sizes_left.pop()
                        pieces.append(bytes(buffer[:size]))
                        del buffer[:size]
            why = "the answer ended early"
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            why = f"{type(exc).__name__}: {exc}"
        self._count(sum(map(len, pieces)))
        if len(pieces) < len(chunks):
            self._batch_failed(f"{why}, after {len(pieces)} of {len(chunks)} chunks")
        return pieces

    def _pipelined_gets(self, chunks: list[Chunk]) -> list[bytes]:
        """The stored bytes of the leading chunks that came whole from GETs sent back to back on one connection
        (HTTP/1.1 pipelining: a web server answers them in order), each a plain 200 with a Content-Length."""
        parts = urlsplit(self.remote.base)
        token = self._headers.get("Authorization")
        head = f"Host: {parts.netloc}\r\nAccept-Encoding: identity\r\n" + (f"Authorization: {token}\r\n" if token else "")
        asked = "".join(f"GET {parts.path}{chunk_relpath(chunk.sha256).split('/', 1)[1]} HTTP/1.1\r\n{head}\r\n"
                        for chunk in chunks)
        pieces: list[bytes] = []
        why = "the connection closed early"
        try:
            default_port = 443 if self._tls else 80
            with socket.create_connection((parts.hostname or "", parts.port or default_port),
                                          timeout=TIMEOUT[0]) as raw, self._wrapped(raw, parts.hostname) as sock:
                sock.settimeout(TIMEOUT[1])
                sock.sendall(asked.encode("latin-1"))
                answers = cast(BinaryIO, sock.makefile("rb", buffering=READ_BUFFER))
                for chunk in chunks:
                    status, length, closes = _answer_head(answers)
                    if status != 200 or length != chunk.stored_size:
                        why = f"HTTP {status}, {length} bytes for a chunk of {chunk.stored_size}"
                        break
                    body = answers.read(length)
                    if len(body) < length:
                        break
                    pieces.append(body)
                    if closes:  # the server ends the connection here (its limit of requests a connection)
                        break
        except (OSError, ValueError) as exc:
            why = f"{type(exc).__name__}: {exc}"
        self._count(sum(map(len, pieces)))
        if len(pieces) < len(chunks):
            self._batch_failed(f"{why}, after {len(pieces)} of {len(chunks)} chunks")
        return pieces

    def _wrapped(self, sock: socket.socket, hostname: str | None) -> socket.socket:
        return self._tls.wrap_socket(sock, server_hostname=hostname) if self._tls else sock

    def _batch_failed(self, why: str) -> None:
        with self._lock:
            self._failed_batches += 1
            last = self._failed_batches == GIVE_UP_BATCHES
        log.warning("a batch of chunks from %s failed (%s)%s", self.batch_url, why,
                    "; the rest are fetched one a request" if last else "; what it lacked is fetched one by one")

    def _plain_get(self, name: str, size: int) -> bytes | None:
        """One GET on the session's own connection pool, without requests' per-call machinery (a full deploy
        from a plain web server asks for tens of thousands of chunks: requests' overhead a call would be most of
        the client's CPU). Plain http only (https keeps the session's certificate checks); None unless a whole
        200 came."""
        url = self.remote.url(name)
        if not url.startswith("http://"):
            return None
        try:
            pool = self.remote.session.get_adapter(url).poolmanager.connection_from_url(url)  # type: ignore[attr-defined]
            answer = pool.urlopen("GET", urlsplit(url).path, headers=self._headers, retries=False, redirect=False,
                                  timeout=urllib3.Timeout(connect=TIMEOUT[0], read=TIMEOUT[1]))
        except (urllib3.exceptions.HTTPError, OSError, AttributeError):
            return None
        data = answer.data
        return data if answer.status == 200 and len(data) == size else None


def _pipelinable(remote: Remote) -> bool:
    """GETs can go back to back on a socket of our own: no proxy in the way, and over https only with the
    session's usual certificate checks (a pinned certificate is the imager server's, which sends batches)."""
    plain = type(remote.session.get_adapter(remote.base)) is requests.adapters.HTTPAdapter
    return remote.base.startswith(("http://", "https://")) and plain and not remote.session.proxies and \
        not requests.utils.get_environ_proxies(remote.base)


def _tls_context(remote: Remote) -> ssl.SSLContext | None:
    """The checks requests would make for ``remote``: its CA bundle (the session's ``verify``, else
    REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE, else requests' own), the host name, or none when verify is False.
    None when the bundle cannot be loaded: then one GET a chunk, and requests' own path says what is wrong."""
    verify = remote.session.merge_environment_settings(remote.base, {}, None, None, None)["verify"]
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    where = verify if isinstance(verify, str) else requests.utils.DEFAULT_CA_BUNDLE_PATH
    try:
        if os.path.isdir(where):
            return ssl.create_default_context(capath=where)
        return ssl.create_default_context(cafile=where)
    except (OSError, ssl.SSLError) as exc:
        log.warning("chunks from %s: one GET a chunk (no TLS context for pipelining: %s)", remote.base, exc)
        return None


def _answer_head(answers: BinaryIO) -> tuple[int, int, bool]:
    """An HTTP/1.1 answer's status, Content-Length (-1 without one, or with chunked encoding) and whether the
    server closes the connection after it; ValueError for anything that is not an HTTP/1.x answer."""
    line = answers.readline(MAX_HEAD_LINE)
    version, _, rest = line.decode("latin-1").partition(" ")
    if not version.startswith("HTTP/1.") or not rest[:3].isdigit():
        raise ValueError(f"not an HTTP answer: {line[:80]!r}")
    length, encoded, closes = -1, False, version == "HTTP/1.0"
    for _ in range(MAX_HEAD_LINES):
        field = answers.readline(MAX_HEAD_LINE).decode("latin-1")
        if field in ("\r\n", "\n", ""):
            return int(rest[:3]), -1 if encoded else length, closes
        name, _, value = field.partition(":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == "content-length" and value.isdigit():
            length = int(value)
        elif name == "transfer-encoding":
            encoded = value != "identity"
        elif name == "connection":
            closes = "close" in value if version != "HTTP/1.0" else "keep-alive" not in value
    raise ValueError("an answer with too many header lines")


def _absolute(image_remote: Remote, url: str) -> str:
    """``url`` as given (a web server's) or a path on the imager server the image comes from."""
    if urlsplit(url).scheme:
        return url
    origin = image_remote.base[:len(image_remote.base) - len(urlsplit(image_remote.base).path)]
    return origin + url


def chunks_for(image_remote: Remote, chunks_url: str, batch_url: str | None = None) -> HttpChunks:
    """The node's chunk store next to the image: the same session (token, pin), its own connection pool."""
    session = image_remote.session
    base = _absolute(image_remote, chunks_url)
    batch = _absolute(image_remote, batch_url) if batch_url else None
    if batch and not batch.startswith(base):
        session.mount(batch, pooled_adapter(session, batch, BATCHES_PARALLEL))
    session.mount(base, pooled_adapter(session, base, CHUNKS_PARALLEL))
    return HttpChunks(Remote(base, session, image_remote.backoff), batch)
