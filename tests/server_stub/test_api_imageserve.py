"""The HTTP transport's server side (issue 17) over the real app and a real Store: a node's http_url (checked,
cleared), the checkin's transport and url for deploys only, and the image route: the running deploy's own
image only, Range and Content-Length, no listing, nothing after the task ended, a bound on transfers."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from server_stub import imageserve
from tests.server_stub.console.conftest import ConsoleHarness, console_harness  # noqa: F401
from tests.server_stub.test_accounts import BEARER, call

VERSION = "img@20260101T000000-abc123"
STREAM = b"0123456789abcdef" * 640  # 10,240 bytes, text for the test client


def api(harness: ConsoleHarness, method: str, path: str, body: Any = None,
        headers: Any = BEARER) -> tuple[int, Any]:
    status, answer, _ = call(harness, method, path, json=body, headers=headers)
    return status, answer


def published(root: Path) -> None:
    """Image 'img' published on a node directory as imager captures it: .images/<version>, link img."""
    version = root / ".images" / VERSION
    version.mkdir(parents=True)
    (version / "manifest.json").write_text('{"format": "imager"}')
    (version / "d1p1.pcl.zst").write_bytes(STREAM)
    os.symlink(f".images/{VERSION}", root / "img")
    other = root / ".images" / "other@20260101T000000-abc123"  # another image on the same node: never served
    other.mkdir()
    (other / "manifest.json").write_text('{"format": "imager"}')


def running_task(harness: ConsoleHarness, task_type: str = "deploy") -> tuple[dict[str, Any], dict[str, str]]:
    """A host's task of image 'img' (captured) checked in: (the checkin's answer, its token header)."""
    store = harness.store
    store.add_host("52:54:00:00:00:01", "pc1")
    store.add_image("img", "web")
    store.db.execute("UPDATE images SET captured = ?", time.time())
    task = store.add_task("pc1", task_type, "img")
    token = {"Authorization": f"Bearer {task['token']}"}
    status, answer = api(harness, "POST", f"/api/tasks/{task['id']}/checkin", {}, token)
    assert status == 200, answer
    return answer, token


def test_http_url_is_checked_normalised_and_cleared(console_harness: ConsoleHarness) -> None:
    for bad in ("ftp://host/images/", "http://user:pw@host/images/", "http://host/images/?x=1", "host/images",
                "http://[::1/", "http://host:port/", "http://h/" + "a" * 600, 5):
        status, answer = api(console_harness, "POST", "/api/storage",
                             {"name": "n1", "export": "10.0.0.1:/images", "http_url": bad})
        assert status == 400, (bad, answer)
        assert "HTTP transport" in answer["error"] or "must be a string" in answer["error"], answer
    status, node = api(console_harness, "POST", "/api/storage", {"name": "n1", "export": "10.0.0.1:/images",
                                                                  "http_url": "http://10.0.0.1/images"})
    assert status == 201 and node["http_url"] == "http://10.0.0.1/images/"
    status, refused = api(console_harness, "POST", "/api/storage/n1", {"http_url": "server"})
    assert status == 400 and "rsync target is not one" in refused["error"]  # nothing here to serve
    assert refused["details"]["field"] == "http_url"
    status, node = api(console_harness, "POST", "/api/storage/n1", {"http_url": "server", "rsync_target": "/srv/img"})
    assert status == 200 and node["http_url"] == "server"
    status, refused = api(console_harness, "POST", "/api/storage/n1", {"rsync_target": "backup@h:/srv/img"})
    assert status == 400 and console_harness.store.storage("n1")["rsync_target"] == "/srv/img/"  # all or nothing
    status, node = api(console_harness, "POST", "/api/storage/n1", {"http_url": "https://[fd00::5]:8443/img"})
    assert status == 200 and node["http_url"] == "https://[fd00::5]:8443/img/"
    status, node = api(console_harness, "POST", "/api/storage/n1", {"http_url": ""})
    assert status == 200 and node["http_url"] is None


def test_checkin_says_nfs_by_default_and_http_for_a_deploy_from_an_http_node(console_harness: ConsoleHarness,
                                                                             tmp_path: Path) -> None:
    store = console_harness.store
    store.add_storage("web", "10.0.0.1:/images", http_url="http://10.0.0.1/images/", rsync_target=str(tmp_path))
    answer, _ = running_task(console_harness)
    assert answer["storage"] == {"name": "web", "export": "10.0.0.1:/images", "options": "vers=4.1",
                                 "transport": "http", "url": "http://10.0.0.1/images/img/",
                                 "chunks_url": "http://10.0.0.1/images/.chunks/"}
    store.set_storage("web", http_url="")
    store.add_host("52:54:00:00:00:02", "pc2")
    task = store.add_task("pc2", "capture", "img")
    status, capture = api(console_harness, "POST", f"/api/tasks/{task['id']}/checkin", {},
                          {"Authorization": f"Bearer {task['token']}"})
    assert status == 200 and capture["storage"]["transport"] == "nfs" and "url" not in capture["storage"]


def test_a_capture_from_an_http_node_still_uses_nfs(console_harness: ConsoleHarness, tmp_path: Path) -> None:
    console_harness.store.add_storage("web", "10.0.0.1:/images", http_url="server", rsync_target=str(tmp_path))
    answer, _ = running_task(console_harness, "capture")
    assert answer["storage"]["transport"] == "nfs" and "url" not in answer["storage"]


def test_the_route_serves_the_running_deploys_image_with_ranges_and_nothing_else(console_harness: ConsoleHarness,
                                                                                 tmp_path: Path) -> None:
    published(tmp_path)
    console_harness.store.add_storage("web", "10.0.0.1:/images", http_url="server", rsync_target=str(tmp_path))
    answer, token = running_task(console_harness)
    base = f"/api/tasks/{answer['id']}/image/{VERSION}/"
    assert answer["storage"]["transport"] == "http" and answer["storage"]["url"] == base  # pinned version
    status, body, headers = call(console_harness, "GET", base + "d1p1.pcl.zst",
                                 headers={**token, "Range": "bytes=100-"})
    assert status == 206 and body == STREAM[100:].decode() and headers["Content-Range"] == f"bytes 100-{len(STREAM) - 1}/{len(STREAM)}"
    assert headers["Content-Length"] == str(len(STREAM) - 100)
    status, _, headers = call(console_harness, "HEAD", base + "d1p1.pcl.zst", headers=token)
    assert status == 200 and headers["Accept-Ranges"] == "bytes" and headers["Content-Length"] == str(len(STREAM))
    status, body, headers = call(console_harness, "GET", f"/api/tasks/{answer['id']}/image/img/manifest.json",
                                 headers=token)
    assert status == 200 and body == {"format": "imager"}  # the image's name: its published version
    for path in (base, base + ".images", f"/api/tasks/{answer['id']}/image/other@20260101T000000-abc123/manifest.json",
                 f"/api/tasks/{answer['id']}/image/..%2F..%2Fimg/manifest.json", base + "missing.zst"):
        assert call(console_harness, "GET", path, headers=token)[0] == 404, path  # no listing, no other image
    assert call(console_harness, "GET", base + "d1p1.pcl.zst")[0] == 401
    assert call(console_harness, "GET", base + "d1p1.pcl.zst", headers={"Authorization": "Bearer guess"})[0] == 401
    assert api(console_harness, "POST", f"/api/tasks/{answer['id']}/done", {"result": {}}, token)[0] == 200
    status, refused = api(console_harness, "GET", base + "d1p1.pcl.zst", None, token)
    assert status == 409 and "running deploy" in refused["error"]  # a finished task reads nothing more


def test_a_web_server_node_is_not_served_by_the_route(console_harness: ConsoleHarness, tmp_path: Path) -> None:
    published(tmp_path)
    console_harness.store.add_storage("web", "10.0.0.1:/images", http_url="http://10.0.0.1/images/",
                                      rsync_target=str(tmp_path))
    answer, token = running_task(console_harness)
    status, refused = api(console_harness, "GET", f"/api/tasks/{answer['id']}/image/{VERSION}/manifest.json",
                          None, token)
    assert status == 404 and "not served by this server" in refused["error"]


def test_transfers_of_one_task_are_bounded(console_harness: ConsoleHarness, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """With the bound at 0 every transfer is refused with 429 and a Retry-After the client honours."""
    published(tmp_path)
    console_harness.store.add_storage("web", "10.0.0.1:/images", http_url="server", rsync_target=str(tmp_path))
    answer, token = running_task(console_harness)
    monkeypatch.setattr(imageserve, "MAX_TRANSFERS_PER_TASK", 0)
    status, body, headers = call(console_harness, "GET", answer["storage"]["url"] + "d1p1.pcl.zst", headers=token)
    assert status == 429 and headers["Retry-After"] == "1"
