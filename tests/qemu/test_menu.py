"""The technician's menu on a QEMU client's serial console, driven with pexpect like a person at a terminal.

(a) an unknown machine: PXE menu → "Imager menu" → full registration → deploy an image chosen from the
    server's list → the files are on its disk afterwards, and the server's record is an ordinary task.
(b) wipe fast: quick registration → wipe (typed confirmation, countdown) → the partition table and the
    first MiB are gone, a region in the middle of the disk is untouched.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess

import pytest

from tests.qemu.lab import VENV_BIN, SERVER_URL, Lab, attached, make_source_disk, read_disk

pytestmark = [pytest.mark.qemu, pytest.mark.root]

MAC_SOURCE = "52:54:00:12:35:01"
MAC_MENU = "52:54:00:12:35:02"
MAC_WIPE = "52:54:00:12:35:03"
IMAGE = "menu-image"
MiB = 1024 * 1024
PASSWORD = "tech-pass-2026"
DOWN = "\x1b[B"  # the iPXE menu reads ANSI cursor keys from the serial console


@pytest.fixture(scope="module")
def lab():
    with Lab(menu_timeout=10) as lab:
        yield lab
    shutil.rmtree(lab.dir, ignore_errors=True)


def blank(path, mib):
    with open(path, "wb") as f:
        f.truncate(mib * MiB)
    return path


def into_the_imager_menu(vm):
    """The unknown-host PXE menu: local disk (default), registration, imager menu: two down, Enter."""
    term = vm.terminal(timeout=300)
    term.expect("Imager menu")
    term.send(DOWN + DOWN + "\r")
    term.expect("imager: booting the imaging environment", timeout=60)
    term.expect("is not registered on the server", timeout=300)   # the dialog menu, once the kernel, udev
    term.expect("Choose:")                                          # and the network are up
    return term


def test_unknown_machine_full_registration_then_deploy_from_the_menu(lab):
    source = lab.dir / "menu-source.img"
    written = make_source_disk(source, size_mib=256)
    lab.cli("host", "add", MAC_SOURCE, "menu-source")
    lab.cli("image", "add", IMAGE, "--storage", "lab")
    capture = lab.cli_json("task", "capture", "menu-source", IMAGE)
    lab.boot("menu-source", MAC_SOURCE, source).wait_exit(900)
    assert lab.task(capture["id"])["state"] == "done", lab.task(capture["id"]).get("error")

    target = blank(lab.dir / "menu-target.img", 256)
    vm = lab.boot("menu-target", MAC_MENU, target, interactive=True)
    term = into_the_imager_menu(vm)
    term.send("2\r")                                   # full registration
    term.expect("Technician password")
    term.send((lab.dir / "server" / "admin.token").read_text().strip() + "\r")   # the admin token also opens it
    term.expect("Host name:")
    term.send("lab-menu-1\r")
    term.expect("Image for lab-menu-1")
    term.send("m\r")                                   # the image whose name starts with m: menu-image
    term.expect("Group of lab-menu-1")
    term.send("+\r")
    term.expect("New group name")
    term.send("room-5\r")
    term.expect("to this machine now?")
    term.send("\t\r")                                  # No: deploy from the main menu instead
    term.expect("This machine is lab-menu-1")
    term.send("3\r")                                   # deploy
    term.expect("Image to deploy")
    term.send("\r")                                    # the only captured image
    term.expect("Everything on that disk is replaced")
    term.send("\r")                                    # Yes
    term.expect("imager - deploy", timeout=300)        # the progress screen
    vm.wait_exit(900)                                  # deployed, reboots: -no-reboot ends QEMU

    listed = lab.cli("host", "list")
    assert "lab-menu-1" in listed and MAC_MENU in listed and "full" in listed and "room-5" in listed, listed
    task = next(t for t in reversed(all_tasks(lab)) if t["host"] == "lab-menu-1")
    assert (task["type"], task["image"], task["origin"], task["state"]) == ("deploy", IMAGE, "menu", "done"), task
    assert task["result"]["partitions"] == 2
    table_source, files_source = read_disk(source)
    table_target, files_target = read_disk(target)
    assert table_target == table_source
    assert files_target == written
    assert "task finished successfully" in vm.console_text()


def all_tasks(lab):
    return json.loads(lab.netns("curl", "-s", "-H", "Authorization: Bearer "
                                + (lab.dir / "server" / "admin.token").read_text().strip(),
                                f"{SERVER_URL}/api/tasks").stdout)


def set_technician_password(lab):
    subprocess.run(["ip", "netns", "exec", lab.ns, str(VENV_BIN / "imager-server"), "--server", SERVER_URL,
                    "--token-file", str(lab.dir / "server" / "admin.token"), "technician", "password"],
                   input=PASSWORD + "\n", text=True, check=True, capture_output=True)


def region_sha(path, offset, length):
    with open(path, "rb") as f:
        f.seek(offset)
        return hashlib.sha256(f.read(length)).hexdigest()


def test_wipe_fast_from_the_menu_erases_the_table_and_the_first_mib_only(lab):
    set_technician_password(lab)
    disk = blank(lab.dir / "wipe.img", 64)
    subprocess.run(["sgdisk", "-n1:2048:+16M", "-n2:0:0", str(disk)], check=True, capture_output=True)
    with attached(disk) as dev:
        subprocess.run(["mkfs.ext4", "-q", "-F", f"{dev}p1"], check=True)
    middle = (32 * MiB, 4 * MiB)
    with open(disk, "r+b") as f:
        f.seek(middle[0])
        f.write(os.urandom(middle[1]))
    middle_sha = region_sha(disk, *middle)

    vm = lab.boot("wipe", MAC_WIPE, disk, interactive=True)
    term = into_the_imager_menu(vm)
    term.send("1\r")                                   # quick registration
    term.expect("Registered as mac525400123503", timeout=120)
    term.send("\r")
    term.expect("This machine is mac525400123503")
    term.send("6\r")                                   # wipe
    term.expect("Technician password")
    term.send(PASSWORD + "\r")
    term.expect("Which disk")
    term.send("\r")                                    # /dev/vda, the only disk
    term.expect("How to wipe /dev/vda")
    term.send("\r")                                    # fast, the first mode
    term.expect("or WIPE to go on")
    term.send("WIPE\r")
    term.expect("Stop now to keep the disk")           # the countdown runs out by itself
    term.expect("imager - wipe \\(fast\\)", timeout=120)
    vm.wait_exit(600)

    task = next(t for t in reversed(all_tasks(lab)) if t["host"] == "mac525400123503")
    assert (task["type"], task["options"], task["origin"], task["state"]) == \
        ("wipe", {"mode": "fast"}, "menu", "done"), task
    assert task["result"]["bytes_written"] == 2 * MiB and task["result"]["disk"] == "/dev/vda"
    with open(disk, "rb") as f:
        assert f.read(MiB) == bytes(MiB), "the first MiB is not zero"
        f.seek(-MiB, os.SEEK_END)
        assert f.read(MiB) == bytes(MiB), "the last MiB (backup GPT) is not zero"
    with attached(disk) as dev:
        assert subprocess.run(["sfdisk", "--dump", dev], capture_output=True).returncode != 0
        assert subprocess.run(["blkid", "-p", dev], capture_output=True, text=True).stdout == ""
    assert region_sha(disk, *middle) == middle_sha, "fast mode wrote into the middle of the disk"


def test_unattended_disktest_and_full_wipe_on_an_nvme_disk(lab):
    """The service ops as admin tasks (CLI), on an emulated NVMe drive: smartctl reads its health log;
    the full wipe lets the drive erase itself (Format NVM, secure erase) instead of writing passes."""
    disk = blank(lab.dir / "nvme.img", 64)
    with open(disk, "r+b") as f:
        f.write(os.urandom(MiB))
        f.seek(40 * MiB)
        f.write(os.urandom(4 * MiB))
    lab.cli("host", "add", "52:54:00:12:35:04", "nvme-pc")
    test = lab.cli_json("task", "disktest", "nvme-pc")
    lab.boot("nvme-test", "52:54:00:12:35:04", disk, nvme=True).wait_exit(600)
    done = lab.task(test["id"])
    assert done["state"] == "done", done.get("error")
    result = done["result"]
    assert result["disk"] == "/dev/nvme0n1" and result["verdict"] == "pass"
    assert result["surface"]["bytes_read"] == 64 * MiB and result["surface"]["bad_sectors"] == 0
    assert result["smart"]["available"] is True and result["smart"]["passed"] is True, result["smart"]
    assert result["smart"]["media_errors"] == 0

    wipe = lab.cli_json("task", "wipe", "nvme-pc", "--mode", "full")
    vm = lab.boot("nvme-wipe", "52:54:00:12:35:04", disk, nvme=True)
    vm.wait_exit(600)
    done = lab.task(wipe["id"])
    assert done["state"] == "done", (done.get("error"), vm.console_text()[-2000:])
    assert done["result"]["method"].startswith("NVMe format"), done["result"]
    assert (done["options"], done["origin"]) == ({"mode": "full"}, "admin")
    with open(disk, "rb") as f:
        assert f.read() == bytes(64 * MiB), "the drive's secure erase left data behind"


def test_debug_shell_from_the_menu_has_the_tools_and_leaving_it_ends_the_task(lab):
    set_technician_password(lab)
    disk = blank(lab.dir / "debug.img", 32)
    vm = lab.boot("debug", "52:54:00:12:35:05", disk, interactive=True)
    term = into_the_imager_menu(vm)
    term.send("1\r")
    term.expect("Registered as mac525400123505", timeout=120)
    term.send("\r")
    term.expect("This machine is mac525400123505")
    term.send("8\r")                                   # debug shell
    term.expect("Technician password")
    term.send(PASSWORD + "\r")
    term.expect("imager debug shell - task")
    term.expect("imager-debug# ", timeout=60)
    term.send("smartctl --version | head -1; nvme version; grep -c debug /tmp/task.json; exit 0\r")
    term.expect("smartctl 7")
    term.expect("nvme version")
    vm.wait_exit(300)                                  # leaving the shell reboots
    task = next(t for t in reversed(all_tasks(lab)) if t["host"] == "mac525400123505")
    assert (task["type"], task["state"], task["origin"], task["result"]) == \
        ("debug", "done", "menu", {"shell_exit_status": 0}), task
