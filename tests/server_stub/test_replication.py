"""Storage groups through a real server: real rsync between local directories (the nodes' exports), the
wait queue seen by the real client code, and what survives a restart."""
import json
import logging
import socket
import subprocess
import sys
import os
import threading
import time

import pytest
import requests

from imager import imagestore
from imager.api import TaskClient
from server_stub.errors import Invalid
from tests.server_stub.conftest import free_port
from tests.server_stub.test_api import admin, token_of


def publish(root, name, payload: bytes) -> str:
    """A captured image as imager/imagestore.py leaves it: a version directory, then the symlink."""
    staging = imagestore.Staging(str(root), name)
    with open(os.path.join(staging.path, "d1p1.ext4.zst"), "wb") as f:
        f.write(payload)
    os.makedirs(os.path.join(staging.path, "extra"))
    with open(os.path.join(staging.path, "extra", "d1.sfdisk"), "w") as f:
        f.write("label: gpt\n")
    with open(os.path.join(staging.path, "manifest.json"), "w") as f:
        f.write('{"format": 1}\n')
    staging.publish()
    return staging.version


def tree(root) -> dict:
    found = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            found[os.path.relpath(path, root)] = open(path, "rb").read()
    return found


def client(server, mac, task_id):
    return TaskClient(server["url"], task_id, token_of(server, mac), attempts=2, base_delay=0.1)


def new_task(server, host, kind, mac):
    admin(server, "POST", "/api/hosts", mac=mac, name=host)
    task = admin(server, "POST", "/api/tasks", host=host, type=kind, image="win10")
    assert task.status_code == 201, task.text
    return client(server, mac, task.json()["id"]), task.json()["id"]


