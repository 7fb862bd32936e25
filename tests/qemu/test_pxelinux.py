"""Syslinux clients: pxelinux.0 (Debian's pxelinux) boots the imager from pxelinux.cfg/01-<mac> over TFTP,
or hands a machine without a task back to its disk (LOCALBOOT 0).

The iPXE ROM of the lab's VMs runs pxelinux.0 as its boot program (dnsmasq tags these MACs); from there on
everything comes over TFTP: ldlinux.c32, the per-MAC config, kernel and initrd.
"""
from __future__ import annotations

import shutil

import pytest

from tests.qemu.lab import Lab

pytestmark = [pytest.mark.qemu, pytest.mark.root]

TASK_MAC, LOCAL_MAC = "52:54:00:12:34:30", "52:54:00:12:34:31"
MARKER = b"imager-lab: local disk booted\r\n"


def marker_disk(path, size: int = 64 * 1024 * 1024) -> None:
    """A disk whose boot sector writes MARKER to COM1 and halts: proof that the BIOS booted the local disk."""
    code = bytes([0x31, 0xC0,            # xor ax, ax
                  0x8E, 0xD8,            # mov ds, ax
                  0xFC,                  # cld
                  0xBE, 0x17, 0x7C,      # mov si, 0x7c17 (the message)
                  0xBA, 0xF8, 0x03,      # mov dx, 0x3f8 (COM1)
                  0xAC,                  # next: lodsb
                  0x84, 0xC0,            # test al, al
                  0x74, 0x03,            # jz halt
                  0xEE,                  # out dx, al
                  0xEB, 0xF8,            # jmp next
                  0xFA, 0xF4,            # halt: cli; hlt
                  0xEB, 0xFC])           # jmp halt
    sector = (code + MARKER + b"\0").ljust(510, b"\0") + b"\x55\xaa"
    with open(path, "wb") as f:
        f.write(sector)
        f.truncate(size)


def test_pxelinux_boots_the_imager_for_a_task_and_the_local_disk_without_one():
    lab = Lab(pxelinux_macs=(TASK_MAC, LOCAL_MAC))
    try:
        with lab:
            lab.cli("host", "add", TASK_MAC, "syslinux-task")
            lab.cli("host", "add", LOCAL_MAC, "syslinux-idle")
            task = lab.cli_json("task", "inventory", "syslinux-task")
            task_disk, local_disk = lab.dir / "task.img", lab.dir / "local.img"
            marker_disk(task_disk)
            marker_disk(local_disk)

            idle = lab.boot("pxelinux-idle", LOCAL_MAC, local_disk)
            busy = lab.boot("pxelinux-task", TASK_MAC, task_disk)

            idle.wait_console(MARKER.decode().strip(), 300)
            idle.stop()
            assert "Linux version" not in idle.console_text()
            assert "local: no task" in lab.cli("boot-log", "--mac", LOCAL_MAC)

            busy.wait_exit(900)  # inventory done, then the reboot ends QEMU (-no-reboot)
            done = lab.task(task["id"])
            assert done["state"] == "done", done.get("error")
            assert "Linux version" in busy.console_text() and MARKER.decode().strip() not in busy.console_text()
            assert lab.cli_json("host", "inventory", "syslinux-task")["task_id"] == task["id"]

            # Both came through pxelinux: its files and the kernel over TFTP, never over HTTP.
            log = lab.server_log.read_text()
            for sent in ("pxelinux.0", "ldlinux.c32", "pxelinux.cfg/01-52-54-00-12-34-30",
                         "pxelinux.cfg/01-52-54-00-12-34-31", "imager/vmlinuz", "imager/initrd.img"):
                assert f": sent {sent}" in log, sent
            assert "GET /files/" not in log and "/boot/52:54:00:12:34:3" not in log
    finally:
        shutil.rmtree(lab.dir, ignore_errors=True)
