"""Multicast sessions: the records' state machine (SQLite), and (root) a real imager-server with real
udp-sender processes in network namespaces this test creates, clients played by curl + udp-receiver."""
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from server_stub import multicast
from server_stub.errors import Conflict, Invalid
from server_stub.store import Store

# --- pure ------------------------------------------------------------------------------------------------

def test_rates():
    assert multicast.parse_rate("200m") == 200_000_000
    assert multicast.parse_rate("1g") == 10**9 and multicast.parse_rate("500k") == 500_000
    assert multicast.parse_rate(None) is None
    for bad in ("fast", "10", "-5m", "1t"):
        with pytest.raises(Invalid):
            multicast.parse_rate(bad)


def test_files_in_restore_order_and_lvm_refused():
    image = {"disks": [{"partitions": [{"number": 1, "file": "d1p1.pcl.zst"}, {"number": 2, "tool": "swap"},
                                       {"number": 3, "file": "d1p3.pcl.zst"}]},
                       {"partitions": [{"number": 1, "file": "d2p1.pcl.zst"}]}]}
    assert multicast.image_files(image) == ["d1p1.pcl.zst", "d1p3.pcl.zst", "d2p1.pcl.zst"]
    assert multicast.image_files({"disks": [{"mode": "raw", "file": "d1.raw.zst"}]}) == ["d1.raw.zst"]
    with pytest.raises(Invalid, match="LVM"):
        multicast.image_files({"disks": [{"partitions": [{"number": 1, "lvm": {"volumes": []}}]}]})


# --- records --------------------------------------------------------------------------------------------

def published(root: Path, name: str, files: dict[str, bytes]) -> str:
    """An image version directory as imager publishes it (a symlink to .images/<name>@<stamp>)."""
    version = f"{name}@20260101T000000-abcdef"
    vdir = root / ".images" / version
    vdir.mkdir(parents=True)
    parts = []
    for i, (file, data) in enumerate(files.items(), 1):
        (vdir / file).write_bytes(data)
        parts.append({"number": i, "file": file})
    (vdir / "manifest.json").write_text(json.dumps({"disks": [{"partitions": parts}]}))
    (root / name).symlink_to(f".images/{version}")
    return version


def store_with_image(tmp_path):
    """A store with node 'node' (its directory: the returned ``images``) and image 'img', counted as captured."""
    s = Store(str(tmp_path / "s.sqlite3"))
    images = tmp_path / "images"
    images.mkdir()
    s.add_storage("node", "10.0.0.1:/images", rsync_target=str(images))
    s.add_image("img", storage="node")
    s.db.execute("UPDATE images SET captured = ?", time.time())
    return s, images


@pytest.fixture
def store(tmp_path):
    s, images = store_with_image(tmp_path)
    published(images, "img", {"d1p1.pcl.zst": b"one", "d1p2.pcl.zst": b"two"})
    for i in range(3):
        s.add_host(f"52:54:00:00:00:0{i}", f"pc{i}")
    yield s
    s.close()


def new_session(store, hosts=("pc0", "pc1", "pc2"), **kw):
    image = store.image("img")
    node, image_dir, version = multicast.local_image(store, image)
    files = multicast.image_files(json.loads(Path(image_dir, "manifest.json").read_text()))
    return store.add_session(image, list(hosts), min_receivers=kw.get("min_receivers"), max_wait=60, rate=None,
                             interface="eth0", image_dir=image_dir, version=version, files=files,
                             storage_id=node["id"])


def test_session_creates_one_task_per_host_all_or_none(store):
    s = new_session(store)
    assert s["state"] == "waiting" and s["min_receivers"] == 3 and s["version"] == "img@20260101T000000-abcdef"
    assert s["files"] == ["d1p1.pcl.zst", "d1p2.pcl.zst"] and s["portbase"] % 2 == 0
    assert [(c["host"], c["state"], c["task_state"]) for c in s["clients"]] == [
        ("pc0", "queued", "queued"), ("pc1", "queued", "queued"), ("pc2", "queued", "queued")]
    assert {store.task(c["task_id"])["type"] for c in s["clients"]} == {"multicast"}
    with pytest.raises(Conflict, match="pc1"):  # pc1 is busy: no session, no task for pc0
        new_session(store, hosts=("pc1",))
    assert len(store.sessions()) == 1
    with pytest.raises(Invalid):
        new_session(store, hosts=("pc0",), min_receivers=2)


