"""An image's versions on real node directories (listed, an old one deleted, the current one never), images
removed, storage nodes and groups edited and removed: over the HTTP API of a real server process and the CLI."""
import json
import os
import subprocess
import sys

from tests.server_stub.test_api import admin

OLD, NEW = "win10@20260101T000000-aaaaaa", "win10@20260201T000000-bbbbbb"


def version_dir(root, version, raw_bytes):
    path = root / ".images" / version
    path.mkdir(parents=True)
    (path / "disk0-part1.img").write_bytes(b"x" * 1000)
    manifest = {"disks": [{"index": 0, "mode": "partitions", "partitions": [
        {"number": 1, "file": "disk0-part1.img", "raw_bytes": raw_bytes, "stored_bytes": 1000},
        {"number": 2, "file": None, "lvm": {"volumes": [{"raw_bytes": 5}]}}]}]}
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path


def publish(root, version):
    link = root / "win10"
    if link.is_symlink():
        link.unlink()
    link.symlink_to(f".images/{version}")


def setup_nodes(server, tmp_path):
    """Nodes a (master) and b of group room, both directories here; a holds OLD and NEW (current), b only OLD
    (current there: its replica is behind)."""
    a, b = tmp_path / "node-a", tmp_path / "node-b"
    assert admin(server, "POST", "/api/storage-groups", name="room").status_code == 201
    for name, root in (("a", a), ("b", b)):
        r = admin(server, "POST", "/api/storage", name=name, export=f"10.0.0.1:/{name}", group="room",
                  rsync_target=str(root))
        assert r.status_code == 201, r.text
    assert admin(server, "POST", "/api/images", name="win10", group="room", type="multipart").status_code == 201
    version_dir(a, OLD, 4000)
    version_dir(a, NEW, 6000)
    publish(a, NEW)
    version_dir(b, OLD, 4000)
    publish(b, OLD)
    return a, b


def test_versions_are_listed_per_node_with_the_current_one_marked(server, tmp_path):
    setup_nodes(server, tmp_path)
    versions = admin(server, "GET", "/api/images/win10/versions").json()
    assert {(v["version"], v["node"], v["current"]) for v in versions} == {
        (NEW, "a", True), (OLD, "a", False), (OLD, "b", True)}
    new = next(v for v in versions if v["version"] == NEW)
    assert new["raw_bytes"] == 6005 and new["stored_bytes"] == 1000 + len((tmp_path / "node-a" / ".images" / NEW /
                                                                            "manifest.json").read_bytes())
    image = admin(server, "GET", "/api/images/win10").json()
    assert image["type"] == "multipart" and len(image["versions"]) == 3 and image["source_host"] is None


def test_the_current_version_is_never_deleted_an_old_one_is(server, tmp_path):
    a, b = setup_nodes(server, tmp_path)
    r = admin(server, "DELETE", f"/api/images/win10/versions/{NEW}")
    assert r.status_code == 409 and "current version" in r.json()["error"]
    r = admin(server, "DELETE", f"/api/images/win10/versions/{OLD}")  # still b's current
    assert r.status_code == 409 and "on b" in r.json()["error"]
    assert (a / ".images" / OLD).is_dir() and (b / ".images" / OLD).is_dir()
    version_dir(b, NEW, 6000)
    publish(b, NEW)  # b's replica caught up
    r = admin(server, "DELETE", f"/api/images/win10/versions/{OLD}")
    assert r.status_code == 200, r.text
    assert {v["node"] for v in r.json()["removed"]} == {"a", "b"}
    assert not (a / ".images" / OLD).exists() and not (b / ".images" / OLD).exists()
    assert (a / ".images" / NEW / "manifest.json").is_file() and os.readlink(a / "win10") == f".images/{NEW}"
    assert admin(server, "DELETE", f"/api/images/win10/versions/{OLD}").status_code == 404


def test_a_version_name_that_is_not_this_images_is_refused(server, tmp_path):
    a, _ = setup_nodes(server, tmp_path)
    for bad in ("win10@..", "ubuntu@20260101T000000-aaaaaa", "win10"):
        r = admin(server, "DELETE", f"/api/images/win10/versions/{bad}")
        assert r.status_code == 400 and r.json()["details"]["field"] == "version", (bad, r.text)
    assert admin(server, "DELETE", f"/api/images/nope/versions/{OLD}").status_code == 404
    assert len(list((a / ".images").iterdir())) == 2


