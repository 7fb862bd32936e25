"""End-to-end: QEMU clients PXE-boot in the lab, capture a disk to NFS, deploy it elsewhere."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import time

import pytest

from tests.browser.watch import read_report
from tests.qemu.lab import REPO, SERVER_URL, VENV_BIN, Lab, file_sha256, make_source_disk, read_disk

pytestmark = [pytest.mark.qemu, pytest.mark.root]

MAC_A = "52:54:00:12:34:01"
MAC_B = "52:54:00:12:34:02"
MAC_SMALL = "52:54:00:12:34:03"
MAC_UNKNOWN = "52:54:00:12:34:99"
MAC_UEFI = "52:54:00:12:34:0e"
MAC_HOLD = "52:54:00:12:34:10"
MAC_QUEUED = "52:54:00:12:34:11"
IMAGE = "lab-image"


@pytest.fixture(scope="module")
def lab():
    with Lab() as lab:
        yield lab
    shutil.rmtree(lab.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def captured(lab):
    """Client A (1 GiB, GPT, two ext4 partitions with known files) captured into IMAGE."""
    source = lab.dir / "a.img"
    written = make_source_disk(source)
    lab.cli("host", "add", MAC_A, "pc-a")
    lab.cli("image", "add", IMAGE, "--storage", "lab")
    task = lab.cli_json("task", "capture", "pc-a", IMAGE)
    vm = lab.boot("a", MAC_A, source)
    boot_seconds = vm.wait_console(f"[imager] task {task['id']}:", 600)
    vm.wait_exit(900)
    seconds = time.monotonic() - vm.started
    return {"source": source, "written": written, "task": lab.task(task["id"]),
            "boot_seconds": boot_seconds, "total_seconds": seconds}


def test_capture_publishes_a_complete_image(lab, captured):
    task = captured["task"]
    assert task["state"] == "done", task.get("error")
    assert task["result"]["partitions"] == 2
    published = lab.images / IMAGE
    assert published.is_symlink(), "the image is published by renaming a symlink into place"
    files = {p.name for p in published.resolve().iterdir()}
    # chunked, a new image's default: each partition's index here, its chunks in the node's store
    assert {"manifest.json", "d1.sfdisk", "d1.sgdisk", "d1.bootarea", "d1p1.cidx", "d1p2.cidx"} <= files
    assert len(list((lab.images / ".chunks").glob("??/*.zst"))) > 100
    assert not [p for p in (lab.images / ".images").iterdir() if p != published.resolve()], "no staging left over"
    # A finished task no longer boots the client into the imager.
    status, script = lab.http_get(f"/boot/{MAC_A}.ipxe")
    assert status == 200 and "sanboot --no-describe --drive 0x80" in script and "kernel " not in script


def watch_in_browser(lab, task_id: int):
    """Headless Chromium in the lab's namespace, signed in to the console, watching the task on the
    dashboard (tests/browser/watch.py); the lab stops it by PID with everything else."""
    log = lab.dir / f"watch-{task_id}.log"
    proc = lab.spawn([str(VENV_BIN / "python"), "-m", "tests.browser.watch", "--url", SERVER_URL,
                      "--token-file", str(lab.dir / "server" / "admin.token"), "--task", str(task_id),
                      "--timeout", "900"], log=log, env={"PYTHONPATH": str(REPO)})
    return proc, log


def deploy_to_new_client(lab, name: str, mac: str, firmware: str = "bios", watched: dict | None = None,
                         group: str | None = None):
    """An empty 1 GiB client registered, given a deploy of IMAGE, booted until it powers itself off.
    ``watched``: a browser watches the deploy in the console; its report goes to watched["report"].
    ``group``: the host's group (its post-deploy scripts run too)."""
    target = lab.dir / f"{name}.img"
    with open(target, "wb") as f:
        f.truncate(1024 * 1024 * 1024)
    lab.cli("host", "add", mac, f"pc-{name}")
    if group:
        lab.cli("host", "set", f"pc-{name}", "--group", group)
    task = lab.cli_json("task", "deploy", f"pc-{name}", IMAGE)
    watcher = watch_in_browser(lab, task["id"]) if watched is not None else None
    vm = lab.boot(name, mac, target, firmware=firmware)
    vm.wait_exit(900)
    if watcher is not None:
        proc, log = watcher
        try:
            proc.wait(60)  # it ends once the page says "done"
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the console did not show the deploy end: {log.read_text()[-1500:]}") from None
        watched["report"] = read_report(log.read_text())
    task = lab.task(task["id"])
    assert task["state"] == "done", task.get("error")
    return target


