"""Collecting a node's unused chunks through a real server: the API (admin only, audited, 409s that say why),
the CLI, and the automatic run after an old version is removed."""
from __future__ import annotations

import fcntl
import json
import os
import time

import pytest
import requests

from tests.server_stub.chunkfiles import age, block_of, chunk_path, store_chunk, write_version
from tests.server_stub.cliproc import cli
from tests.server_stub.test_api import admin
from tests.server_stub.test_api_schedules import technician_session

V1, V2 = "win10@20260101T000000-aaaaaa", "win10@20260201T000000-bbbbbb"
HOUR = 3600


@pytest.fixture
def room(server, tmp_path):
    """Group 'room': master m (a directory here) holding win10's v1 (chunks a, b) and current v2 (b, c), all
    chunks two hours old; node r behind an rsync daemon (not collected here)."""
    root = tmp_path / "m"
    (root / ".images").mkdir(parents=True)
    assert admin(server, "POST", "/api/storage-groups", name="room").status_code == 201
    for name, target in (("m", str(root)), ("r", "rsync://127.0.0.1:1/images/room")):
        answer = admin(server, "POST", "/api/storage", name=name, export=f"10.0.0.1:/{name}", group="room",
                       rsync_target=target)
        assert answer.status_code == 201, answer.text
    assert admin(server, "POST", "/api/images", name="win10", group="room").status_code == 201
    a, b, c = (store_chunk(str(root), block_of(s)) for s in "abc")
    write_version(str(root), V1, [a, b])
    write_version(str(root), V2, [b, c])
    os.symlink(f".images/{V2}", root / "win10")
    now = time.time()
    for name in (a, b, c):
        age(chunk_path(str(root), name), 2 * HOUR, now)
    return {"root": root, "a": a, "b": b, "c": c, **server}


def collect(server, node="m"):
    return admin(server, "POST", f"/api/storage/nodes/{node}/gc")


def test_an_admin_collects_a_local_node_and_the_run_is_audited(room):
    root = room["root"]
    first = collect(room)
    assert first.status_code == 200, first.text
    assert {k: first.json()[k] for k in ("node", "indexes", "marked", "quarantined", "deleted")} == {
        "node": "m", "indexes": 2, "marked": 3, "quarantined": 0, "deleted": 0}
    assert admin(room, "DELETE", f"/api/images/win10/versions/{V1}").status_code == 200
    # The removal started a run by itself: a's last index went with v1, so a is in the trash.
    deadline = time.monotonic() + 20
    while os.path.exists(chunk_path(str(root), room["a"])) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(chunk_path(str(root), room["a"]))
    while admin(room, "GET", "/api/storage/nodes/m/gc").json()["last"]["quarantined"] != 1:
        assert time.monotonic() < deadline, "the automatic run did not finish"
        time.sleep(0.05)
    size = os.path.getsize(root / ".chunks" / ".trash" / (room["a"] + ".zst"))
    second = collect(room).json()
    assert (second["deleted"], second["freed_bytes"], second["trash_chunks"]) == (1, size, 0)
    assert all(os.path.exists(chunk_path(str(root), room[k])) for k in "bc")
    audit = admin(room, "GET", "/api/audit?limit=20").json()["rows"]
    runs = [e for e in audit if e["target"] == "m" and "/gc" in e["action"]]
    assert len(runs) == 2 and all(e["outcome"] == "200" and e["actor"] == "admin" for e in runs), audit


def test_refusals_say_why(room):
    remote = collect(room, "r")
    assert remote.status_code == 409 and remote.json()["error"] == (
        "node r's chunks are not collected by this server: its rsync target is rsync://127.0.0.1:1/images/room/, "
        "not a directory on this server (collect them where that directory is local)")
    assert collect(room, "nowhere").status_code == 404
    with open(room["root"] / ".chunks" / ".gc.lock", "w") as held:  # another process's run
        fcntl.flock(held, fcntl.LOCK_EX)
        busy = collect(room)
    assert busy.status_code == 409 and "another garbage collection is running" in busy.json()["error"]
    assert requests.post(room["url"] + "/api/storage/nodes/m/gc", timeout=10).status_code == 401
    session, headers = technician_session(room)
    refused = session.post(room["url"] + "/api/storage/nodes/m/gc", headers=headers, timeout=10)
    assert refused.status_code == 403 and "needs the admin role" in refused.json()["error"]
    assert session.get(room["url"] + "/api/storage/nodes/m/gc", timeout=10).status_code == 200


def test_a_corrupt_index_stops_the_run_with_409_and_removes_nothing(room):
    index = room["root"] / ".images" / V2 / "d1p1.cidx"
    index.write_bytes(index.read_bytes()[:-7])
    assert admin(room, "DELETE", f"/api/images/win10/versions/{V1}").status_code == 200  # a: unused now
    deadline = time.monotonic() + 20
    while "already running" in (answer := collect(room)).text:  # the automatic run after the removal
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert answer.status_code == 409, answer.text
    assert answer.json()["error"].startswith(f"chunk collection on node m stopped: {index} is not a readable chunk "
                                             "index")
    assert all(os.path.exists(chunk_path(str(room["root"]), room[k])) for k in "abc")


def test_the_cli_prints_the_report(room):
    done = cli(room, "storage", "gc", "m")
    assert done.returncode == 0, done.stderr
    assert "marked:" in done.stdout and "quarantined:" in done.stdout and "freed_bytes:  0 B" in done.stdout
    as_json = cli(room, "--json", "storage", "gc", "m")
    assert as_json.returncode == 0 and json.loads(as_json.stdout)["marked"] == 3
    refused = cli(room, "storage", "gc", "r")
    assert refused.returncode != 0 and "HTTP 409: node r's chunks are not collected by this server" in refused.stderr