def wait_jobs(server, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = admin(server, "GET", "/api/replication").json()
        if jobs and all(j["state"] in ("done", "failed") for j in jobs):
            return {j["node"]: j for j in jobs}
        time.sleep(0.2)
    raise AssertionError(f"replication did not end: {jobs}")


def setup_group(server, tmp_path, bad_target):
    for d in ("m", "n1"):
        (tmp_path / d).mkdir()
    assert admin(server, "POST", "/api/storage-groups", name="room").status_code == 201
    for name, target in (("m", str(tmp_path / "m")), ("n1", str(tmp_path / "n1")), ("bad", bad_target)):
        r = admin(server, "POST", "/api/storage", name=name, export=f"10.0.0.1:/{name}", group="room",
                  rsync_target=target, max_clients=1)
        assert r.status_code == 201, r.text
    assert admin(server, "GET", "/api/storage-groups").json()[0]["master"] == "m"
    assert admin(server, "POST", "/api/images", name="win10", group="room").status_code == 201


def test_capture_goes_to_master_replicates_with_rsync_and_deploys_use_done_replicas(server, tmp_path):
    closed_port = free_port()  # nothing listens there: rsync fails to connect
    setup_group(server, tmp_path, f"rsync://127.0.0.1:{closed_port}/images/room")
    payload = os.urandom(3_000_000)

    capturer, capture_id = new_task(server, "pc0", "capture", "52:54:00:00:02:00")
    answer = capturer.checkin()
    assert answer["storage"]["name"] == "m" and answer["storage"]["export"] == "10.0.0.1:/m"
    version = publish(tmp_path / "m", "win10", payload)  # what the client's capture does on the NFS export
    capturer.done({"stored_bytes": len(payload)})

    jobs = wait_jobs(server)
    assert jobs["n1"]["state"] == "done" and jobs["n1"]["version"] == version
    assert jobs["n1"]["bytes"] >= len(payload) and jobs["n1"]["source"] == "m"
    assert jobs["bad"]["state"] == "failed"
    assert "rsync exited with" in jobs["bad"]["error"] and "127.0.0.1" in jobs["bad"]["error"], jobs["bad"]["error"]
    # The node holds the version directory and the link, like the master.
    assert os.readlink(tmp_path / "n1" / "win10") == f".images/{version}"
    assert tree(tmp_path / "n1") == tree(tmp_path / "m")
    assert admin(server, "GET", "/api/images").json()[0]["replicas"] == ["m", "n1"]

    # Deploys: m and n1 (1 slot each) serve; "bad" never does, even when every other node is full.
    first, first_id = new_task(server, "pc1", "deploy", "52:54:00:00:02:01")
    second, second_id = new_task(server, "pc2", "deploy", "52:54:00:00:02:02")
    nodes = {first.checkin()["storage"]["name"], second.checkin()["storage"]["name"]}
    assert nodes == {"m", "n1"}
    third, third_id = new_task(server, "pc3", "deploy", "52:54:00:00:02:03")
    base = server["url"] + "/api/tasks"
    wait = requests.post(f"{base}/{third_id}/checkin", headers=third.session.headers, json={}, timeout=10).json()
    assert wait["wait"] is True and wait["reason"] == (
        "storage full: every node holding the image is busy (m 1/1, n1 1/1 clients); waiting (position 1)")

    # A restart: the jobs, the replicas, each running task's node and the count per node stay.
    server["restart"]()
    assert {j["node"]: j["state"] for j in admin(server, "GET", "/api/replication").json()} == {
        "n1": "done", "bad": "failed"}
    assert admin(server, "GET", "/api/images").json()[0]["replicas"] == ["m", "n1"]
    assert {t["id"]: t["storage"] for t in admin(server, "GET", "/api/tasks").json()}[first_id] in ("m", "n1")
    assert requests.post(f"{base}/{third_id}/checkin", headers=third.session.headers, json={},
                         timeout=10).json()["wait"] is True
    first.progress({"percent": 50})
    freed = admin(server, "GET", f"/api/tasks/{first_id}").json()["storage"]
    first.done({})
    assert third.checkin()["storage"]["name"] == freed
    assert admin(server, "GET", f"/api/tasks/{capture_id}").json()["storage"] == "m"


def test_a_new_version_replaces_the_old_one_on_the_node_in_one_rename(server, tmp_path):
    setup_group(server, tmp_path, str(tmp_path / "a-file" / "below"))
    (tmp_path / "a-file").write_text("not a directory")
    capturer, _ = new_task(server, "pc0", "capture", "52:54:00:00:02:00")
    capturer.checkin()
    old = publish(tmp_path / "m", "win10", b"old" * 1000)
    capturer.done({})
    jobs = wait_jobs(server)
    assert jobs["n1"]["state"] == "done"
    assert jobs["bad"]["state"] == "failed" and "Not a directory" in jobs["bad"]["error"], jobs["bad"]["error"]
    (tmp_path / "n1" / ".images" / "other@20200101T000000-abcdef").mkdir()  # another image's version: kept

    # A reader on the node sees the old version or the new one, whole, never no image.
    seen, stop = set(), threading.Event()

    def reader():
        while not stop.is_set():
            seen.add(os.readlink(tmp_path / "n1" / "win10"))  # raises if the link is ever missing

    watcher = threading.Thread(target=reader)
    watcher.start()
    try:
        capturer, _ = new_task(server, "pc9", "capture", "52:54:00:00:02:09")
        capturer.checkin()
        new = publish(tmp_path / "m", "win10", os.urandom(2_000_000))
        capturer.done({})
        time.sleep(0.5)  # the jobs are queued; wait for the second round
        deadline = time.monotonic() + 60
        while os.readlink(tmp_path / "n1" / "win10") != f".images/{new}" and time.monotonic() < deadline:
            time.sleep(0.1)
        wait_jobs(server)
    finally:
        stop.set()
        watcher.join()
    assert seen == {f".images/{old}", f".images/{new}"}
    assert sorted(os.listdir(tmp_path / "n1" / ".images")) == sorted([new, "other@20200101T000000-abcdef"])
    assert tree(tmp_path / "n1" / ".images" / new) == tree(tmp_path / "m" / ".images" / new)
    # Asking again copies nothing new and publishes the same version.
    r = admin(server, "POST", "/api/images/win10/replicate")
    assert r.status_code == 202 and sorted(j["node"] for j in r.json()) == ["bad", "n1"]
    jobs = wait_jobs(server)
    assert jobs["n1"]["state"] == "done" and jobs["n1"]["version"] == new and jobs["n1"]["bytes"] == 0


def test_the_waiting_client_says_why_and_gets_a_node_when_a_slot_frees(server, tmp_path, caplog):
    (tmp_path / "m").mkdir()
    admin(server, "POST", "/api/storage", name="m", export="10.0.0.1:/m", max_clients=1)  # group "default"
    assert admin(server, "POST", "/api/images", name="win10", group="default").status_code == 201
    holder, holder_id = new_task(server, "pc0", "capture", "52:54:00:00:02:00")
    assert holder.checkin()["storage"]["name"] == "m"
    queued, queued_id = new_task(server, "pc1", "capture", "52:54:00:00:02:01")
    got = {}
    caplog.set_level(logging.INFO)
    waiter = threading.Thread(target=lambda: got.update(queued.checkin()))
    waiter.start()
    try:
        deadline = time.monotonic() + 20
        while "storage full" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "storage full: 1/1 clients on node m; waiting (position 1); asking again in 5 s" in caplog.text
        record = admin(server, "GET", f"/api/tasks/{queued_id}").json()
        assert record["state"] == "queued" and record["progress"]["stage"].startswith("waiting: storage full")
        holder.done({})
    finally:
        waiter.join(30)
    assert got["state"] == "running" and got["storage"]["name"] == "m"
    assert admin(server, "GET", f"/api/tasks/{queued_id}").json()["storage"] == "m"


def test_a_node_behind_an_rsync_daemon(server, tmp_path):
    """The target as a site runs it: an rsync daemon module (on loopback here), written with the module's
    settings a site needs: writable, no symlink munging (NFS readers follow the link)."""
    (tmp_path / "m").mkdir()
    (tmp_path / "d").mkdir()
    port = free_port()
    conf = tmp_path / "rsyncd.conf"
    conf.write_text(f"pid file = {tmp_path}/rsyncd.pid\nuse chroot = no\nuid = root\ngid = root\n"
                    f"[images]\npath = {tmp_path}/d\nread only = no\nmunge symlinks = no\n")
    daemon = subprocess.Popen(["rsync", "--daemon", "--no-detach", f"--config={conf}", "--address=127.0.0.1",
                               f"--port={port}", f"--log-file={tmp_path}/rsyncd.log"])
    try:
        for _ in range(50):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        admin(server, "POST", "/api/storage", name="m", export="10.0.0.1:/m", rsync_target=str(tmp_path / "m"))
        r = admin(server, "POST", "/api/storage", name="d", export="10.0.0.2:/d",
                  rsync_target=f"rsync://127.0.0.1:{port}/images/room1")
        assert r.status_code == 201 and r.json()["rsync_target"].endswith("/images/room1/")
        admin(server, "POST", "/api/images", name="win10", group="default")
        capturer, _ = new_task(server, "pc0", "capture", "52:54:00:00:02:00")
        capturer.checkin()
        version = publish(tmp_path / "m", "win10", os.urandom(500_000))
        capturer.done({})
        job = wait_jobs(server)["d"]
        assert job["state"] == "done", job["error"]
        assert os.readlink(tmp_path / "d" / "room1" / "win10") == f".images/{version}"
        assert tree(tmp_path / "d" / "room1") == tree(tmp_path / "m")
    finally:
        daemon.terminate()
        daemon.wait(10)


def test_rsync_argv_per_target_kind():
    from server_stub import replication
    from server_stub.store.validate import check_rsync_target
    ssh = check_rsync_target("backup@node2.example:/srv/images")
    assert ssh == "backup@node2.example:/srv/images/"
    argv = replication.copy_argv("/srv/images/", ssh, "win10@20260101T000000-abcdef")
    assert argv[-2:] == ["/srv/images/.images/win10@20260101T000000-abcdef/",
                         "backup@node2.example:/srv/images/.images/win10@20260101T000000-abcdef/"]
    assert argv[argv.index("-e") + 1].startswith("ssh -o BatchMode=yes")  # a key, never a password prompt
    daemon = replication.link_argv("/tmp/x/win10", check_rsync_target("rsync://node3:8873/images"))
    assert "--contimeout=30" in daemon and "-e" not in daemon and daemon[-1] == "rsync://node3:8873/images/"
    prune = replication.prune_argv("/tmp/empty", "/srv/n1/", "win10", "win10@1")
    assert prune[-1] == "/srv/n1/.images/" and "--filter=P /win10@1" in prune
    for bad in ("-e sh:/x", "host:relative", "rsync://host", "/srv/../etc", "a b:/x", "::module", ""):
        with pytest.raises(Invalid):
            check_rsync_target(bad)


def test_the_cli_sets_up_a_group_replicates_and_shows_the_jobs(server, tmp_path):
    base = [sys.executable, "-m", "server_stub", "--server", server["url"],
            "--token-file", str(server["data"] / "admin.token")]

    def cli(*args):
        done = subprocess.run([*base, *args], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout

    (tmp_path / "m").mkdir()
    cli("storage", "group", "add", "room")
    cli("storage", "add", "m", "10.0.0.1:/m", "--group", "room", "--rsync-target", str(tmp_path / "m"))
    cli("storage", "add", "n1", "10.0.0.2:/n1", "--group", "room", "--max-clients", "3")
    cli("storage", "set", "n1", "--rsync-target", str(tmp_path / "n1"))
    cli("storage", "add", "n2", "10.0.0.3:/n2", "--group", "room", "--master", "--rsync-target", str(tmp_path / "n2"))
    cli("storage", "set", "m", "--master")
    groups = cli("storage", "group", "list")
    assert groups.splitlines()[1].split()[1:] == ["room", "m", "3"], groups
    nodes = {line.split()[0]: line.split() for line in cli("storage", "list").splitlines()[1:]}
    assert nodes["m"][1:3] == ["room", "yes"] and nodes["n1"][2] == "10.0.0.2:/n1" and "0/3" in nodes["n1"]
    cli("image", "add", "win10", "--group", "room")
    capturer, _ = new_task(server, "pc0", "capture", "52:54:00:00:02:00")
    capturer.checkin()
    version = publish(tmp_path / "m", "win10", b"x" * 100_000)
    capturer.done({})
    wait_jobs(server)
    assert "win10@" in cli("replication", "list", "--image", "win10")
    queued = json.loads(cli("image", "replicate", "win10", "--json"))
    assert sorted(j["node"] for j in queued) == ["n1", "n2"]
    wait_jobs(server)
    jobs = cli("replication", "list").splitlines()
    assert len(jobs) == 5 and all(" done " in line and version in line for line in jobs[1:]), jobs
    images = cli("image", "list")
    assert "m,n1,n2" in images, images