def test_join_ready_send_and_the_late_client_falls_back(store):
    s = new_session(store, min_receivers=2)
    t0, t1, t2 = (c["task_id"] for c in s["clients"])
    task, answer = store.multicast_checkin(store.task(t0), "10.0.0.10")
    assert task["state"] == "running" and task["storage_id"] is None   # no storage slot for a receiver
    assert answer["client"] == "joined" and not answer.get("fallback") and answer["storage"] == "node"
    assert [f["portbase"] for f in answer["files"]] == [s["portbase"], s["portbase"] + 2]
    assert store.multicast_ready(t0)["state"] == "waiting"
    assert store.session(s["id"])["first_ready"] is not None
    store.multicast_checkin(store.task(t1), "10.0.0.11")
    store.multicast_ready(t1)
    receivers = store.multicast_sending(s["id"])
    assert sorted(c["task_id"] for c in receivers) == [t0, t1]
    assert store.multicast_ready(t0).get("join") is True
    # pc2 boots after the sending began: told so, and it deploys by unicast from the session's node
    task, answer = store.multicast_checkin(store.task(t2), "10.0.0.12")
    assert answer["fallback"] is True and "unicast" in answer["reason"]
    assert task["state"] == "running" and task["storage"] == "node"
    store.multicast_drop(s["id"], "10.0.0.11", "dropped by udp-sender")
    shown = {c["task_id"]: c for c in store.session(s["id"])["clients"]}
    assert shown[t1]["state"] == "dropped" and shown[t2]["state"] == "fallback"


def test_go_cancel_and_restart(store):
    s = new_session(store, hosts=("pc0", "pc1"))
    assert store.multicast_go(s["id"])["go"] == 1
    store.multicast_end(s["id"], "canceled", "canceled by an admin")
    states = {store.task(c["task_id"])["state"] for c in store.session(s["id"])["clients"]}
    assert states == {"canceled"}
    with pytest.raises(Conflict):
        store.multicast_go(s["id"])
    # a server that stops while sending: the session failed, the receiving clients' tasks failed with why
    s = new_session(store, hosts=("pc0", "pc1"), min_receivers=1)
    t0, t1 = (c["task_id"] for c in s["clients"])
    store.multicast_checkin(store.task(t0), "10.0.0.10")
    store.multicast_ready(t0)
    store.multicast_sending(s["id"])
    store.multicast_sender(s["id"], "d1p1.pcl.zst", 999999, "")
    rows = store.multicast_interrupted()
    assert [r["sender_pid"] for r in rows] == [999999]
    after = store.session(s["id"])
    assert after["state"] == "failed" and "restarted" in after["error"]
    assert store.task(t0)["state"] == "failed" and "restarted" in store.task(t0)["error"]["message"]
    assert store.multicast_checkin(store.task(t1), None)[1]["fallback"] is True   # queued: unicast later


def test_image_must_be_local_to_the_server(store, tmp_path):
    store.set_storage("node", rsync_target="rsync://backup/images")
    with pytest.raises(Conflict, match="rsync-target"):
        multicast.local_image(store, store.image("img"))


def test_a_fog_image_read_as_it_lies_is_not_multicast_but_named(store, tmp_path):
    fog = tmp_path / "images" / "win10"
    fog.mkdir()
    for name in ("d1.partitions", "d1.mbr", "d1p1.img"):
        (fog / name).write_bytes(b"")
    store.add_image("win10", storage="node")
    store.db.execute("UPDATE images SET captured = ? WHERE name = 'win10'", time.time())
    with pytest.raises(Conflict, match="fog image read as it lies .* Deploy it by unicast"):
        multicast.local_image(store, store.image("win10"))


# --- a real server and real udp-senders, in namespaces (root) -----------------------------------------------

NEEDS = [t for t in ("udp-sender", "udp-receiver", "ip", "curl") if not shutil.which(t)]
SERVER = "10.233.0.1"


def sh(*argv, check=True):
    return subprocess.run(argv, check=check, capture_output=True, text=True)


