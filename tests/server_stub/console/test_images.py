"""The Images pages: sizes (data against stored bytes), versions on the nodes, copies per node, the capture
that made the image; adding, deleting (an old version, the image) and replicating, admin only."""
import asyncio
import json
import os

import pytest

OLD, NEW = "win@20260101T000000-aaaaaa", "win@20260201T000000-bbbbbb"


def version_dir(root, version, raw_bytes, stored):
    """A published version as imager leaves it: its stream files and a manifest naming their raw size."""
    path = root / ".images" / version
    path.mkdir(parents=True)
    (path / "d1p1.pcl.zst").write_bytes(b"x" * stored)
    (path / "manifest.json").write_text(json.dumps(
        {"disks": [{"partitions": [{"number": 1, "file": "d1p1.pcl.zst", "raw_bytes": raw_bytes}]}]}))
    return path


@pytest.fixture
def captured(console, tmp_path):
    """Image win on node a, captured from pc1, with an old and a current version; node b in the same group
    (both local directories, so a replication is a real rsync between them and never leaves this machine)."""
    store = console.store
    root = tmp_path / "images"
    root.mkdir()
    store.add_storage("a", "10.0.0.1:/images", rsync_target=str(root))
    (tmp_path / "b").mkdir()
    store.add_storage("b", "10.0.0.2:/images", rsync_target=str(tmp_path / "b"))
    store.add_image("win", group="default", description="lab PCs")
    store.add_host("52:54:00:00:00:01", "pc1")
    task = store.add_task("pc1", "capture", "win")
    store.start_task(task["id"])
    old = version_dir(root, OLD, 8 * 2**20, 1000)
    os.utime(old, (1, 1))
    version_dir(root, NEW, 5 * 2**20, 2 * 2**20)
    (root / "win").symlink_to(f".images/{NEW}")
    store.finish_task(task["id"], {"stored_bytes": 2 * 2**20 + 200})
    return {"root": root, "task": task}


def test_list_shows_sizes_ratio_versions_and_capture(console, captured):
    page = console.get("/images")
    assert page.status == 200
    row = page.by_id("images-table").rows()[0]
    assert row[0] == "win lab PCs" and row[1] == "resizable" and row[2] == "chunked" and row[3] == "default"
    assert row[4:8] == ["5.0 MiB", "2.0 MiB", "40 %", "2"]
    assert row[9].endswith("UTC")


def test_image_page_shows_capture_versions_and_copies(console, captured):
    page = console.get("/images/win")
    assert page.status == 200
    assert page.by_id("image-raw").text == "5.0 MiB" and page.by_id("image-stored").text == "2.0 MiB (40 % of the data)"
    made = page.by_id("image-captured")
    assert "from pc1" in made.text and made.find("a", href=f"/tasks/{captured['task']['id']}") is not None
    versions = page.by_id("image-versions").rows()
    assert [v[0] for v in versions] == [f"{NEW} current", OLD]
    assert versions[0][2] == "2026-02-01 00:00 UTC"  # the capture time its stamp says
    assert page.doc.has_id(f"remove-version-a-{OLD}") and not page.doc.has_id(f"remove-version-a-{NEW}")
    copies = {r[0]: r for r in page.by_id("image-replicas").rows()}
    assert copies["a (home)"][1] == "yes" and copies["b"][1] == "no"
    assert copies["b"][2].endswith("queued")  # the capture queued the copy to b


def test_delete_old_version_and_refuse_the_current_one(console, captured):
    refused = console.post(f"/images/win/versions/{NEW}/remove")
    assert refused.status == 409 and "only older versions can be removed" in refused.by_id("image-error").text
    assert (captured["root"] / ".images" / NEW).is_dir()
    done = console.post(f"/images/win/versions/{OLD}/remove")
    assert done.status == 303 and done.notice == f"Version {OLD} removed from a."
    assert not (captured["root"] / ".images" / OLD).exists()
    stale = console.post(f"/images/win/versions/{OLD}/remove")  # the page was stale: said, not a 500
    assert stale.status == 404 and "no version" in stale.by_id("image-error").text


