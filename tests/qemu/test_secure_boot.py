"""Secure Boot enforced (OVMF with Microsoft's keys): shim → Debian's signed GRUB → Debian's signed kernel.

Two clients boot at once, both given shimx64.efi by DHCP (``Lab(shim_macs=…)``):
- one with a deploy task: GRUB loads the kernel and initrd over TFTP, the kernel reports Secure Boot, the
  deploy completes;
- one without a task: our GRUB chainloads its local ESP's loader (Debian's signed shim and GRUB), whose
  grub.cfg prints a marker, then tries an unsigned copy of the same kernel, which must be refused.
"""
from __future__ import annotations

import shutil
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.qemu import boottime
from tests.qemu.lab import BOOT_DIR, REPO, VENV_BIN, VM, Lab, attached, make_source_disk, read_disk

pytestmark = [pytest.mark.qemu, pytest.mark.root]

MAC_DEPLOY = "52:54:00:12:37:01"
MAC_LOCAL = "52:54:00:12:37:02"
MAC_CAPTURE = "52:54:00:12:37:0f"
IMAGE = "lab-sb"
DISK_MIB = 256
SIGNED_SHIM = "/usr/lib/shim/shimx64.efi.signed"
SIGNED_GRUB = "/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed"  # its $prefix: /EFI/debian
LOCAL_MARKER = "imager-lab: the signed GRUB on the local ESP runs"
UNSIGNED_TRIED = "imager-lab: tried the unsigned kernel"


def strip_signature(signed: Path, unsigned: Path) -> None:
    """A copy of a PE image without its Authenticode signature: the certificate table (data directory 4)
    emptied and the signature bytes cut off, what ``sbattach --remove`` does."""
    data = bytearray(signed.read_bytes())
    pe = struct.unpack_from("<I", data, 0x3C)[0]
    magic = struct.unpack_from("<H", data, pe + 24)[0]
    directories = pe + 24 + (112 if magic == 0x20B else 96)  # PE32+ or PE32 optional header
    offset, size = struct.unpack_from("<II", data, directories + 4 * 8)
    assert size, f"{signed} carries no signature"
    struct.pack_into("<II", data, directories + 4 * 8, 0, 0)
    unsigned.write_bytes(bytes(data[:offset]))


def make_esp_disk(path: Path, workdir: Path) -> None:
    """A GPT disk whose one partition is an ESP (FAT by mtools: this host has no vfat module) holding Debian's
    signed shim as the fallback loader and at Windows Boot Manager's path, Debian's signed GRUB next to each, a
    grub.cfg in GRUB's prefix (it names the folder GRUB came from) and an unsigned kernel."""
    esp = workdir / "esp.fat"
    with open(esp, "wb") as f:
        f.truncate(62 * 1024 * 1024)
    subprocess.run(["mformat", "-i", str(esp), "-v", "ESP", "::"], check=True)
    unsigned = workdir / "vmlinuz.unsigned"
    strip_signature(BOOT_DIR / "vmlinuz", unsigned)
    config = workdir / "grub.cfg"
    config.write_text(f"echo '{LOCAL_MARKER}' from \"$cmdpath\"\n"  # the folder GRUB was loaded from
                      "linux /vmlinuz.unsigned console=ttyS0\n"
                      f"echo '{UNSIGNED_TRIED}'\n"
                      "halt\n")
    for folder in ("::/EFI", "::/EFI/BOOT", "::/EFI/debian", "::/EFI/Microsoft", "::/EFI/Microsoft/Boot"):
        subprocess.run(["mmd", "-i", str(esp), folder], check=True)
    # A signed loader at Windows Boot Manager's path too: our GRUB must prefer it to the fallback loader.
    for source, target in ((SIGNED_SHIM, "::/EFI/BOOT/BOOTX64.EFI"), (SIGNED_GRUB, "::/EFI/BOOT/grubx64.efi"),
                           (SIGNED_SHIM, "::/EFI/Microsoft/Boot/bootmgfw.efi"),
                           (SIGNED_GRUB, "::/EFI/Microsoft/Boot/grubx64.efi"),
                           (str(config), "::/EFI/debian/grub.cfg"), (str(unsigned), "::/vmlinuz.unsigned")):
        subprocess.run(["mcopy", "-i", str(esp), source, target], check=True)
    with open(path, "wb") as f:
        f.truncate(64 * 1024 * 1024)
    subprocess.run(["sgdisk", "-n1:2048:0", "-t1:ef00", "-c1:ESP", str(path)], check=True, capture_output=True)
    subprocess.run(["dd", f"if={esp}", f"of={path}", "bs=1M", "seek=1", "conv=notrunc", "status=none"], check=True)


