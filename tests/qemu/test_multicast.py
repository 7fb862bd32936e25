"""Multicast deploy in the lab: three QEMU clients in one udpcast session, every disk checked file by file on
the host; and a session canceled mid-transfer leaves no udp-sender and ends its client's task with a reason.

The image is captured on the host (imager capture of a loop device into the lab's NFS directory) to keep
TCG time for what is tested here; multicast stays on the lab's bridge inside its namespace."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.qemu.lab import REPO, VENV_BIN, Lab, LabError, attached, make_source_disk, read_disk

pytestmark = [pytest.mark.qemu, pytest.mark.root]

IMAGE = "lab-mc"
MACS = ["52:54:00:12:36:01", "52:54:00:12:36:02", "52:54:00:12:36:03"]
MAC_CANCEL = "52:54:00:12:36:09"
DISK_MIB = 256


@pytest.fixture(scope="module")
def lab():
    with Lab() as lab:
        # The rendezvous goes to the interface's broadcast address; multicast leaves by br0 only.
        lab.netns("ip", "addr", "replace", "10.231.0.1/24", "brd", "+", "dev", "br0")
        lab.netns("ip", "route", "replace", "224.0.0.0/4", "dev", "br0")
        yield lab
    shutil.rmtree(lab.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def image(lab):
    """A 256 MiB GPT disk (two ext4 partitions with known files) captured on the host into the lab's export;
    the server learns it is captured from a capture task played with its token."""
    source = lab.dir / "source.img"
    written = make_source_disk(source, size_mib=DISK_MIB)
    with attached(source) as device:
        subprocess.run([str(VENV_BIN / "imager"), "capture", device, str(lab.images / IMAGE)], check=True,
                       capture_output=True, cwd=REPO)
    lab.cli("storage", "set", "lab", "--rsync-target", str(lab.images))   # the server reads the export locally
    lab.cli("image", "add", IMAGE, "--storage", "lab")
    lab.cli("host", "add", "52:54:00:12:36:0f", "pc-capture")
    task = lab.cli_json("task", "capture", "pc-capture", IMAGE)
    token = lab.task_token("52:54:00:12:36:0f")
    lab.client_call(task["id"], token, "checkin")
    lab.client_call(task["id"], token, "done", {"result": {"stored_bytes": 1}})
    return {"source": source, "written": written}


def blank(lab, name: str) -> Path:
    target = lab.dir / f"{name}.img"
    with open(target, "wb") as f:
        f.truncate(DISK_MIB * 1024 * 1024)
    return target


def session(lab, sid: int) -> dict:
    return lab.cli_json("multicast", "show", str(sid), "--json")


def wait_session(lab, sid: int, cond, timeout: float, vms=()) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = session(lab, sid)
        if cond(s):
            return s
        time.sleep(2)
    tails = "\n".join(f"--- {vm.name}\n" + "\n".join(vm.console_text().splitlines()[-15:]) for vm in vms)
    raise LabError(f"session {sid}: {json.dumps(s, indent=1, default=str)[:3000]}\n{tails}")


def test_multicast_routes_stay_on_the_lab_bridge(lab):
    route = lab.netns("ip", "route", "get", "224.0.0.1").stdout
    assert "dev br0" in route, route


def test_three_clients_in_one_session_get_the_image(lab, image):
    names = ["m1", "m2", "m3"]
    for name, mac in zip(names, MACS):
        lab.cli("host", "add", mac, f"pc-{name}")
    started = lab.cli_json("multicast", "start", IMAGE, "--hosts", ",".join(f"pc-{n}" for n in names),
                           "--interface", "br0", "--max-wait", "300", "--json")
    assert started["state"] == "waiting" and len(started["clients"]) == 3
    targets = {name: blank(lab, name) for name in names}
    vms = [lab.boot(name, mac, targets[name]) for name, mac in zip(names, MACS)]
    began = time.monotonic()
    sent = wait_session(lab, started["id"], lambda s: s["state"] not in ("waiting", "sending"), 1500, vms)
    for vm in vms:
        vm.wait_exit(600)
    seconds = time.monotonic() - began
    sent = session(lab, started["id"])
    assert sent["state"] == "done", sent
    for c in sent["clients"]:
        sender_log = lab.dir / "server" / "multicast" / f"session{started['id']}.log"
        assert c["task_state"] == "done", (c, lab.task(c["task_id"]).get("error"),
                                           sender_log.read_text(errors="replace")[-3000:])
        assert c["state"] == "receiving", c                # all three received, none fell back
        task = lab.task(c["task_id"])
        assert task["result"]["multicast"]["session"] == started["id"]
        assert "fallback" not in task["result"]["multicast"]
    for vm in vms:
        assert f"'multicast': {{'session': {started['id']}, 'files': 2}}" in vm.console_text()
    table_src, files_src = read_disk(image["source"])
    assert files_src == image["written"]
    for name, target in targets.items():
        table, files = read_disk(target)
        assert table == table_src, name
        assert files == image["written"], f"{name}: files differ"
    print(f"\nmulticast to 3 TCG clients: {seconds:.0f} s from power-on to the last one done")


def test_canceling_a_session_mid_transfer_leaves_no_sender(lab, image):
    lab.cli("host", "add", MAC_CANCEL, "pc-cancel")
    # 1 Mbit/s: the data partition's stream takes minutes, time to cancel in the middle of it
    started = lab.cli_json("multicast", "start", IMAGE, "--hosts", "pc-cancel", "--interface", "br0",
                           "--rate", "1m", "--json")
    vm = lab.boot("cancel", MAC_CANCEL, blank(lab, "cancel"))
    s = wait_session(lab, started["id"], lambda s: s["state"] == "sending" and s.get("sender_pid")
                     and re.search(r": [1-9]\d* bytes, 1 receivers", s.get("detail") or ""), 900, [vm])
    pid = s["sender_pid"]
    assert Path(f"/proc/{pid}/comm").read_text().strip() == "udp-sender"
    s = lab.cli_json("multicast", "cancel", str(started["id"]), "--json")
    assert s["state"] == "canceled"
    assert not Path(f"/proc/{pid}").exists(), "udp-sender survived the cancel"
    leftover = subprocess.run(["pgrep", "-x", "udp-sender"], capture_output=True, text=True).stdout.split()
    assert not [p for p in leftover if _in_lab(lab, p)], "a udp-sender is still running in the lab"
    vm.wait_exit(300)       # the client hears 409 at its next report, shows why, and reboots (-no-reboot: exits)
    task = lab.task(s["clients"][0]["task_id"])
    assert task["state"] == "canceled" and "canceled" in task["error"]["message"], task
    assert "task_canceled" in vm.console_text() or "TASK FAILED" in vm.console_text()


def _in_lab(lab, pid: str) -> bool:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().find(str(lab.images).encode()) >= 0
    except OSError:
        return False