def test_delete_image_refused_while_in_use(console, captured):
    store = console.store
    task = store.add_task("pc1", "deploy", "win")
    refused = console.post("/images/win/remove")
    assert refused.status == 409 and f"deploy task {task['id']}" in refused.by_id("image-error").text
    store.cancel_task(task["id"])
    store.db.execute("UPDATE replication_jobs SET state = 'failed'")
    done = console.post("/images/win/remove")
    assert done.status == 303 and done.location.startswith("/images?")
    assert store.images() == []
    assert console.post("/images/win/remove").status == 404
    assert console.get("/images/win").status == 404


def test_add_image_with_errors_next_to_fields(console):
    console.store.add_storage("a", "10.0.0.1:/images")
    form = console.get("/images").form("add-image-form").form_values()
    assert form["group"] == "default" and form["type"] == "resizable"
    done = console.post("/images", {**form, "name": "lab", "type": "multipart", "description": "room 2"})
    assert done.status == 303 and done.location.startswith("/images/lab?")
    image = console.store.image("lab")
    assert (image["type"], image["description"], image["group_name"]) == ("multipart", "room 2", "default")
    bad = console.post("/images", {**form, "name": "bad name!"})
    assert bad.status == 400 and "letters, digits" in bad.by_id("add-image-name-error").text
    assert bad.form("add-image-form").form_values()["name"] == "bad name!"
    bad = console.post("/images", {**form, "name": "lab"})
    assert bad.status == 409 and "exists already" in bad.by_id("add-image-name-error").text
    bad = console.post("/images", {**form, "name": "x", "type": "floppy"})
    assert bad.status == 400 and "floppy" in bad.by_id("add-image-type-error").text
    bad = console.post("/images", {**form, "name": "x", "group": "nowhere"})
    assert bad.status == 404 and "nowhere" in bad.by_id("add-image-group-error").text
    assert [i["name"] for i in console.store.images()] == ["lab"]


def test_replicate_now(console, captured, tmp_path):
    store = console.store
    store.db.execute("UPDATE replication_jobs SET state = 'failed', error = 'host unreachable'")
    page = console.get("/images/win")
    assert "host unreachable" in page.by_id("replica-b").text
    done = console.post("/images/win/replicate")
    assert done.status == 303 and done.notice == "Image win: copies to b queued."
    old, new = store.replication_jobs("win")
    assert old["state"] == "failed"
    for _ in range(100):  # the replicator was woken: rsync copies a to b in the app's loop
        if store.replication_job(new["id"])["state"] in ("done", "failed"):
            break
        console.harness.run(asyncio.sleep(0.1))
    assert store.replication_job(new["id"])["state"] == "done"
    assert (tmp_path / "b" / ".images" / NEW / "d1p1.pcl.zst").stat().st_size == 2 * 2**20
    copies = {r[0]: r for r in console.get("/images/win").by_id("image-replicas").rows()}
    assert copies["b"][1] == "yes" and copies["b"][2] == f"#{new['id']} done"
    store.add_image("empty", group="default")
    refused = console.post("/images/empty/replicate")
    assert refused.status == 409 and "never been captured" in refused.by_id("image-error").text


def test_empty_list_and_technician_rights(console, technician):
    page = console.get("/images")
    assert "No image yet" in page.by_id("main").text and "add a storage node" in page.by_id("main").text
    console.store.add_storage("a", "10.0.0.1:/images")
    console.store.add_image("win", group="default")
    page = technician.get("/images/win")
    assert page.status == 200 and not page.doc.has_id("remove-image-form")
    assert not technician.get("/images").doc.has_id("add-image-form")
    assert technician.post("/images/win/remove").status == 403
    assert technician.post("/images", {"name": "x", "group": "default"}).status == 403
    assert technician.post("/images/win/replicate").status == 403
    assert [i["name"] for i in console.store.images()] == ["win"]