def stage_times(vm: VM, markers: list[str], timeout: float) -> dict[str, float]:
    """Seconds from power-on until each console marker first appeared (polled every 0.5 s)."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < len(markers) and time.monotonic() < deadline and vm.proc.poll() is None:
        text = vm.console_text()
        for marker in markers:
            if marker not in seen and marker in text:
                seen[marker] = round(time.monotonic() - vm.started, 1)
        time.sleep(0.5)
    return seen


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab(shim_macs=(MAC_DEPLOY, MAC_LOCAL)) as lab:
        yield lab
    shutil.rmtree(lab.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def clients(lab: Lab) -> dict[str, Any]:
    """A small image captured on the host (as in test_multicast), then both clients powered on together."""
    source = lab.dir / "source.img"
    written = make_source_disk(source, size_mib=DISK_MIB)
    with attached(source) as device:
        subprocess.run([str(VENV_BIN / "imager"), "capture", device, str(lab.images / IMAGE)], check=True,
                       capture_output=True, cwd=REPO)
    lab.cli("image", "add", IMAGE, "--storage", "lab")
    lab.cli("host", "add", MAC_CAPTURE, "pc-sb-capture")
    capture = lab.cli_json("task", "capture", "pc-sb-capture", IMAGE)
    token = lab.task_token(MAC_CAPTURE)
    lab.client_call(capture["id"], token, "checkin")
    lab.client_call(capture["id"], token, "done", {"result": {"stored_bytes": 1}})

    target = lab.dir / "sb-deploy.img"
    with open(target, "wb") as f:
        f.truncate(DISK_MIB * 1024 * 1024)
    lab.cli("host", "add", MAC_DEPLOY, "pc-sb-deploy")
    deploy = lab.cli_json("task", "deploy", "pc-sb-deploy", IMAGE)
    local_disk = lab.dir / "sb-local.img"
    make_esp_disk(local_disk, lab.dir)
    lab.cli("host", "add", MAC_LOCAL, "pc-sb-local")  # known, no task: the local disk
    clients: dict[str, Any] = {"source": source, "written": written, "target": target, "task": deploy,
               "deploy_vm": lab.boot("sb-deploy", MAC_DEPLOY, target, firmware="uefi-sb"),
               "local_vm": lab.boot("sb-local", MAC_LOCAL, local_disk, firmware="uefi-sb"),
               "deploy_times": {}, "local_times": {}}
    # Watched from power-on, both at once: when each boot stage showed on the console.
    for vm, times, markers in (
            (clients["deploy_vm"], clients["deploy_times"],
             ["Start PXE over IPv4", "Linux version", "Secure boot enabled", f"[imager] task {deploy['id']}:"]),
            (clients["local_vm"], clients["local_times"],
             ["Start PXE over IPv4", "booting the local disk", LOCAL_MARKER, UNSIGNED_TRIED])):
        threading.Thread(target=lambda v=vm, t=times, m=markers: t.update(stage_times(v, m, 1200)),
                         daemon=True).start()
    return clients


def test_without_a_task_grub_chainloads_the_signed_local_loader_and_an_unsigned_kernel_is_refused(
        lab: Lab, clients: dict[str, Any]) -> None:
    vm: VM = clients["local_vm"]
    vm.wait_exit(600)  # the local grub.cfg halts: QEMU powers off
    time.sleep(1)
    print(f"Secure Boot local boot, seconds from power-on: {clients['local_times']}")
    console = vm.console_text()
    assert "booting the local disk" in console, console[-3000:]
    assert LOCAL_MARKER in console, console[-3000:]
    chained = console.split("booting the local disk", 1)[1].split(LOCAL_MARKER, 1)[0]
    assert "BdsDxe: loading" not in chained, "our GRUB started the ESP's loader, not the firmware's next entry"
    started_from = console.split(LOCAL_MARKER, 1)[1].splitlines()[0]
    assert "/EFI/Microsoft/Boot" in started_from, f"Windows Boot Manager's path comes first: {started_from!r}"
    tried = console.split(LOCAL_MARKER, 1)[1]
    assert "bad shim signature" in tried or "invalid signature" in tried, tried[-2000:]
    assert "Linux version" not in console, "the unsigned kernel must not start"
    assert any(f"grub.cfg-{MAC_LOCAL}" in line or "local" in line
               for line in lab.cli("boot-log", "--mac", MAC_LOCAL).splitlines())


def test_a_deploy_completes_under_secure_boot(lab: Lab, clients: dict[str, Any]) -> None:
    vm: VM = clients["deploy_vm"]
    vm.wait_exit(900)
    time.sleep(1)
    print(f"Secure Boot deploy, seconds from power-on: {clients['deploy_times']}; "
          f"total {time.monotonic() - vm.started:.0f} s")
    console = vm.console_text()
    assert "Secure boot enabled" in console, console[-3000:]
    task = lab.task(clients["task"]["id"])
    assert task["state"] == "done", (task.get("error"), console[-3000:])
    assert read_disk(clients["target"]) == read_disk(clients["source"])
    stages = boottime.breakdown(lab.server_log, MAC_DEPLOY, task["id"], vm.started_wall, task["result"]["boot"])
    print("\n".join(stages.lines("Secure Boot deploy (shim → GRUB, TFTP), with a second VM booting")))
