"""The chunk route of the HTTP transport (issue 17) over the real app, a real Store and real files: a running
deploy's client reads chunks of its node's chunk store with Range, names are checked strictly, nothing else is
served (no trash, no temporary names, no links, no other node, no finished task), and its bound is its own."""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import aiohttp
import pytest

from server_stub import imageserve
from tests.server_stub.console.conftest import ConsoleHarness, console_harness  # noqa: F401
from tests.server_stub.test_accounts import call
from tests.server_stub.test_api_imageserve import STREAM, VERSION, api, published, running_task

CHUNK = b"chunk data, compressed by the client; any bytes to the server " * 100
SHA = hashlib.sha256(CHUNK).hexdigest()


def chunk_store(root: Path) -> None:
    """A node's .chunks/ as a chunked capture leaves it: a chunk, one in the trash, one being written, a link."""
    folder = root / ".chunks" / SHA[:2]
    folder.mkdir(parents=True)
    (folder / f"{SHA}.zst").write_bytes(CHUNK)
    trashed = hashlib.sha256(b"trashed").hexdigest()
    (root / ".chunks" / ".trash" / trashed[:2]).mkdir(parents=True)
    (root / ".chunks" / ".trash" / trashed[:2] / f"{trashed}.zst").write_bytes(b"old")
    writing = hashlib.sha256(b"writing").hexdigest()
    (root / ".chunks" / writing[:2]).mkdir(exist_ok=True)
    (root / ".chunks" / writing[:2] / f".{writing}.zst.tmp").write_bytes(b"half")
    linked = hashlib.sha256(b"linked").hexdigest()
    (root / ".chunks" / linked[:2]).mkdir(exist_ok=True)
    os.symlink("/etc/passwd", root / ".chunks" / linked[:2] / f"{linked}.zst")


def served(harness: ConsoleHarness, root: Path) -> tuple[str, dict[str, str]]:
    published(root)
    chunk_store(root)
    harness.store.add_storage("web", "10.0.0.1:/images", http_url="server", rsync_target=str(root))
    answer, token = running_task(harness)
    assert answer["storage"]["chunks_url"] == f"/api/tasks/{answer['id']}/chunks/"
    return answer["storage"]["chunks_url"], token


def test_a_running_deploy_reads_its_nodes_chunks_with_ranges(console_harness: ConsoleHarness,
                                                              tmp_path: Path) -> None:
    base, token = served(console_harness, tmp_path)
    url = f"{base}{SHA[:2]}/{SHA}.zst"
    status, body, headers = call(console_harness, "GET", url, headers=token)
    assert status == 200 and body == CHUNK.decode() and headers["Content-Length"] == str(len(CHUNK))
    assert headers["Cache-Control"] == "no-store"
    status, body, headers = call(console_harness, "GET", url, headers={**token, "Range": "bytes=1000-"})
    assert status == 206 and body == CHUNK[1000:].decode()
    assert headers["Content-Range"] == f"bytes 1000-{len(CHUNK) - 1}/{len(CHUNK)}"
    status, _, headers = call(console_harness, "HEAD", url, headers=token)
    assert status == 200 and headers["Accept-Ranges"] == "bytes" and headers["Content-Length"] == str(len(CHUNK))


@pytest.mark.parametrize("path", [
    f"{SHA[:2]}/{SHA}",                                   # no .zst
    f"{SHA[2:4]}/{SHA}.zst",                              # a folder that is not its first two digits
    f"{SHA[:2]}/{SHA.upper()}.zst",                       # upper case: not a chunk name
    f"{SHA[:2]}/{SHA[:63]}.zst",                          # a digit short
    f"{SHA[:2]}/{SHA}.zst.tmp",
    f".trash/{hashlib.sha256(b'trashed').hexdigest()}.zst",   # the collector's quarantine
    f"{hashlib.sha256(b'writing').hexdigest()[:2]}/.{hashlib.sha256(b'writing').hexdigest()}.zst.tmp",
    f"{hashlib.sha256(b'linked').hexdigest()[:2]}/{hashlib.sha256(b'linked').hexdigest()}.zst",  # a link
    f"{hashlib.sha256(b'absent').hexdigest()[:2]}/{hashlib.sha256(b'absent').hexdigest()}.zst",
    f"..%2F..%2F{SHA[:2]}/{SHA}.zst", f"{SHA[:2]}/..%2F..%2F.images%2F{VERSION}%2Fd1p1.pcl.zst", f"{SHA[:2]}/",
])
def test_anything_but_a_stored_chunk_is_404(console_harness: ConsoleHarness, tmp_path: Path, path: str) -> None:
    base, token = served(console_harness, tmp_path)
    status, body, _ = call(console_harness, "GET", base + path, headers=token)
    assert status == 404, (path, body)