class Net:
    """imgmcs-<pid>-{sw,s,r1,r2}: a bridge, the server (10.233.0.1) and two clients; nothing else."""

    def __init__(self, tmp: Path):
        self.prefix = f"imgmcs-{os.getpid()}-"
        self.tmp = tmp
        self.created: list[str] = []
        self.procs: list[subprocess.Popen] = []
        self.server: subprocess.Popen | None = None

    def __enter__(self):
        try:
            return self._build()
        except BaseException:
            self.__exit__()  # a half-built lab is torn down too: every namespace made so far goes
            raise

    def _build(self):
        sw = self.ns("sw")
        sh("ip", "-n", sw, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
        sh("ip", "-n", sw, "link", "set", "br0", "up")
        for port, ip in (("s", SERVER), ("r1", "10.233.1.1"), ("r2", "10.233.1.2")):
            ns = self.ns(port)
            sh("ip", "-n", sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "-n", sw, "link", "set", port, "master", "br0", "up")
            sh("ip", "-n", ns, "addr", "add", f"{ip}/16", "brd", "+", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
        return self

    def ns(self, name):
        full = self.prefix + name
        sh("ip", "netns", "add", full)
        self.created.append(full)
        sh("ip", "-n", full, "link", "set", "lo", "up")
        return full

    def start_server(self):
        self.server = subprocess.Popen(
            ["ip", "netns", "exec", self.prefix + "s", sys.executable, "-m", "server_stub", "serve", "--bind", SERVER,
             "--http-port", "8080", "--tftp-port", "6969", "--data-dir", str(self.tmp / "data"),
             "--boot-dir", str(self.tmp)], stdout=open(self.tmp / "server.log", "ab"), stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parents[2])
        for _ in range(100):
            if sh("ip", "netns", "exec", self.prefix + "s", "curl", "-sf", f"http://{SERVER}:8080/boot.ipxe",
                  check=False).returncode == 0:
                break
            time.sleep(0.1)
        self.admin = (self.tmp / "data" / "admin.token").read_text().strip()

    def stop_server(self, sig=signal.SIGTERM):
        self.server.send_signal(sig)
        self.server.wait(20)

    def call(self, method, path, body=None, token=None, where="s"):
        out = sh("ip", "netns", "exec", self.prefix + where, "curl", "-s", "-X", method, "-H",
                 f"Authorization: Bearer {token or self.admin}", "-H", "Content-Type: application/json",
                 *(["-d", json.dumps(body)] if body is not None else []), f"http://{SERVER}:8080{path}")
        return json.loads(out.stdout)

    def token(self, mac):
        out = sh("ip", "netns", "exec", self.prefix + "s", "curl", "-s", f"http://{SERVER}:8080/boot/{mac}.ipxe")
        words = dict(w.split("=", 1) for w in out.stdout.split() if w.startswith(("imager.task=", "imager.claim=")))
        claimed = sh("ip", "netns", "exec", self.prefix + "s", "curl", "-s", "-X", "POST", "-H",
                     "Content-Type: application/json", "-d", json.dumps({"claim": words["imager.claim"]}),
                     f"http://{SERVER}:8080/api/tasks/{words['imager.task']}/claim")
        return json.loads(claimed.stdout)["token"]

    def receiver(self, where, portbase, out: Path):
        from server_stub.udpcast import ReceiverOptions, receiver_argv
        argv = receiver_argv(ReceiverOptions(portbase=portbase, interface="eth0", mcast_rdv_address=SERVER,
                                             start_timeout=60, receive_timeout=10, progress=False), out)
        proc = subprocess.Popen(["ip", "netns", "exec", self.prefix + where, *argv], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, start_new_session=True)
        self.procs.append(proc)
        return proc

    def __exit__(self, *exc):
        try:
            for proc in self.procs:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
            if self.server is not None and self.server.poll() is None:
                try:
                    self.stop_server()
                except subprocess.TimeoutExpired:
                    self.server.kill()
                    self.server.wait()
        finally:  # whatever failed above, the namespaces go
            for name in reversed(self.created):
                sh("ip", "netns", "delete", name, check=False)


MACS = ("52:54:00:aa:00:01", "52:54:00:aa:00:02", "52:54:00:aa:00:03")


def serve_captured_image(net, images):
    """The server started with one node holding ``images``, image 'img' on it, the hosts of MACS, and the image
    counted as captured (a capture task ended: played as its client would)."""
    net.start_server()
    net.call("POST", "/api/storage", {"name": "node", "export": f"{SERVER}:/images", "rsync_target": str(images)})
    net.call("POST", "/api/images", {"name": "img", "storage": "node"})
    for i, mac in enumerate(MACS):
        net.call("POST", "/api/hosts", {"mac": mac, "name": f"pc{i}"})
    task = net.call("POST", "/api/tasks", {"host": "pc2", "type": "capture", "image": "img"})
    token = net.token(MACS[2])
    net.call("POST", f"/api/tasks/{task['id']}/checkin", {}, token=token)
    net.call("POST", f"/api/tasks/{task['id']}/done", {"result": {}}, token=token)


@pytest.fixture
def net(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    files = {"d1p1.pcl.zst": os.urandom(6 << 20), "d1p2.pcl.zst": os.urandom(1 << 20) + b"imager" * 50_000,
             "d1p3.pcl.zst": os.urandom(2 << 20)}
    published(images, "img", files)
    with Net(tmp_path) as net:
        serve_captured_image(net, images)
        net.files = files
        net.images = images
        yield net


def clients(net, session):
    return {c["host"]: c for c in session["clients"]}


def join(net, session, host, where):
    c = clients(net, session)[host]
    token = net.token(MACS[int(host[-1])])
    answer = net.call("POST", f"/api/tasks/{c['task_id']}/checkin", {}, token=token, where=where)
    return c["task_id"], token, answer


def wait_session(net, sid, cond, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = net.call("GET", f"/api/multicast/{sid}")
        if cond(s):
            return s
        time.sleep(0.3)
    raise AssertionError(f"session {sid}: {s}")


@pytest.mark.root
@pytest.mark.skipif(bool(NEEDS), reason=f"missing {NEEDS}")
@pytest.mark.timeout(180)
def test_a_session_sends_every_file_byte_exact_and_a_late_client_falls_back(net):
    s = net.call("POST", "/api/multicast", {"image": "img", "hosts": ["pc0", "pc1", "pc2"], "min_receivers": 2,
                                            "interface": "eth0", "max_wait": 60})
    assert s["state"] == "waiting", s
    tasks = {}
    for host, where in (("pc0", "r1"), ("pc1", "r2")):
        task_id, token, answer = join(net, s, host, where)
        assert answer["type"] == "multicast" and answer["multicast"]["client"] == "joined", answer
        assert answer["storage"]["export"] == f"{SERVER}:/images" and answer["multicast"]["sender"] == SERVER
        tasks[host] = (task_id, token, where)
        assert net.call("POST", f"/api/tasks/{task_id}/ready", {}, token=token, where=where)["state"] == "waiting"
    s = wait_session(net, s["id"], lambda s: s["state"] != "waiting")
    assert s["state"] == "sending"
    unicast_deploy_of_img(net, "r2")  # while the session sends, a unicast deploy of its image runs as usual
    assert net.call("GET", f"/api/multicast/{s['id']}")["state"] == "sending"
    out = net.tmp / "out"
    out.mkdir()
    for i, name in enumerate(s["files"]):      # the clients receive file after file, like imager/ops/multicast.py
        procs = [net.receiver(where, s["portbase"] + 2 * i, out / f"{host}.{name}")
                 for host, (_, _, where) in tasks.items()]
        for proc in procs:
            assert proc.wait(60) == 0, proc.stderr.read().decode(errors="replace")[-400:]
    s = wait_session(net, s["id"], lambda s: s["state"] != "sending")
    assert s["state"] == "done", s
    for host in tasks:
        for name, data in net.files.items():
            got = (out / f"{host}.{name}").read_bytes()
            assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest(), (host, name)
    # pc2 boots late: the answer says so, and gives it the storage node for a unicast deploy
    _, token, answer = join(net, s, "pc2", "r1")
    assert answer["multicast"]["fallback"] is True and "unicast" in answer["multicast"]["reason"]
    assert answer["storage"]["name"] == "node"
    assert clients(net, net.call("GET", f"/api/multicast/{s['id']}"))["pc2"]["state"] == "fallback"


def unicast_deploy_of_img(net, where):
    """A client's whole unicast deploy, as imager/api.py calls it: checkin, progress, done."""
    net.call("POST", "/api/hosts", {"mac": "52:54:00:aa:00:09", "name": "pc9"})
    task = net.call("POST", "/api/tasks", {"host": "pc9", "type": "deploy", "image": "img"})
    token = net.token("52:54:00:aa:00:09")
    answer = net.call("POST", f"/api/tasks/{task['id']}/checkin", {}, token=token, where=where)
    assert answer["type"] == "deploy" and "multicast" not in answer, answer
    assert answer["storage"]["name"] == "node" and answer["storage"]["export"] == f"{SERVER}:/images", answer
    assert answer["image"]["name"] == "img", answer
    progress = {"stage": "partition 1/3", "bytes_done": 1 << 20, "bytes_total": 9 << 20, "percent": 11.1,
                "rate_bps": 1 << 20, "eta_s": 8}
    net.call("POST", f"/api/tasks/{task['id']}/progress", progress, token=token, where=where)
    net.call("POST", f"/api/tasks/{task['id']}/done", {"result": {"image": "img", "seconds": 1}}, token=token,
             where=where)
    done = net.call("GET", f"/api/tasks/{task['id']}")
    assert done["state"] == "done" and done["progress"]["bytes_done"] == 1 << 20, done


def sender_alive(pid, settle=3.0):
    """udp-sender is running as ``pid`` (an orphan killed but not yet reaped by init is a zombie: dead)."""
    deadline = time.monotonic() + settle
    while True:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            alive = "(udp-sender)" in stat and stat.rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            alive = False
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def sending_session(net):
    """One receiving client, a 4 Mbit/s cap: the first file (6 MiB) takes ~12 s, time to act mid-transfer."""
    s = net.call("POST", "/api/multicast", {"image": "img", "hosts": ["pc0", "pc1"], "min_receivers": 2,
                                            "interface": "eth0", "rate": "4m"})
    task_id, token, _ = join(net, s, "pc0", "r1")
    net.call("POST", f"/api/tasks/{task_id}/ready", {}, token=token, where="r1")
    go = net.call("POST", f"/api/multicast/{s['id']}/go")
    assert go["go"] == 1
    s = wait_session(net, s["id"], lambda s: s["state"] == "sending" and s.get("sender_pid"))
    receiver = net.receiver("r1", s["portbase"], net.tmp / "partial")
    s = wait_session(net, s["id"], lambda s: re.search(r": [1-9]\d* bytes", s.get("detail") or ""))
    return s, task_id, receiver


@pytest.mark.root
@pytest.mark.skipif(bool(NEEDS), reason=f"missing {NEEDS}")
@pytest.mark.timeout(120)
def test_cancel_mid_transfer_kills_the_sender_and_cancels_the_tasks(net):
    s, task_id, receiver = sending_session(net)
    pid = s["sender_pid"]
    assert sender_alive(pid)
    s = net.call("POST", f"/api/multicast/{s['id']}/cancel")
    assert s["state"] == "canceled"
    assert not Path(f"/proc/{pid}").exists(), "udp-sender survived the cancel"
    assert {c["task_state"] for c in s["clients"]} == {"canceled"}
    assert all("canceled" in c["error"] for c in s["clients"])
    assert receiver.wait(40) != 0      # the receiver sees silence and fails: never a "complete" disk


@pytest.mark.root
@pytest.mark.skipif(bool(NEEDS), reason=f"missing {NEEDS}")
@pytest.mark.timeout(150)
def test_a_server_killed_mid_transfer_leaves_no_sender_after_restart(net):
    s, task_id, receiver = sending_session(net)
    pid = s["sender_pid"]
    net.stop_server(signal.SIGKILL)           # no cleanup at all: udp-sender lives on in its own session
    assert sender_alive(pid, settle=0)
    net.start_server()
    assert not sender_alive(pid), "the restarted server did not stop the sender its predecessor left"
    s = net.call("GET", f"/api/multicast/{s['id']}")
    assert s["state"] == "failed" and "restarted" in s["error"]
    c = clients(net, s)
    assert c["pc0"]["task_state"] == "failed" and "restarted" in c["pc0"]["error"]
    _, _, answer = join(net, s, "pc1", "r2")    # never joined: it deploys by unicast
    assert answer["multicast"]["fallback"] is True


def test_cli_prints_sessions_and_clients(store):
    import json as _json

    from server_stub import cli, multicastcli
    s = _json.loads(_json.dumps(new_session(store, hosts=("pc0", "pc1")), default=str))
    calls = []

    def call(method, path, body=None):
        calls.append((method, path, body))
        return [s] if path == "/api/multicast" and method == "GET" else s

    parser = cli._parser()
    text = multicastcli.run(parser.parse_args(["multicast", "start", "img", "--hosts", "pc0,pc1", "--rate", "200m"]),
                            call).text()
    assert calls[-1][2]["hosts"] == ["pc0", "pc1"] and calls[-1][2]["rate"] == "200m"
    assert "session 1: image img" in text and "pc0" in text and "queued" in text
    assert "0/2 done" in multicastcli.run(parser.parse_args(["multicast", "list"]), call).text()
    multicastcli.run(parser.parse_args(["multicast", "go", "1"]), call)
    assert calls[-1][:2] == ("POST", "/api/multicast/1/go")
    shown = multicastcli.run(parser.parse_args(["multicast", "show", "1", "--json"]), call)
    assert shown.data == s
