"""An image's format (issue 17): stream or chunked, set when the image is added and changed later (admins only,
audited), sent to a capture at checkin; adopted images are stream; a chunked current version whose index is
damaged refuses multicast with the reason. Over the real app, a real Store and real files."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.server_stub.console.conftest import Browser, ConsoleHarness, console_harness, technician  # noqa: F401
from tests.server_stub.test_accounts import call, session_cookie
from tests.server_stub.test_api_imageserve import api

CHUNKED_MANIFEST = {"format": "imager", "disks": [{"index": 1, "mode": "partitions", "partitions": [
    {"number": 1, "file": "d1p1.cidx", "chunks": {"grid_blocks": 16, "count": 3, "new_bytes": 100}}]}]}


@pytest.fixture
def group(console_harness: ConsoleHarness, tmp_path: Path) -> Path:
    root = tmp_path / "node"
    root.mkdir()
    console_harness.store.add_storage("node", "10.0.0.1:/images", rsync_target=str(root))
    return root


def test_added_as_chunked_by_default_or_stream_and_refused_otherwise(console_harness: ConsoleHarness,
                                                                     group: Path) -> None:
    status, image = api(console_harness, "POST", "/api/images", {"name": "lab", "group": "default"})
    assert status == 201 and image["format"] == "chunked"
    status, image = api(console_harness, "POST", "/api/images", {"name": "inc", "group": "default",
                                                                 "format": "stream"})
    assert status == 201 and image["format"] == "stream"
    for bad in ("casync", "", None, 1, ["chunked"]):
        status, refused = api(console_harness, "POST", "/api/images", {"name": "x", "group": "default",
                                                                       "format": bad})
        assert status == 400, (bad, refused)
        assert "image format" in refused["error"] or "must be a string" in refused["error"]
    assert [i["name"] for i in console_harness.store.images()] == ["inc", "lab"]
    status, listed = api(console_harness, "GET", "/api/images")
    assert {i["name"]: i["format"] for i in listed} == {"inc": "stream", "lab": "chunked"}


def test_edited_field_by_field_by_an_admin_and_audited(console_harness: ConsoleHarness, group: Path) -> None:
    api(console_harness, "POST", "/api/images", {"name": "lab", "group": "default", "description": "room 1"})
    status, image = api(console_harness, "POST", "/api/images/lab", {"format": "chunked"})
    assert status == 200 and (image["format"], image["type"], image["description"]) == ("chunked", "resizable",
                                                                                         "room 1")
    status, image = api(console_harness, "POST", "/api/images/lab", {"type": "multipart", "description": ""})
    assert status == 200 and (image["format"], image["type"], image["description"]) == ("chunked", "multipart", "")
    status, refused = api(console_harness, "POST", "/api/images/lab", {"format": "zip"})
    assert status == 400 and refused["details"]["field"] == "format" and "'zip'" in refused["error"]
    status, refused = api(console_harness, "POST", "/api/images/lab", {"name": "other"})
    assert status == 400 and refused["details"]["field"] == "name" and "keeps its name" in refused["error"]
    status, refused = api(console_harness, "POST", "/api/images/lab", {"description": "x" * 1001})
    assert status == 400 and "at most 1000" in refused["error"]
    status, refused = api(console_harness, "POST", "/api/images/nothing", {"format": "chunked"})
    assert status == 404
    assert console_harness.store.image("lab")["format"] == "chunked"  # the refusals changed nothing
    entries, _ = console_harness.store.accounts.audit_page()
    assert [(e["action"], e["outcome"]) for e in reversed(entries) if e["target"] in ("lab", "nothing")] == [
        ("POST /api/images/lab", "200"), ("POST /api/images/lab", "200"), ("POST /api/images/lab", "400 invalid"),
        ("POST /api/images/lab", "400 invalid"), ("POST /api/images/lab", "400 invalid"),
        ("POST /api/images/nothing", "404 not_found")]


def test_a_technician_may_not_change_an_image(console_harness: ConsoleHarness, technician: Browser, group: Path) -> None:
    console_harness.store.add_image("lab", group="default")
    status, answer, _ = call(console_harness, "POST", "/api/images/lab", json={"format": "stream"},
                             cookies=session_cookie(technician), headers={"X-CSRF-Token": technician.csrf})
    assert status == 403 and answer["code"] == "forbidden"
    assert console_harness.store.image("lab")["format"] == "chunked"


def test_adopt_is_not_taken_for_an_image_named_adopt(console_harness: ConsoleHarness, group: Path) -> None:
    status, answer = api(console_harness, "POST", "/api/images/adopt", {"group": "default"})
    assert status == 200 and answer == {"adopted": [], "skipped": []}


def test_a_capture_is_told_the_format_and_adopted_images_are_stream(console_harness: ConsoleHarness,
                                                                    group: Path) -> None:
    store = console_harness.store
    store.add_image("inc", group="default", format_="chunked")
    store.add_host("52:54:00:00:00:01", "pc1")
    task = store.add_task("pc1", "capture", "inc")
    status, answer = api(console_harness, "POST", f"/api/tasks/{task['id']}/checkin", {},
                         {"Authorization": f"Bearer {task['token']}"})
    assert status == 200 and answer["image"] == {"name": "inc", "type": "resizable", "format": "chunked"}
    fog = group / "winfog"
    fog.mkdir()
    (fog / "d1p1.img").write_bytes(b"\x1f\x8b" + b"\0" * 100)
    (fog / "d1.partitions").write_text("label: dos\n")
    status, done = api(console_harness, "POST", "/api/images/adopt", {"group": "default"})
    assert status == 200 and [(i["name"], i["format"]) for i in done["adopted"]] == [("winfog", "stream")], done


def chunked_version(root: Path, name: str) -> None:
    """A chunked version published as imager publishes it (its partition's file is a chunk index), but its index
    is damaged (b"index"): a multicast of it is refused, naming the index (tests/server_stub/test_multicast_chunked.py
    sends a whole one)."""
    version = root / ".images" / f"{name}@20260101T000000-abcdef"
    version.mkdir(parents=True)
    (version / "d1p1.cidx").write_bytes(b"index")
    (version / "manifest.json").write_text(json.dumps(CHUNKED_MANIFEST))
    (root / name).symlink_to(f".images/{name}@20260101T000000-abcdef")


def test_multicast_of_a_chunked_current_version_is_refused_with_the_reason(console_harness: ConsoleHarness,
                                                                           group: Path) -> None:
    store = console_harness.store
    store.add_image("inc", group="default", format_="chunked")
    store.db.execute("UPDATE images SET captured = ?", time.time())
    chunked_version(group, "inc")
    store.add_host("52:54:00:00:00:01", "pc1")
    status, refused = api(console_harness, "POST", "/api/multicast", {"image": "inc", "hosts": ["pc1"],
                                                                      "interface": "lo"})
    assert status == 400 and refused["code"] == "invalid", refused
    assert "d1p1.cidx is too short to be a chunk index" in refused["error"]
    assert store.sessions() == [] and store.tasks() == []  # nothing queued


def test_multicast_follows_the_current_versions_format_not_the_setting(console_harness: ConsoleHarness,
                                                                       group: Path) -> None:
    """An image set to chunked whose current version is still a stream version (captured before the change)
    multicasts; set back to stream while its current version is chunked, its chunked version is what is checked
    (here a damaged index: refused)."""
    store = console_harness.store
    store.add_image("img", group="default", format_="chunked")
    store.db.execute("UPDATE images SET captured = ?", time.time())
    version = group / ".images" / "img@20260101T000000-abcdef"
    version.mkdir(parents=True)
    (version / "d1p1.pcl.zst").write_bytes(b"stream")
    (version / "manifest.json").write_text(json.dumps(
        {"disks": [{"partitions": [{"number": 1, "file": "d1p1.pcl.zst"}]}]}))
    (group / "img").symlink_to(".images/img@20260101T000000-abcdef")
    store.add_host("52:54:00:00:00:01", "pc1")
    status, session = api(console_harness, "POST", "/api/multicast", {"image": "img", "hosts": ["pc1"],
                                                                      "interface": "lo", "wake": False})
    assert status == 201 and session["files"] == ["d1p1.pcl.zst"], session
    assert api(console_harness, "POST", f"/api/multicast/{session['id']}/cancel")[0] == 200
    store.add_image("inc", group="default")
    store.db.execute("UPDATE images SET captured = ? WHERE name = 'inc'", time.time())
    chunked_version(group, "inc")
    store.add_host("52:54:00:00:00:02", "pc2")
    status, refused = api(console_harness, "POST", "/api/multicast", {"image": "inc", "hosts": ["pc2"],
                                                                      "interface": "lo", "wake": False})
    assert status == 400 and "d1p1.cidx is too short to be a chunk index" in refused["error"]


def test_a_description_is_bounded_when_added_too(console_harness: ConsoleHarness, group: Path) -> None:
    status, refused = api(console_harness, "POST", "/api/images", {"name": "x", "group": "default",
                                                                   "description": "x" * 1001})
    assert status == 400 and refused["details"]["field"] == "description" and "at most 1000" in refused["error"]
    assert console_harness.store.images() == []
