"""The storage node page's "Collect unused chunks": the run's report on a page, refusals with their reason, admins
only, audited."""
import os
import time

from tests.server_stub.chunkfiles import age, block_of, chunk_path, store_chunk, write_version


def node_with_garbage(console, tmp_path):
    root = tmp_path / "node"
    (root / ".images").mkdir(parents=True)
    used, unused = (store_chunk(str(root), block_of(s)) for s in ("used", "unused"))
    write_version(str(root), "win10@20260101T000000-aaaaaa", [used])
    for name in (used, unused):
        age(chunk_path(str(root), name), 7200, time.time())
    console.store.add_storage("local", "10.0.0.1:/images", rsync_target=str(root))
    console.store.add_storage("remote", "10.0.0.2:/images", rsync_target="backup@10.0.0.2:/srv/images")
    return root, used, unused


def test_the_button_collects_and_shows_the_report(console, tmp_path):
    root, used, unused = node_with_garbage(console, tmp_path)
    page = console.get("/storage/nodes/local")
    assert page.by_id("collect-chunks").text == "Collect unused chunks"
    assert page.by_id("collect-chunks-form").get("action") == "/storage/nodes/local/gc"
    first = console.post("/storage/nodes/local/gc", {})
    assert first.status == 200
    assert (first.by_id("gc-marked").text, first.by_id("gc-quarantined").text, first.by_id("gc-deleted").text) == (
        "1", "1", "0")
    assert first.by_id("gc-trash").text.startswith("1 (")
    assert os.path.exists(chunk_path(str(root), used)) and not os.path.exists(chunk_path(str(root), unused))
    second = console.post("/storage/nodes/local/gc", {})
    assert second.by_id("gc-deleted").text == "1" and second.by_id("gc-summary").text.startswith("1 chunks deleted")
    entries = [e for e in console.store.accounts.audit_page(0, 10)[0] if e["action"] == "console: collect unused chunks"]
    assert len(entries) == 2 and {(e["target"], e["outcome"]) for e in entries} == {("local", "200")}


def test_refusals_are_shown_with_their_reason(console, tmp_path):
    node_with_garbage(console, tmp_path)
    remote = console.post("/storage/nodes/remote/gc", {})
    assert remote.status == 409 and "not a directory on this server" in remote.by_id("main").text
    assert console.post("/storage/nodes/nowhere/gc", {}).status == 404


def test_technicians_cannot_collect(console, tmp_path):
    root, used, unused = node_with_garbage(console, tmp_path)
    tech = console.user("tech1", "technician")
    assert tech.post("/storage/nodes/local/gc", {}).status == 403
    assert os.path.exists(chunk_path(str(root), unused))
