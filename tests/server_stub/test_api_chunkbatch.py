"""The chunk batch route (issue 17, server_stub/chunkbatch.py) over the real app, a real Store and real files:
many chunks of the running deploy's node back to back, in the order asked, with their sizes; the rules of the
one-chunk route (token, node, strict names, plain files) and a bound of its own."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from server_stub import chunkbatch
from tests.server_stub.console.conftest import ConsoleHarness, console_harness  # noqa: F401
from tests.server_stub.test_accounts import call
from tests.server_stub.test_api_chunkserve import CHUNK, SHA, chunk_store
from tests.server_stub.test_api_imageserve import api, published, running_task

OTHER = b"another chunk " * 300
OTHER_SHA = hashlib.sha256(OTHER).hexdigest()


def served(harness: ConsoleHarness, root: Path) -> tuple[str, dict[str, str]]:
    published(root)
    chunk_store(root)
    (root / ".chunks" / OTHER_SHA[:2]).mkdir(exist_ok=True)
    (root / ".chunks" / OTHER_SHA[:2] / f"{OTHER_SHA}.zst").write_bytes(OTHER)
    harness.store.add_storage("web", "10.0.0.1:/images", http_url="server", rsync_target=str(root))
    answer, token = running_task(harness)
    assert answer["storage"]["chunks_batch_url"] == f"/api/tasks/{answer['id']}/chunks/batch"
    return answer["storage"]["chunks_batch_url"], token


def post(harness: ConsoleHarness, url: str, body: Any, token: dict[str, str]) -> tuple[int, bytes, Any]:
    async def run() -> tuple[int, bytes, Any]:
        async with aiohttp.ClientSession() as session:
            async with session.post(harness.client.make_url(url), json=body, headers=token) as answer:
                return answer.status, await answer.read(), answer.headers
    return harness.run(run())


def test_a_batch_is_the_chunks_back_to_back_in_the_order_asked(console_harness: ConsoleHarness,
                                                               tmp_path: Path) -> None:
    url, token = served(console_harness, tmp_path)
    status, body, headers = post(console_harness, url, {"chunks": [OTHER_SHA, SHA, OTHER_SHA]}, token)
    assert status == 200, body
    assert body == OTHER + CHUNK + OTHER
    assert headers["Chunk-Sizes"] == f"{len(OTHER)},{len(CHUNK)},{len(OTHER)}"
    assert headers["Content-Length"] == str(2 * len(OTHER) + len(CHUNK))
    assert headers["Content-Type"] == "application/octet-stream" and headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("names", [
    [], "x", [SHA.upper()], [SHA[:63]], [f"{SHA[:2]}/{SHA}.zst"], [1], [SHA] * (chunkbatch.MAX_BATCH_CHUNKS + 1),
    [f"../{SHA[2:]}"], None,
])
def test_a_batch_of_anything_but_chunk_names_is_400(console_harness: ConsoleHarness, tmp_path: Path,
                                                    names: Any) -> None:
    url, token = served(console_harness, tmp_path)
    status, body, _ = post(console_harness, url, {"chunks": names}, token)
    assert status == 400, body
    assert b'"code": "invalid"' in body


@pytest.mark.parametrize("absent", [b"absent", b"trashed", b"writing", b"linked"])
def test_a_batch_naming_a_chunk_the_node_lacks_is_404_before_any_byte(console_harness: ConsoleHarness,
                                                                      tmp_path: Path, absent: bytes) -> None:
    """Not in the store, in the collector's trash, being written under a temporary name, or a link: 404."""
    url, token = served(console_harness, tmp_path)
    missing = hashlib.sha256(absent).hexdigest()
    status, answer = api(console_harness, "POST", url, {"chunks": [SHA, missing]}, token)
    assert status == 404 and answer["details"]["missing"] == [missing], answer


def test_only_the_running_deploys_token_on_a_node_this_server_serves(console_harness: ConsoleHarness,
                                                                     tmp_path: Path) -> None:
    url, token = served(console_harness, tmp_path)
    assert post(console_harness, url, {"chunks": [SHA]}, {})[0] == 401
    assert post(console_harness, url, {"chunks": [SHA]}, {"Authorization": "Bearer guess"})[0] == 401
    assert post(console_harness, "/api/tasks/999/chunks/batch", {"chunks": [SHA]}, token)[0] == 401
    console_harness.store.set_storage("web", http_url="http://10.0.0.1/images/")
    status, answer = api(console_harness, "POST", url, {"chunks": [SHA]}, token)
    assert status == 404 and "not served by this server" in answer["error"]
    console_harness.store.set_storage("web", http_url="server")
    assert api(console_harness, "POST", url.replace("chunks/batch", "done"), {"result": {}}, token)[0] == 200
    status, answer = api(console_harness, "POST", url, {"chunks": [SHA]}, token)
    assert status == 409 and "running deploy" in answer["error"]


def test_a_web_server_node_gets_no_batch_url(console_harness: ConsoleHarness, tmp_path: Path) -> None:
    console_harness.store.add_storage("web", "10.0.0.1:/images", http_url="https://files.example/img/",
                                      rsync_target=str(tmp_path))
    answer, _ = running_task(console_harness)
    assert "chunks_batch_url" not in answer["storage"] and answer["storage"]["chunks_url"]


def test_batches_have_their_own_bound(console_harness: ConsoleHarness, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    url, token = served(console_harness, tmp_path)
    monkeypatch.setattr(chunkbatch, "MAX_BATCH_TRANSFERS_PER_TASK", 0)
    status, body, headers = call(console_harness, "POST", url, json={"chunks": [SHA]}, headers=token)
    assert status == 429 and headers["Retry-After"] == "1" and "batches" in body["error"]
    chunk = url.replace("batch", f"{SHA[:2]}/{SHA}.zst")
    assert call(console_harness, "GET", chunk, headers=token)[0] == 200  # one chunk a request still goes