def test_an_image_in_use_is_not_removed_and_its_tasks_keep_its_name(server, tmp_path):
    setup_nodes(server, tmp_path)
    assert admin(server, "POST", "/api/hosts", mac="52:54:00:00:00:01", name="pc1").status_code == 201
    assert admin(server, "POST", "/api/hosts/pc1", image="win10").status_code == 200
    task = admin(server, "POST", "/api/tasks", host="pc1", type="capture", image="win10").json()
    r = admin(server, "DELETE", "/api/images/win10")
    assert r.status_code == 409 and f"task {task['id']}" in r.json()["error"]
    admin(server, "POST", f"/api/tasks/{task['id']}/cancel")
    assert admin(server, "DELETE", "/api/images/win10").status_code == 200
    assert admin(server, "GET", "/api/images/win10").status_code == 404
    assert admin(server, "GET", f"/api/tasks/{task['id']}").json()["image"] == "win10"
    assert [t["id"] for t in admin(server, "GET", "/api/pages/tasks?image=win10").json()["rows"]] == [task["id"]]
    assert admin(server, "GET", "/api/hosts/pc1").json()["image"] is None
    assert (tmp_path / "node-a" / ".images" / NEW).is_dir()  # the files stay


def test_nodes_and_groups_are_edited_and_removed_only_when_nothing_needs_them(server, tmp_path):
    setup_nodes(server, tmp_path)
    r = admin(server, "DELETE", "/api/storage/a")
    assert r.status_code == 409 and "home of images win10" in r.json()["error"]
    r = admin(server, "DELETE", "/api/storage-groups/room")
    assert r.status_code == 409 and "2 node(s)" in r.json()["error"]
    r = admin(server, "POST", "/api/storage/b", name="b2", export="10.0.0.2:/b", options="vers=3")
    assert (r.status_code, r.json()["name"], r.json()["export"], r.json()["options"]) == (200, "b2", "10.0.0.2:/b",
                                                                                          "vers=3")
    r = admin(server, "POST", "/api/storage/b2", name="a")
    assert r.status_code == 409 and r.json()["details"]["field"] == "name"
    assert admin(server, "POST", "/api/storage/b2", export="nope").json()["details"]["field"] == "export"
    assert admin(server, "DELETE", "/api/storage/b2").status_code == 200
    assert [n["name"] for n in admin(server, "GET", "/api/storage").json()] == ["a"]
    assert admin(server, "POST", "/api/storage-groups", name="other").status_code == 201
    r = admin(server, "POST", "/api/storage-groups/room", name="other")
    assert r.status_code == 409 and r.json()["details"]["field"] == "name"
    assert admin(server, "POST", "/api/storage-groups/room", name="lab").json()["name"] == "lab"
    assert admin(server, "GET", "/api/images/win10").json()["group_name"] == "lab"
    assert admin(server, "DELETE", "/api/images/win10").status_code == 200
    assert admin(server, "DELETE", "/api/storage/a").status_code == 200
    assert admin(server, "DELETE", "/api/storage-groups/lab").status_code == 200
    assert [g["name"] for g in admin(server, "GET", "/api/storage-groups").json()] == ["other"]


def test_a_master_with_other_nodes_is_not_removed(server, tmp_path):
    setup_nodes(server, tmp_path)
    admin(server, "POST", "/api/storage/b", master=True)  # b is master now; a still holds win10
    assert admin(server, "DELETE", "/api/storage/b").json()["error"].endswith("make another node its master first")


def test_the_cli_lists_and_removes_versions_images_and_nodes(server, tmp_path):
    a, b = setup_nodes(server, tmp_path)
    base = [sys.executable, "-m", "server_stub", "--server", server["url"], "--token-file",
            str(server["data"] / "admin.token")]

    def cli(*args):
        return subprocess.run([*base, *args], capture_output=True, text=True, timeout=30)

    listed = cli("image", "versions", "win10")
    assert listed.returncode == 0 and NEW in listed.stdout and "5.9 KiB" in listed.stdout, listed.stderr  # 6005 bytes
    shown = cli("image", "show", "win10").stdout
    assert "multipart" in shown and OLD in shown
    refused = cli("image", "remove-version", "win10", NEW)
    assert refused.returncode == 1 and "current version" in refused.stderr
    version_dir(b, NEW, 6000)
    publish(b, NEW)
    assert cli("image", "remove-version", "win10", OLD).returncode == 0
    assert not (a / ".images" / OLD).exists()
    assert cli("storage", "remove", "b").returncode == 0
    assert cli("storage", "group", "rename", "room", "lab").returncode == 0
    assert cli("image", "remove", "win10").returncode == 0
    assert cli("storage", "remove", "a").returncode == 0
    assert cli("storage", "group", "remove", "lab").returncode == 0
    assert "lab" not in cli("storage", "group", "list").stdout
