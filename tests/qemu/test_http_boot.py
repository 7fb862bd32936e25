"""UEFI HTTP boot without TFTP: OVMF asks DHCP as HTTPClient, gets a URL to iPXE (snponly.efi), iPXE gets
its script over HTTP, the kernel and initrd come over HTTP, and an inventory task completes.

``Lab(dhcp="http")`` moves the server's TFTP off port 69, so a client that tried TFTP would get nothing.
"""
from __future__ import annotations

import re
import shutil
import time

import pytest

from tests.qemu.lab import Lab

pytestmark = [pytest.mark.qemu, pytest.mark.root]

MAC = "52:54:00:12:38:01"


def test_uefi_http_boot_runs_a_task_without_tftp() -> None:
    lab = Lab(dhcp="http")
    try:
        with lab:
            assert ":69 " not in lab.netns("ss", "-lunH").stdout, "no TFTP server in this lab"
            disk = lab.dir / "http.img"
            with open(disk, "wb") as f:
                f.truncate(64 * 1024 * 1024)
            lab.cli("host", "add", MAC, "pc-http")
            task = lab.cli_json("task", "inventory", "pc-http")
            vm = lab.boot("http", MAC, disk, firmware="uefi-http")
            http_start = vm.wait_console("Start HTTP Boot over IPv4", 300)
            running = vm.wait_console(f"[imager] task {task['id']}:", 600)
            vm.wait_exit(600)
            print(f"UEFI HTTP boot, seconds from power-on: HTTP boot starts {http_start:.1f}, "
                  f"task running {running:.1f}, powered off {time.monotonic() - vm.started:.1f}")
            done = lab.task(task["id"])
            assert done["state"] == "done", (done.get("error"), vm.console_text()[-3000:])
            result = dict(done["result"])
            boot = result.pop("boot")  # an unattended boot reports its stages (imager/bootclock.py)
            assert result == {"disks": 1, "nics": 1}
            assert boot["total"] > 0 and {"kernel to /init", "python start", "network", "check-in"} <= set(boot), boot
            console = vm.console_text()
            assert "Start PXE over IPv4" not in console, "the firmware took the HTTP path only"
            dhcp = (lab.dir / "dnsmasq.log").read_text()
            assert "HTTPClient" in dhcp
            assert "/files/snponly.efi" in dhcp and "/boot.ipxe" in dhcp, dhcp[-2000:]
            served = lab.server_log.read_text()
            assert not re.search(r"TFTP \d+\.\d+\.\d+\.\d+:", served), "no TFTP request reached the server"
            fetched = re.findall(r'"GET (/files/\S+|/boot\S*) HTTP/1\.[01]" 200', served)
            print(f"fetched over HTTP: {fetched}")
            for path in ("/files/snponly.efi", "/boot.ipxe", f"/boot/{MAC.replace(':', '%3A')}.ipxe",
                         "/files/vmlinuz", "/files/initrd.img"):
                assert path in fetched or path.replace("%3A", ":") in fetched, (path, fetched)
            assert MAC in lab.cli("boot-log", "--mac", MAC)
    finally:
        shutil.rmtree(lab.dir, ignore_errors=True)