def test_only_the_running_deploys_token_on_a_node_this_server_serves(console_harness: ConsoleHarness,
                                                                     tmp_path: Path) -> None:
    base, token = served(console_harness, tmp_path)
    url = f"{base}{SHA[:2]}/{SHA}.zst"
    assert call(console_harness, "GET", url)[0] == 401
    assert call(console_harness, "GET", url, headers={"Authorization": "Bearer guess"})[0] == 401
    assert call(console_harness, "GET", f"/api/tasks/999/chunks/{SHA[:2]}/{SHA}.zst", headers=token)[0] == 401
    console_harness.store.set_storage("web", http_url="http://10.0.0.1/images/")  # a web server serves it now
    status, refused = api(console_harness, "GET", url, None, token)
    assert status == 404 and "not served by this server" in refused["error"]
    console_harness.store.set_storage("web", http_url="server")
    assert api(console_harness, "POST", url.replace(f"chunks/{SHA[:2]}/{SHA}.zst", "done"), {"result": {}},
               token)[0] == 200
    status, refused = api(console_harness, "GET", url, None, token)
    assert status == 409 and "running deploy" in refused["error"]  # a finished task reads nothing more


def test_a_capture_task_reads_no_chunk(console_harness: ConsoleHarness, tmp_path: Path) -> None:
    chunk_store(tmp_path)
    console_harness.store.add_storage("web", "10.0.0.1:/images", http_url="server", rsync_target=str(tmp_path))
    answer, token = running_task(console_harness, "capture")
    assert "chunks_url" not in answer["storage"]
    status, refused = api(console_harness, "GET", f"/api/tasks/{answer['id']}/chunks/{SHA[:2]}/{SHA}.zst",
                          None, token)
    assert status == 409 and "running deploy" in refused["error"]


def test_a_web_server_nodes_chunks_url_is_its_chunks_folder(console_harness: ConsoleHarness,
                                                            tmp_path: Path) -> None:
    console_harness.store.add_storage("web", "10.0.0.1:/images", http_url="https://files.example/img/",
                                      rsync_target=str(tmp_path))
    answer, _ = running_task(console_harness)
    assert answer["storage"]["chunks_url"] == "https://files.example/img/.chunks/"
    assert answer["storage"]["url"] == "https://files.example/img/img/"


def test_chunk_transfers_have_their_own_bound(console_harness: ConsoleHarness, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The image route's bound does not limit chunks and the other way round; each refusal is a 429 with a
    Retry-After the client honours."""
    assert imageserve.MAX_CHUNK_TRANSFERS_PER_TASK == 24  # the client keeps 16 in flight
    base, token = served(console_harness, tmp_path)
    chunk, image = f"{base}{SHA[:2]}/{SHA}.zst", f"/api/tasks/{base.split('/')[3]}/image/{VERSION}/d1p1.pcl.zst"
    monkeypatch.setattr(imageserve, "MAX_TRANSFERS_PER_TASK", 0)
    assert call(console_harness, "GET", chunk, headers=token)[0] == 200
    assert call(console_harness, "GET", image, headers=token)[0] == 429
    monkeypatch.setattr(imageserve, "MAX_TRANSFERS_PER_TASK", 6)
    monkeypatch.setattr(imageserve, "MAX_CHUNK_TRANSFERS_PER_TASK", 0)
    status, body, headers = call(console_harness, "GET", chunk, headers=token)
    assert status == 429 and headers["Retry-After"] == "1" and "chunk transfers" in body["error"]
    status, body, _ = call(console_harness, "GET", image, headers=token)
    assert status == 200 and body == STREAM.decode()


def test_files_are_sent_once_on_a_kept_alive_connection(console_harness: ConsoleHarness, tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """aiohttp prepares a handler's answer again after the handler sent it; the file must not be sent twice
    (that logged an AssertionError and dropped the connection after every chunk: a new TCP connection a chunk)."""
    base, token = served(console_harness, tmp_path)
    image = f"/api/tasks/{base.split('/')[3]}/image/{VERSION}/d1p1.pcl.zst"

    async def fetch() -> list[tuple[int, int]]:
        answers = []
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
            for path in [f"{base}{SHA[:2]}/{SHA}.zst", image] * 5:
                async with session.get(console_harness.client.make_url(path), headers=token) as answer:
                    answers.append((answer.status, len(await answer.read())))
            connections = len(session.connector._conns)  # type: ignore[union-attr]  # idle ones kept for reuse
        return answers + [(connections, 0)]

    with caplog.at_level(logging.ERROR, logger="aiohttp.server"):
        answers = console_harness.run(fetch())
    assert answers[:-1] == [(200, len(CHUNK)), (200, len(STREAM))] * 5
    assert answers[-1] == (1, 0), "one connection kept for all ten files"
    assert [r.getMessage() for r in caplog.records if r.name == "aiohttp.server"] == []
