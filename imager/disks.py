"""Finding the disk to image, with pyudev, and the facts we need about it."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

import pyudev

from imager import process
from imager.errors import DiskNotFound

# Never imaged unless named explicitly: virtual, optical and memory devices.
_SKIP_PREFIXES = ("loop", "ram", "zram", "sr", "fd", "nbd", "dm-", "md")


@dataclass
class Disk:
    path: str
    name: str
    size_bytes: int
    logical_sector_size: int
    removable: bool
    bus: str
    model: str
    serial: str

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _sysfs_int(device: pyudev.Device, attr: str, default: int = 0) -> int:
    try:
        return int(device.attributes.asstring(attr))
    except (KeyError, ValueError, UnicodeDecodeError):
        return default


def _describe(device: pyudev.Device) -> Disk:
    name = device.sys_name
    return Disk(
        path=device.device_node or f"/dev/{name}",
        name=name,
        size_bytes=_sysfs_int(device, "size") * 512,  # sysfs counts 512-byte units whatever the sector size
        logical_sector_size=_sysfs_int(device, "queue/logical_block_size", 512),
        removable=_sysfs_int(device, "removable") == 1,
        bus=device.properties.get("ID_BUS", ""),
        model=device.properties.get("ID_MODEL", ""),
        serial=device.properties.get("ID_SERIAL_SHORT", device.properties.get("ID_SERIAL", "")),
    )


def describe(path: str) -> Disk:
    """The whole disk at ``path`` (a block device)."""
    try:
        device = pyudev.Devices.from_device_file(pyudev.Context(), os.path.realpath(path))
    except (pyudev.DeviceNotFoundError, ValueError, OSError) as exc:
        raise DiskNotFound(f"{path} is not a block device") from exc
    if device.device_type != "disk":
        raise DiskNotFound(f"{path} is a {device.device_type}, not a whole disk")
    return _describe(device)


def candidates() -> list[Disk]:
    """Disks an unattended task may use: fixed, non-USB, non-virtual."""
    found = []
    for device in pyudev.Context().list_devices(subsystem="block", DEVTYPE="disk"):
        disk = _describe(device)
        if disk.name.startswith(_SKIP_PREFIXES) or disk.size_bytes == 0:
            continue
        if disk.removable or disk.bus == "usb":
            continue
        found.append(disk)
    return sorted(found, key=lambda d: d.name)


def select(spec: str | None) -> Disk:
    """The disk a task names, or the only fixed disk; several disks and no name is an error."""
    if spec:
        return describe(spec)
    disks = candidates()
    if not disks:
        raise DiskNotFound("no fixed disk found")
    if len(disks) > 1:
        names = ", ".join(d.path for d in disks)
        raise DiskNotFound(f"several disks found ({names}) and the task names none",
                           hint="Set the task's disk to the one to use.")
    return disks[0]


def partition_path(disk_path: str, number: int) -> str:
    """Device node of partition ``number``: vda1, nvme0n1p1, loop0p1 — asked of sysfs, not guessed."""
    name = os.path.basename(os.path.realpath(disk_path))
    sys_dir = f"/sys/class/block/{name}"
    for entry in sorted(os.listdir(sys_dir)):
        part_file = os.path.join(sys_dir, entry, "partition")
        if entry.startswith(name) and os.path.exists(part_file):
            with open(part_file) as f:
                if int(f.read().strip()) == number:
                    return f"/dev/{entry}"
    raise DiskNotFound(f"{disk_path} has no partition {number}")


def reread_partitions(disk_path: str, expected: list[int], timeout: float = 15.0) -> None:
    """Make the kernel see the new table and wait until every partition's node exists."""
    process.run(["partprobe", disk_path], check=False)
    deadline = time.monotonic() + timeout
    while True:
        try:
            if all(os.path.exists(partition_path(disk_path, n)) for n in expected):
                return
        except DiskNotFound:
            pass
        if time.monotonic() > deadline:
            raise DiskNotFound(f"the kernel did not show the partitions {expected} of {disk_path} after writing the table")
        time.sleep(0.2)
