"""Wake-on-LAN on a real wire: magic packets from the server's code inside a network namespace this test creates,
received by listeners in two other namespaces (veth pairs): the right MACs, well formed, to the right subnet,
nothing for the others. No packet can leave these namespaces; they are deleted on every path.

    S (sender: the server) ── wsnd 10.231.7.1/24 ══ wlis 10.231.7.2/24 ── L (listener, storage group default)
                           └─ wsnd2 10.231.8.1/24 ══ wlis2 10.231.8.2/24 ── O (listener, storage group site2)
"""
import collections
import ctypes
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest

from server_stub.store import Store
from server_stub.wol import wake_hosts
from server_stub.store.wake import WakeTargets
from tests.server_stub.cliproc import REPO, clean_env

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip"), reason="needs root and iproute2")]

CLONE_NEWNET = 0x40000000
MACS = {"pc1": "52:54:00:77:00:01", "pc2": "52:54:00:77:00:02", "pc3": "52:54:00:77:00:03", "pc4": "52:54:00:77:00:04"}


def sh(*argv):
    subprocess.run(argv, check=True, capture_output=True)


def enter(namespace: str) -> None:
    """This thread (only) joins the network namespace: sockets it opens from now on live there."""
    fd = os.open(f"/var/run/netns/{namespace}", os.O_RDONLY)
    try:
        if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {namespace}")
    finally:
        os.close(fd)


@pytest.fixture
def lan():
    prefix = f"iwol{os.getpid()}"
    names = {"S": prefix + "s", "L": prefix + "l", "O": prefix + "o"}
    created = []
    try:
        for name in names.values():
            sh("ip", "netns", "add", name)
            created.append(name)
            sh("ip", "-n", name, "link", "set", "lo", "up")
        for near, far, peer, subnet in (("wsnd", "wlis", names["L"], "10.231.7"),
                                        ("wsnd2", "wlis2", names["O"], "10.231.8")):
            sh("ip", "-n", names["S"], "link", "add", near, "type", "veth", "peer", "name", far, "netns", peer)
            sh("ip", "-n", names["S"], "addr", "add", f"{subnet}.1/24", "brd", "+", "dev", near)
            sh("ip", "-n", peer, "addr", "add", f"{subnet}.2/24", "brd", "+", "dev", far)
            sh("ip", "-n", names["S"], "link", "set", near, "up")
            sh("ip", "-n", peer, "link", "set", far, "up")
        yield names
    finally:
        for name in reversed(created):
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)


class Listener:
    """UDP port 9 in a namespace; keeps every datagram with its source."""

    def __init__(self, namespace: str) -> None:
        self.packets: list[bytes] = []
        self.ready, self.stop = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run, args=(namespace,), daemon=True)
        self.thread.start()
        assert self.ready.wait(5), "listener did not start"

    def _run(self, namespace: str) -> None:
        enter(namespace)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("0.0.0.0", 9))
            sock.settimeout(0.1)
            self.ready.set()
            while not self.stop.is_set():
                try:
                    self.packets.append(sock.recv(2048))
                except TimeoutError:
                    continue

    def finish(self, settle: float = 0.5) -> collections.Counter:
        """The MAC of every packet received (each checked to be a well-formed magic packet), counted."""
        time.sleep(settle)
        self.stop.set()
        self.thread.join(5)
        found: collections.Counter = collections.Counter()
        for packet in self.packets:
            assert len(packet) == 102 and packet[:6] == b"\xff" * 6, packet.hex()
            mac = packet[6:12]
            assert packet[6:] == mac * 16, packet.hex()
            found[":".join(f"{b:02x}" for b in mac)] += 1
        return found


def in_namespace(namespace: str, work):
    """``work()`` in a thread inside ``namespace`` (the server's code sends from there); its answer or exception."""
    result: dict = {}

    def run():
        try:
            enter(namespace)
            result["value"] = work()
        except BaseException as exc:  # handed to the test's thread
            result["error"] = exc
    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    if "error" in result:
        raise result["error"]
    return result["value"]


