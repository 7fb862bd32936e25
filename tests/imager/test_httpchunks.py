"""The chunk client over HTTP (issue 17, imager/httpchunks.py) against real servers on loopback: a node's chunk
store served one chunk a GET and many a batch POST (the server's own ``send_chunks``), by a small aiohttp app in
a thread that misbehaves on demand (refuses, cuts a batch short, announces other sizes, damages a chunk); and
the imager server's real route, end to end. Whatever a batch did not deliver whole comes one chunk a GET, exact."""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
import zstandard
from aiohttp import web

from contract.chunkindex import Chunk, chunk_relpath
from imager import httpchunks, httpstore, pinning
from imager.api import Backoff
from imager.errors import ChecksumMismatch, ImageNotFound, ImagerError, ServerIdentityError
from server_stub.chunkbatch import send_chunks
from tests.imager.webservers import nginx_server, python_http_server

FAST = Backoff(attempts=2, base_delay=0.01, max_delay=0.01)


@dataclass
class Stored:
    """A chunk of a test store: its index record and its raw bytes."""

    chunk: Chunk
    raw: bytes

    @property
    def sha(self) -> str:
        return self.chunk.sha256


def make_store(root: Path, count: int, seed: int = 17) -> list[Stored]:
    """``count`` chunks of 64 KiB of partly random data (each its own share: stored sizes differ), zstd frames
    named by the SHA-256 of their raw bytes."""
    rng = random.Random(seed)
    compressor = zstandard.ZstdCompressor(level=3, write_checksum=True)
    stored = []
    for at in range(count):
        share = 256 + 7 * at % 512
        raw = b"".join(rng.randbytes(share) + bytes([at % 256]) * (1024 - share) for _ in range(64))
        sha = hashlib.sha256(raw).hexdigest()
        packed = compressor.compress(raw)
        path = root / chunk_relpath(sha)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(packed)
        stored.append(Stored(Chunk(at, len(raw) // 4096, len(packed), sha), raw))
    return stored


def damaged(data: bytes) -> bytes:
    """The same length, one byte in the middle changed."""
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]


@dataclass
class ChunkServer:
    """What the test server saw and how it misbehaves. ``posts``: each batch's names; ``gets``: each GET's chunk.
    Batches: ``status`` answers every batch with it (an error, unless ``whole``: then with the right sizes and
    bytes); ``cut`` closes the connection after that many body bytes (or, ``ended``, ends the answer there cleanly:
    chunked encoding, no length); ``sizes`` is announced as Chunk-Sizes instead of the true ones; ``bad_in_batch``
    chunks are sent damaged in a batch, ``bad_get`` to a GET. Without any of them a batch is
    ``server_stub.chunkbatch.send_chunks``'s."""

    root: Path
    url: str = ""
    posts: list[list[str]] = field(default_factory=list)
    gets: list[str] = field(default_factory=list)
    status: int | None = None
    whole: bool = False
    cut: int | None = None
    ended: bool = False
    sizes: str | None = None
    bad_in_batch: set[str] = field(default_factory=set)
    bad_get: set[str] = field(default_factory=set)
    get_delay: float = 0.0
    in_flight: int = 0
    most_in_flight: int = 0

    def path(self, sha: str) -> Path:
        return self.root / chunk_relpath(sha)


@contextlib.contextmanager
def chunk_server(root: Path, tls: ssl.SSLContext | None = None) -> Iterator[ChunkServer]:
    """``<url>chunks/<2 hex>/<sha>.zst`` (GET, with ranges) and ``<url>batch`` (POST), in a thread of its own
    (over https with ``tls``)."""
    state = ChunkServer(root)

    async def one(request: web.Request) -> web.StreamResponse:
        sha = request.match_info["name"].removesuffix(".zst")
        state.gets.append(sha)
        state.in_flight += 1
        state.most_in_flight = max(state.most_in_flight, state.in_flight)
        try:
            await asyncio.sleep(state.get_delay)
        finally:
            state.in_flight -= 1
        if not state.path(sha).is_file():
            raise web.HTTPNotFound()
        if sha in state.bad_get:
            return web.Response(body=damaged(state.path(sha).read_bytes()), content_type="application/octet-stream")
        return web.FileResponse(state.path(sha))

    async def batch(request: web.Request) -> web.StreamResponse:
        names = (await request.json())["chunks"]
        state.posts.append(names)
        if state.status is not None and not state.whole:
            return web.json_response({"error": "no batches here", "code": "test"}, status=state.status)
        if state.status is None and state.cut is None and state.sizes is None and not state.bad_in_batch:
            return await send_chunks(request, str(state.root), names)
        files = [state.path(name).read_bytes() for name in names]
        body = b"".join(damaged(data) if name in state.bad_in_batch else data for name, data in zip(names, files))
        response = web.StreamResponse(status=state.status or 200, headers={
            "Content-Type": "application/octet-stream",
            "Chunk-Sizes": state.sizes if state.sizes is not None else ",".join(str(len(f)) for f in files)})
        if state.ended:
            response.enable_chunked_encoding()
        else:
            response.content_length = len(body)
        await response.prepare(request)
        if state.cut is None or state.ended:
            await response.write(body[:state.cut])
            await response.write_eof()
            return response
        await response.write(body[:state.cut])
        assert request.transport is not None
        request.transport.close()  # what was written goes first, then the connection ends, the body short
        return response

    app = web.Application()
    app.router.add_get("/chunks/{sub:[0-9a-f]{2}}/{name}", one)
    app.router.add_post("/batch", batch)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
        loop.run_until_complete(site.start())
        port = runner.addresses[0][1]
        state.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/"
        started.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(10), "the test server did not start"
    try:
        yield state
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def reader(server: ChunkServer, batches: bool = True) -> httpchunks.HttpChunks:
    """The client as a deploy builds it (chunks_for), with short retry delays."""
    session = requests.Session()
    image = httpstore.Remote(f"{server.url}images/img/", session, FAST)
    return httpchunks.chunks_for(image, f"{server.url}chunks/", f"{server.url}batch" if batches else None)


def fetch_all(chunks: httpchunks.HttpChunks, stored: list[Stored]) -> list[bytes]:
    return chunks.fetch_many([s.chunk for s in stored], [len(s.raw) for s in stored])


@pytest.fixture
def store(tmp_path: Path) -> list[Stored]:
    return make_store(tmp_path, 5)


@pytest.fixture
def server(tmp_path: Path, store: list[Stored]) -> Iterator[ChunkServer]:
    with chunk_server(tmp_path) as state:
        yield state


def stored_bytes(stored: list[Stored]) -> int:
    return sum(s.chunk.stored_size for s in stored)


def test_a_whole_batch_answer_is_used_as_it_came(server: ChunkServer, store: list[Stored]) -> None:
    chunks = reader(server)
    assert chunks.batch == httpchunks.BATCH_CHUNKS and chunks.parallel == httpchunks.BATCHES_PARALLEL
    twice = store + store[1:3]  # a name may repeat within a batch
    assert fetch_all(chunks, twice) == [s.raw for s in twice]
    assert server.posts == [[s.sha for s in twice]] and server.gets == []
    assert chunks.fetched_bytes() == stored_bytes(twice)


@pytest.mark.parametrize("into", [0, 1, 100])
def test_a_batch_cut_short_gives_the_chunks_before_the_cut_and_the_rest_come_one_a_get(
        server: ChunkServer, store: list[Stored], into: int) -> None:
    """Cut ``into`` bytes into the third chunk: the first two from the batch, the third onwards by GET."""
    server.cut = store[0].chunk.stored_size + store[1].chunk.stored_size + into
    chunks = reader(server)
    assert fetch_all(chunks, store) == [s.raw for s in store]
    assert len(server.posts) == 1
    assert sorted(server.gets) == sorted([s.sha for s in store[2:]])
    assert chunks.fetched_bytes() == stored_bytes(store)  # the cut chunk's first bytes are not counted twice


@pytest.mark.parametrize("into", [0, 100])
def test_a_batch_ending_cleanly_but_short_is_used_up_to_its_last_whole_chunk(
        server: ChunkServer, store: list[Stored], into: int) -> None:
    """No Content-Length (chunked encoding), the answer ends ``into`` bytes into the fourth chunk."""
    server.cut, server.ended = stored_bytes(store[:3]) + into, True
    chunks = reader(server)
    assert fetch_all(chunks, store) == [s.raw for s in store]
    assert len(server.posts) == 1 and sorted(server.gets) == sorted([s.sha for s in store[3:]])
    assert chunks.fetched_bytes() == stored_bytes(store)  # the fourth chunk's first bytes are not counted


def test_a_batch_announcing_sizes_other_than_the_index_is_not_used(server: ChunkServer,
                                                                    store: list[Stored]) -> None:
    """The body is right, the sizes are not the index's (two swapped): nothing is split out of it."""
    sizes = [s.chunk.stored_size for s in store]
    sizes[0], sizes[1] = sizes[1], sizes[0]
    assert sizes[0] != sizes[1]
    server.sizes = ",".join(map(str, sizes))
    chunks = reader(server)
    assert fetch_all(chunks, store) == [s.raw for s in store]
    assert len(server.posts) == 1 and sorted(server.gets) == sorted([s.sha for s in store])
    assert chunks.fetched_bytes() == stored_bytes(store)


@pytest.mark.parametrize("sizes", ["", "1,2,3"])
def test_a_batch_without_the_right_number_of_sizes_is_not_used(server: ChunkServer, store: list[Stored],
                                                               sizes: str) -> None:
    server.sizes = sizes
    chunks = reader(server)
    assert fetch_all(chunks, store) == [s.raw for s in store]
    assert sorted(server.gets) == sorted([s.sha for s in store])


@pytest.mark.parametrize("status", [404, 405, 500])
def test_a_refused_batch_is_fetched_one_a_get(server: ChunkServer, store: list[Stored], status: int) -> None:
    server.status = status
    chunks = reader(server)
    assert fetch_all(chunks, store) == [s.raw for s in store]
    assert len(server.posts) == 1 and sorted(server.gets) == sorted([s.sha for s in store])
    assert chunks.fetched_bytes() == stored_bytes(store)


@pytest.mark.parametrize("status", [206, 500])
def test_an_answer_other_than_200_is_not_split_even_with_the_right_sizes(server: ChunkServer, store: list[Stored],
                                                                        status: int) -> None:
    server.status, server.whole = status, True
    chunks = reader(server)
    assert fetch_all(chunks, store) == [s.raw for s in store]
    assert len(server.posts) == 1 and sorted(server.gets) == sorted([s.sha for s in store])


def test_after_three_failed_batches_in_a_row_no_more_are_asked(server: ChunkServer, store: list[Stored]) -> None:
    server.status = 404
    chunks = reader(server)
    for _ in range(5):
        assert fetch_all(chunks, store[:3]) == [s.raw for s in store[:3]]
    assert len(server.posts) == httpchunks.GIVE_UP_BATCHES == 3
    assert sorted(server.gets) == sorted([s.sha for s in store[:3]] * 5)
    server.status = None  # the server would answer now: the client no longer asks
    assert fetch_all(chunks, store) == [s.raw for s in store]
    assert len(server.posts) == 3


def test_a_batch_that_works_resets_the_count_of_failures(server: ChunkServer, store: list[Stored]) -> None:
    """Two failures, a success, two failures, a success: failures are counted in a row, batches go on."""
    chunks = reader(server)
    for status in (404, 404, None, 404, 404, None):
        server.status = status
        assert fetch_all(chunks, store) == [s.raw for s in store]
    assert len(server.posts) == 6
    assert sorted(server.gets) == sorted([s.sha for s in store] * 4)


def test_failures_of_any_kind_count_towards_giving_up(server: ChunkServer, store: list[Stored]) -> None:
    """Refused, cut short, sizes not the index's: three in a row, then one chunk a GET."""
    chunks = reader(server)
    server.status = 405
    fetch_all(chunks, store)
    server.status, server.cut = None, 10
    fetch_all(chunks, store)
    server.cut, server.sizes = None, "1,2,3,4,5"
    fetch_all(chunks, store)
    server.sizes = None
    assert fetch_all(chunks, store) == [s.raw for s in store]
    assert len(server.posts) == 3


def test_the_chunks_a_failed_batch_lacked_come_with_several_gets_in_flight(tmp_path: Path) -> None:
    store = make_store(tmp_path, 8)
    with chunk_server(tmp_path) as server:
        server.status, server.get_delay = 404, 0.05
        chunks = reader(server)
        assert fetch_all(chunks, store) == [s.raw for s in store]
        assert sorted(server.gets) == sorted(s.sha for s in store)
        assert server.most_in_flight > 1


def test_batches_that_keep_bringing_a_damaged_chunk_are_given_up(server: ChunkServer, store: list[Stored]) -> None:
    """A proxy that damages every batch: three in a row count as failures, then one chunk a GET (not everything
    fetched twice for ever)."""
    server.bad_in_batch = {store[1].sha}
    chunks = reader(server)
    for _ in range(5):
        assert fetch_all(chunks, store) == [s.raw for s in store]
    assert len(server.posts) == httpchunks.GIVE_UP_BATCHES


def test_a_damaged_chunk_in_a_batch_is_fetched_again_alone(server: ChunkServer, store: list[Stored]) -> None:
    server.bad_in_batch = {store[2].sha}
    chunks = reader(server)
    assert fetch_all(chunks, store) == [s.raw for s in store]
    assert len(server.posts) == 1 and server.gets == [store[2].sha]


def test_a_chunk_damaged_in_the_batch_and_alone_is_a_checksum_mismatch_naming_it(server: ChunkServer,
                                                                                store: list[Stored]) -> None:
    server.bad_in_batch = server.bad_get = {store[3].sha}
    chunks = reader(server)
    with pytest.raises(ChecksumMismatch, match=store[3].sha):
        fetch_all(chunks, store)
    assert server.gets == [store[3].sha]


def test_a_plain_web_server_gets_its_gets_back_to_back(server: ChunkServer, store: list[Stored]) -> None:
    """No batch route, plain http: a group's GETs go back to back on one connection (HTTP/1.1 pipelining), the
    server answers them in order; a single fetch is still one GET."""
    chunks = reader(server, batches=False)
    assert chunks.batch == httpchunks.BATCH_CHUNKS and chunks.parallel == httpchunks.BATCHES_PARALLEL
    assert fetch_all(chunks, store) == [s.raw for s in store]
    assert server.posts == [] and server.gets == [s.sha for s in store]
    assert chunks.fetch(store[0].chunk, len(store[0].raw)) == store[0].raw
    assert chunks.fetched_bytes() == stored_bytes(store) + store[0].chunk.stored_size


def test_a_web_server_that_closes_after_each_answer_still_gives_every_chunk(tmp_path: Path) -> None:
    """python3 -m http.server answers HTTP/1.0 and closes: one answer a connection, the rest fetched one a GET,
    and after three such groups no more back-to-back GETs."""
    store = make_store(tmp_path / "store", 8)
    with python_http_server(tmp_path / "store") as url:
        chunks = httpchunks.chunks_for(httpstore.Remote(f"{url}img/", requests.Session(), FAST), f"{url}.chunks/")
        for _ in range(4):
            assert fetch_all(chunks, store) == [s.raw for s in store]
        assert not chunks._batches_work()


def test_behind_a_proxy_or_with_a_pinned_certificate_every_chunk_is_one_get(server: ChunkServer) -> None:
    """A proxy may not pipeline; a pinned certificate is the imager server's, whose chunks come in batches (or
    else through requests, which checks the pin): one chunk a request there."""
    session = requests.Session()
    session.proxies = {"http": "http://10.255.255.1:3128"}
    proxied = httpchunks.chunks_for(httpstore.Remote(f"{server.url}images/img/", session, FAST), f"{server.url}chunks/")
    pinning.pin_server("https://imager.example", "sha256:" + "ab" * 32)
    try:
        pinned = httpchunks.chunks_for(httpstore.Remote("https://imager.example/img/",
                                                        pinning.session_for("https://imager.example"), FAST),
                                       "https://imager.example/chunks/")
    finally:
        pinning.pin_server("https://imager.example", None)
    assert (proxied.batch, pinned.batch) == (1, 1) and pinned.parallel == httpchunks.CHUNKS_PARALLEL


def test_nginx_over_https_gets_its_gets_back_to_back_with_the_usual_certificate_checks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A web server's https: the GETs of a group go back to back on one TLS connection, trusting the CA bundle
    requests would (here REQUESTS_CA_BUNDLE); trusting another, no chunk is asked and the error is clear."""
    from tests.server_stub.test_tls import make_cert

    store = make_store(tmp_path / "store", httpchunks.BATCH_CHUNKS + 6)
    cert, other = make_cert(tmp_path, "files"), make_cert(tmp_path, "impostor")
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    with nginx_server(tmp_path / "store", tmp_path / "nginx", (cert["cert"], cert["key"])) as url:
        assert url.startswith("https://")
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert["cert"]))
        chunks = httpchunks.chunks_for(httpstore.Remote(f"{url}img/", requests.Session(), FAST), f"{url}.chunks/")
        assert chunks.batch == httpchunks.BATCH_CHUNKS
        assert fetch_all(chunks, store) == [s.raw for s in store]
        assert chunks._batches_work()
        log = (tmp_path / "nginx" / "connections.log").read_text().split("\n")
        answered = [line.split() for line in log if "/.chunks/" in line]
        assert len(answered) == len(store) and {status for _, status, _ in answered} == {"200"}
        assert len({connection for connection, _, _ in answered}) <= 2   # one a group of 64: 2 groups
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(other["cert"]))
        stranger = httpchunks.chunks_for(httpstore.Remote(f"{url}img/", requests.Session(), FAST), f"{url}.chunks/")
        with pytest.raises(ServerIdentityError, match="failed the TLS check"):
            fetch_all(stranger, store[:3])
        assert len([line for line in (tmp_path / "nginx" / "connections.log").read_text().split("\n")
                    if "/.chunks/" in line]) == len(store)   # nothing asked without trust


def test_without_a_ca_bundle_an_https_web_servers_chunks_are_one_get_each(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CA bundle path that is not there: no pipelining (requests' own path then fails each GET clearly)."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/ca.pem")
    chunks = httpchunks.chunks_for(httpstore.Remote("https://files.example/img/", requests.Session(), FAST),
                                   "https://files.example/.chunks/")
    assert (chunks.batch, chunks.parallel) == (1, httpchunks.CHUNKS_PARALLEL)


def test_one_chunk_is_not_worth_a_batch(server: ChunkServer, store: list[Stored]) -> None:
    chunks = reader(server)
    assert fetch_all(chunks, store[:1]) == [store[0].raw]
    assert server.posts == [] and server.gets == [store[0].sha]


def test_a_full_batch_of_the_largest_size_the_client_asks(tmp_path: Path) -> None:
    """BATCH_CHUNKS chunks in one answer, through the server's own send_chunks."""
    store = make_store(tmp_path, httpchunks.BATCH_CHUNKS, seed=3)
    with chunk_server(tmp_path) as server:
        chunks = reader(server)
        assert fetch_all(chunks, store) == [s.raw for s in store]
        assert len(server.posts) == 1 and server.gets == []
        assert chunks.fetched_bytes() == stored_bytes(store)


def test_over_https_the_servers_pinned_certificate_is_the_trust_for_chunks_and_batches(
        tmp_path: Path, store: list[Stored]) -> None:
    """The imager server's certificate is pinned on the kernel command line (no CA): its chunk and batch routes,
    on connection pools of their own, still check exactly that certificate, and refuse another."""
    from tests.server_stub.test_tls import make_cert

    good, other = make_cert(tmp_path, "imager-test"), make_cert(tmp_path, "impostor")
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(good["cert"], good["key"])
    with chunk_server(tmp_path, tls) as server:
        def pinned_reader(fingerprint: str) -> httpchunks.HttpChunks:
            pinning.pin_server(server.url, fingerprint)
            image = httpstore.Remote(f"{server.url}images/img/", pinning.session_for(server.url), FAST)
            return httpchunks.chunks_for(image, f"{server.url}chunks/", f"{server.url}batch")
        try:
            chunks = pinned_reader(good["fp"])
            assert fetch_all(chunks, store) == [s.raw for s in store]
            assert len(server.posts) == 1 and server.gets == []
            assert chunks.fetch(store[0].chunk, len(store[0].raw)) == store[0].raw
            assert len(server.posts) == 1 and server.gets == [store[0].sha]
            impostor = pinned_reader(other["fp"])
            with pytest.raises(ImagerError):
                fetch_all(impostor, store[:1])
            assert len(server.posts) == 1 and len(server.gets) == 1   # nothing got through the handshake
        finally:
            pinning.pin_server(server.url, None)


# The imager server's real route, end to end: checkin → chunks_url and chunks_batch_url → the client.

def test_the_imager_servers_batch_route_end_to_end(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from tests.server_stub.console.conftest import ConsoleHarness
    from tests.server_stub.test_api_imageserve import published, running_task

    root = tmp_path / "node"
    root.mkdir()
    published(root)
    store = make_store(root, 6, seed=5)
    harness = ConsoleHarness(tmp_path)
    try:
        harness.store.add_storage("web", "10.0.0.1:/images", http_url="server", rsync_target=str(root))
        answer, token = running_task(harness)
        storage: dict[str, Any] = answer["storage"]
        server = str(harness.client.make_url("/")).rstrip("/")
        image = httpstore.remote_for(storage["url"], server, token["Authorization"], requests.Session())
        chunks = httpchunks.chunks_for(image, storage["chunks_url"], storage["chunks_batch_url"])
        assert chunks.batch_url == f"{server}/api/tasks/{answer['id']}/chunks/batch"
        # the client blocks: it runs in a thread while the server's loop runs here
        caplog.set_level(logging.INFO, "aiohttp.access")
        got = harness.run(asyncio.to_thread(fetch_all, chunks, store + store[:2]))
        assert got == [s.raw for s in store + store[:2]]
        requests_seen = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
        assert len(requests_seen) == 1 and '"POST /api/tasks/' in requests_seen[0], requests_seen
        assert chunks.fetched_bytes() == stored_bytes(store + store[:2])
        one = harness.run(asyncio.to_thread(chunks.fetch, store[4].chunk, len(store[4].raw)))
        assert one == store[4].raw
        # a chunk the node lacks: the batch is 404, the GET too; the careful path says which file
        missing = Chunk(9, 16, 1000, hashlib.sha256(b"absent").hexdigest())
        with pytest.raises(ImageNotFound, match=missing.sha256):
            harness.run(asyncio.to_thread(chunks.fetch_many, [store[0].chunk, missing], [len(store[0].raw), 65536]))
    finally:
        harness.close()