def test_deploy_onto_second_client_restores_table_and_files(lab, captured):
    """Watched in the console as it runs: the progress moves on the page without a reload, then "done"."""
    watched: dict = {}
    target = deploy_to_new_client(lab, "b", MAC_B, watched=watched)
    report = watched["report"]
    print(f"watched in the console: {report}")  # shown with -rA: how much of the deploy the page showed
    assert report.final == "done", report
    assert not report.reloaded, "live updates changed the page in place"
    assert len(set(report.progress)) >= 3, f"at least three progress values seen on the page: {report}"

    table_a, files_a = read_disk(captured["source"])
    table_b, files_b = read_disk(target)
    assert table_b == table_a
    assert files_a == captured["written"], "the source disk changed during capture"
    assert files_b == captured["written"]
    assert len(files_b["2"]) > 10


def menu_decisions(lab, mac: str) -> list[str]:
    """The boot log's lines for ``mac`` where the server answered with the unknown-host menu."""
    return [line for line in lab.cli("boot-log", "--mac", mac).splitlines() if "menu: unknown host" in line]


def test_unknown_mac_gets_the_menu_and_boots_the_local_disk(lab):
    """The server's default for unknown MACs (like FOG): a menu whose default, after 3 s, is the local disk."""
    status, script = lab.http_get(f"/boot/{MAC_UNKNOWN}.ipxe")
    assert status == 200
    assert "choose --timeout 3000 --default local target" in script
    local = script.split(":local\n", 1)[1]  # where the timeout leads
    assert "sanboot --no-describe --drive 0x80" in local and "kernel " not in local
    blank = lab.dir / "unknown.img"
    with open(blank, "wb") as f:
        f.truncate(64 * 1024 * 1024)
    before = menu_decisions(lab, MAC_UNKNOWN)  # the fetch above is logged too: only new entries are the VM's
    vm = lab.boot("unknown", MAC_UNKNOWN, blank)
    vm.wait_console("imager: unknown host, booting the local disk", 300)  # nobody chose: the timeout did
    vm.stop()
    after = menu_decisions(lab, MAC_UNKNOWN)
    assert len(after) > len(before), (before, after)
    assert "Linux version" not in vm.console_text(), "an unknown machine must not boot the imager by itself"
    assert MAC_UNKNOWN not in lab.cli("host", "list"), "nothing registered without a choice"


def test_deploy_onto_too_small_disk_fails_and_writes_nothing(lab, captured):
    small = lab.dir / "small.img"
    with open(small, "wb") as f:  # recognisable content that must survive
        f.truncate(128 * 1024 * 1024)  # A's data needs 64 MiB + its 130 MiB shrunk filesystem
        f.write(b"precious data " * 100000)
        f.seek(100 * 1024 * 1024)
        f.write(b"more precious data " * 1000)
    before = file_sha256(small)
    lab.cli("host", "add", MAC_SMALL, "pc-small")
    task = lab.cli_json("task", "deploy", "pc-small", IMAGE)
    vm = lab.boot("small", MAC_SMALL, small)
    vm.wait_exit(600)  # fails, shows the reason for imager.fail_wait seconds, reboots; -no-reboot ends QEMU
    task = lab.task(task["id"])
    assert task["state"] == "failed"
    assert task["error"]["code"] == "disk_too_small", task["error"]
    assert "too small" in task["error"]["message"]
    assert "task failed (disk_too_small)" in task["log"]
    assert "TASK FAILED (disk_too_small)" in vm.console_text()
    assert file_sha256(small) == before, "the target disk was modified"


# The lab's image is no installed system: this first script makes its data partition look like a Linux root
# cloned with its machine-id, so the shipped example has something to reset (busybox sh in the boot image).
SEED_MACHINE_ID = """#!/bin/sh
set -eu
for pair in $IMAGER_MOUNTS; do
    case $pair in 2=*) root=${pair#2=};; esac
done
mkdir -p "$root/etc" "$root/var/lib/dbus"
echo 0123456789abcdef0123456789abcdef > "$root/etc/machine-id"
cp "$root/etc/machine-id" "$root/var/lib/dbus/machine-id"
echo "seeded $IMAGER_HOSTNAME $IMAGER_MAC $IMAGER_DISK [$IMAGER_FSTYPES]"
"""