def test_wake_hosts_sends_each_host_to_its_storage_groups_subnet_and_nothing_for_others(lan, tmp_path):
    store = Store(str(tmp_path / "store.sqlite3"))
    try:
        store.add_storage("main", "10.0.0.1:/images")                  # storage group "default"
        store.add_group("site2")
        store.add_storage("node2", "10.0.8.1:/images", group="site2")
        store.add_image("win10", "main")
        store.add_image("linux", group="site2")
        for name, mac in MACS.items():
            store.add_host(mac, name)
        store.edit_host("pc3", {"image": "linux"})                     # pc3 is a site2 machine
        targets = WakeTargets(store.db)
        targets.set_target(None, "10.231.7.255", None)                 # the server default: L's subnet
        targets.set_target("site2", None, "wsnd2")                     # site2: out of the wire to O
        listen_l, listen_o = Listener(lan["L"]), Listener(lan["O"])
        report = in_namespace(lan["S"], lambda: wake_hosts(store, ["pc1", "52-54-00-77-00-02", "pc3"]))
        on_l, on_o = listen_l.finish(), listen_o.finish()
        assert on_l == {MACS["pc1"]: 3, MACS["pc2"]: 3}
        assert on_o == {MACS["pc3"]: 3}
        assert report["failed"] == [] and report["not_configured"] == []
        assert {(s["host"], s["address"], s["interface"], s["target"]) for s in report["sent"]} == {
            ("pc1", "10.231.7.255", None, "server default"), ("pc2", "10.231.7.255", None, "server default"),
            ("pc3", "255.255.255.255", "wsnd2", "storage group site2")}
        # The task's image decides: pc1 deploying linux is woken on site2's wire.
        listen_o = Listener(lan["O"])
        in_namespace(lan["S"], lambda: wake_hosts(store, ["pc1"], image="linux"))
        assert listen_o.finish() == {MACS["pc1"]: 3}
        assert "wake-on-lan: magic packets to 255.255.255.255 via wsnd2" in store.boot_log(MACS["pc1"])[0]["decision"]
        # A missing interface fails that host's wake with the reason, not the call; no target: nothing sent.
        targets.set_target("site2", None, "nosuch0")
        targets.set_target(None, None, None)
        listen_l, listen_o = Listener(lan["L"]), Listener(lan["O"])
        report = in_namespace(lan["S"], lambda: wake_hosts(store, ["pc3", "pc4"]))
        assert listen_l.finish() == {} and listen_o.finish() == {}
        assert report["sent"] == [] and report["not_configured"] == ["pc4"]
        assert report["failed"][0]["host"] == "pc3" and "no network interface nosuch0" in report["failed"][0]["reason"]
    finally:
        store.close()


def test_the_server_in_a_namespace_wakes_by_cli_on_queue_and_for_a_group(lan, tmp_path):
    """The real server process runs in S: host wake, group wake and a queued task wake; --no-wake does not."""
    boot = tmp_path / "boot"
    boot.mkdir()
    (boot / "vmlinuz").write_bytes(b"k" * 1000)
    (boot / "initrd.img").write_bytes(b"i" * 1000)
    data = tmp_path / "data"
    in_s = ["ip", "netns", "exec", lan["S"]]
    server = subprocess.Popen([*in_s, sys.executable, "-m", "server_stub", "serve", "--bind", "127.0.0.1",
                               "--http-port", "8080", "--tftp-port", "6969", "--data-dir", str(data),
                               "--boot-dir", str(boot)], cwd=REPO, env=clean_env(),
                              stdout=open(tmp_path / "server.log", "wb"), stderr=subprocess.STDOUT)

    def cli(*args):
        done = subprocess.run([*in_s, sys.executable, "-m", "server_stub", "--server", "http://127.0.0.1:8080",
                               "--token-file", str(data / "admin.token"), *args],
                              capture_output=True, text=True, timeout=30, cwd=REPO, env=clean_env())
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    try:
        for _ in range(100):
            if (data / "admin.token").exists() and subprocess.run(
                    [*in_s, sys.executable, "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8080/boot.ipxe')"],
                    capture_output=True).returncode == 0:
                break
            time.sleep(0.2)
        for name, mac in MACS.items():
            cli("host", "add", mac, name)
        cli("wake", "set", "--broadcast", "10.231.7.255")
        cli("group", "add", "lab3")
        cli("group", "add-hosts", "lab3", "pc1,pc2")
        listen_l, listen_o = Listener(lan["L"]), Listener(lan["O"])
        assert "woke pc1" in cli("group", "wake", "lab3")
        cli("task", "inventory", "pc4")                  # queued by hand: woken, as FOG does
        cli("task", "inventory", "pc3", "--no-wake")     # not woken
        assert "woke pc3" in cli("host", "wake", "pc3")  # by hand
        assert listen_l.finish() == {MACS["pc1"]: 3, MACS["pc2"]: 3, MACS["pc4"]: 3, MACS["pc3"]: 3}
        assert listen_o.finish() == {}
    finally:
        server.terminate()
        server.wait(10)
