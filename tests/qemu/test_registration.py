"""Registration: an unknown machine PXE-boots, registers itself with its inventory; then an inventory task runs."""
from __future__ import annotations

import shutil

import pytest

from tests.qemu.lab import Lab

pytestmark = [pytest.mark.qemu, pytest.mark.root]

MAC = "52:54:00:12:34:20"
NAME = "mac525400123420"        # quick registration: FOG-like default name from the MAC
DISK_SERIAL = "LABDISK-0420"
DISK_BYTES = 256 * 1024 * 1024
UUID = "5e1b0b6a-0420-4c2e-9d1a-0b5e7a1f0420"
SMBIOS = f"type=1,manufacturer=Imager Lab,product=LabPC-420,serial=SYS-0420,uuid={UUID}"


def test_an_unknown_machine_registers_itself_then_runs_an_inventory_task():
    lab = Lab(unknown_hosts="register")  # what a lab or kiosk runs: no menu, register every unknown MAC
    try:
        with lab:
            disk = lab.dir / "reg.img"
            with open(disk, "wb") as f:
                f.truncate(DISK_BYTES)
            boot = dict(disk_serial=DISK_SERIAL, smbios=SMBIOS)
            assert NAME not in lab.cli("host", "list")

            vm = lab.boot("reg", MAC, disk, **boot)
            vm.wait_exit(600)  # registers, then reboots: -no-reboot ends QEMU
            assert f"registered as {NAME} (quick registration)" in vm.console_text(), vm.console_text()[-3000:]
            assert "imager: register" in lab.cli("boot-log", "--mac", MAC)

            listed = lab.cli("host", "list")
            assert NAME in listed and MAC in listed and "quick" in listed, listed
            found = lab.cli_json("host", "inventory", NAME)
            assert found["task_id"] is None  # from the registration itself
            inv = found["data"]
            assert [(d["path"], d["size_bytes"], d["serial"]) for d in inv["disks"]] == \
                [("/dev/vda", DISK_BYTES, DISK_SERIAL)]
            assert inv["dmi"]["product_name"] == "LabPC-420" and inv["dmi"]["sys_vendor"] == "Imager Lab"
            assert inv["dmi"]["product_serial"] == "SYS-0420" and inv["dmi"]["product_uuid"] == UUID
            assert [(n["mac"], n["driver"]) for n in inv["nics"]] == [(MAC, "virtio_net")]
            assert inv["cpu"]["threads"] == 1 and 600 * 2**20 < inv["memory_bytes"] <= 768 * 2**20
            shown = lab.cli("host", "show", NAME)
            assert "/dev/vda  0.3 GB" in shown and f"serial {DISK_SERIAL}" in shown and "LabPC-420" in shown

            # Known now: the same machine is not registered twice, it boots its disk (no task).
            status, script = lab.http_get(f"/boot/{MAC}.ipxe")
            assert status == 200 and "sanboot" in script and "imager.mode" not in script

            task = lab.cli_json("task", "inventory", NAME)
            vm = lab.boot("reg-inventory", MAC, disk, **boot)
            vm.wait_exit(600)
            done = lab.task(task["id"])
            assert done["state"] == "done", done.get("error")
            result = dict(done["result"])
            boot = result.pop("boot")  # an unattended boot reports its stages (imager/bootclock.py)
            assert result == {"disks": 1, "nics": 1}
            assert boot["total"] > 0 and {"kernel to /init", "python start", "network", "check-in"} <= set(boot), boot
            again = lab.cli_json("host", "inventory", NAME)
            assert again["task_id"] == task["id"] and again["collected"] > found["collected"]
            assert again["data"]["disks"][0]["serial"] == DISK_SERIAL
            assert len(lab.cli("host", "list").splitlines()) == 2  # the header and this one machine
    finally:
        shutil.rmtree(lab.dir, ignore_errors=True)