def attach_post_deploy_scripts(lab, group: str) -> None:
    """Both shipped examples (examples/postdeploy/) after the seed, for the hosts of ``group``; a driver
    folder on the storage node for the Windows one (the lab's image has no Windows: it says so)."""
    seed = lab.dir / "seed-machine-id.sh"
    seed.write_text(SEED_MACHINE_ID)
    examples = REPO / "examples" / "postdeploy"
    for order, (name, path) in enumerate([("seed-machine-id", seed),
                                          ("machine-id-reset", examples / "linux-machine-id-reset.sh"),
                                          ("windows-drivers", examples / "windows-drivers.py")]):
        lab.cli("script", "add", name, str(path))
        lab.cli("script", "attach", name, "--group", group, "--order", str(order), "--timeout", "60")
    drivers = lab.images / "drivers" / "common"
    drivers.mkdir(parents=True, exist_ok=True)
    (drivers / "lab.inf").write_text("[Version]\n")


def test_a_uefi_client_boots_the_imager_and_deploys(lab, captured):
    """OVMF's PXE fetches snponly.efi from our TFTP (DHCP client architecture 7), then the same iPXE path;
    then its group's post-deploy scripts run in the boot image on the deployed filesystems."""
    attach_post_deploy_scripts(lab, "scripted")
    target = deploy_to_new_client(lab, "uefi", MAC_UEFI, firmware="uefi", group="scripted")
    assert "sent snponly.efi" in lab.server_log.read_text(), "the UEFI client took iPXE from our TFTP"
    _, files = read_disk(target)
    reset = {**captured["written"]["2"], "etc/machine-id": hashlib.sha256(b"").hexdigest()}  # emptied; dbus's gone
    assert files == {**captured["written"], "2": reset}
    task = lab.task(next(t["id"] for t in lab.cli_json("task", "list", "--host", "pc-uefi") if t["type"] == "deploy"))
    outcomes = {o["name"]: o for o in task["result"]["scripts"]}
    assert [o["outcome"] for o in task["result"]["scripts"]] == ["ok", "ok", "ok"], task["result"]["scripts"]
    assert outcomes["seed-machine-id"]["output"].startswith(f"seeded pc-uefi {MAC_UEFI} /dev/")
    assert "[1=ext4 2=ext4]" in outcomes["seed-machine-id"]["output"]
    assert "machine-id reset on partition 2" in outcomes["machine-id-reset"]["output"]
    assert "no Windows (SOFTWARE hive) among the NTFS partitions" in outcomes["windows-drivers"]["output"]
    print(f"post-deploy scripts in the lab: {[(o['name'], o['seconds']) for o in task['result']['scripts']]}")


def test_a_deploy_waits_behind_a_full_storage_node_then_runs(lab, captured):
    """max 1 client on the node: a machine holding the slot makes the next one wait, on screen, not fail."""
    lab.cli("storage", "set", "lab", "--max-clients", "1")
    try:
        lab.cli("host", "add", MAC_HOLD, "pc-hold")
        holder = lab.cli_json("task", "deploy", "pc-hold", IMAGE)
        hold_token = lab.task_token(MAC_HOLD)
        assert lab.client_call(holder["id"], hold_token, "checkin")["state"] == "running"

        target = lab.dir / "queued.img"
        with open(target, "wb") as f:
            f.truncate(1024 * 1024 * 1024)
        lab.cli("host", "add", MAC_QUEUED, "pc-queued")
        task = lab.cli_json("task", "deploy", "pc-queued", IMAGE)
        vm = lab.boot("queued", MAC_QUEUED, target)
        vm.wait_console("storage full: 1/1 clients on node lab; waiting (position 1)", 300)
        waiting = lab.task(task["id"])
        assert waiting["state"] == "queued" and "waiting" in waiting["progress"]["stage"]

        lab.client_call(holder["id"], hold_token, "done", {"result": {}})  # the slot frees up
        vm.wait_exit(900)
        assert lab.task(task["id"])["state"] == "done", lab.task(task["id"]).get("error")
        _, files = read_disk(target)
        assert files == captured["written"]
    finally:
        lab.cli("storage", "set", "lab", "--max-clients", "10")
