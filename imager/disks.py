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
    wwn: str = ""

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _sysfs_int(device: pyudev.Device, attr: str, default: int = 0) -> int:
    try:
        return int(device.attributes.asstring(attr))
    except (KeyError, ValueError, UnicodeDecodeError):
        return default


def _sysfs_str(device: pyudev.Device, attr: str) -> str:
    try:
        return device.attributes.asstring(attr).strip()
    except (KeyError, UnicodeDecodeError):
        return ""


def _describe(device: pyudev.Device) -> Disk:
    name = device.sys_name
    return Disk(
        path=device.device_node or f"/dev/{name}",
        name=name,
        size_bytes=_sysfs_int(device, "size") * 512,  # sysfs counts 512-byte units whatever the sector size
        logical_sector_size=_sysfs_int(device, "queue/logical_block_size", 512),
        removable=_sysfs_int(device, "removable") == 1,
        bus=device.properties.get("ID_BUS", ""),
        model=device.properties.get("ID_MODEL", "") or _sysfs_str(device, "device/model"),
        # virtio-blk keeps its serial on the disk itself (/sys/block/vda/serial), SCSI/ATA on the device.
        serial=(device.properties.get("ID_SERIAL_SHORT", "") or _sysfs_str(device, "device/serial")
                or _sysfs_str(device, "serial")),
        wwn=device.properties.get("ID_WWN", "") or _sysfs_str(device, "wwid") or _sysfs_str(device, "device/wwid"),
    )


WHOLE_DISK_HINT = "Name a whole disk's device (lsblk -d lists them: /dev/sda, /dev/nvme0n1 …)."


def describe(path: str) -> Disk:
    """The whole disk at ``path`` (a block device)."""
    try:
        device = pyudev.Devices.from_device_file(pyudev.Context(), os.path.realpath(path))
    except (pyudev.DeviceNotFoundError, ValueError, OSError) as exc:
        raise DiskNotFound(f"{path} is not a block device", hint=WHOLE_DISK_HINT) from exc
    if device.device_type != "disk":  # None: a character device such as /dev/null
        what = f"is a {device.device_type}, not a whole disk" if device.device_type else "is not a block device"
        raise DiskNotFound(f"{path} {what}", hint=WHOLE_DISK_HINT)
    return _describe(device)


def all_disks() -> list[Disk]:
    """Every whole disk the kernel shows, except virtual, optical and memory devices."""
    found = []
    for device in pyudev.Context().list_devices(subsystem="block", DEVTYPE="disk"):
        disk = _describe(device)
        if not disk.name.startswith(_SKIP_PREFIXES) and disk.size_bytes > 0:
            found.append(disk)
    return sorted(found, key=lambda d: d.name)


def _bytes(text: str) -> int:
    units = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
    number = text.rstrip("bBiIkKmMgGtT")
    unit = text[len(number):].lower().rstrip("b") or ""
    unit = {"ki": "kib", "mi": "mib", "gi": "gib", "ti": "tib"}.get(unit, unit)
    try:
        return int(float(number) * units[unit])
    except (KeyError, ValueError) as exc:
        raise DiskNotFound(f"{text!r} is not a size (e.g. 500G, 256GiB)") from exc


def choose(spec: str | None, disks: list[Disk]) -> Disk:
    """The disk a task's ``disk`` field names, from ``disks``; never a guess.

    spec: None (the only fixed, non-USB disk), serial=…, wwn=…, size=… (±1 %), model=….
    A disk named by serial, WWN, size or model may be removable or USB: naming it is asking for it.
    """
    if not spec:
        fixed = [d for d in disks if not d.removable and d.bus != "usb"]
        if not fixed:
            raise DiskNotFound("no fixed disk found (USB and removable disks are used only when the task names them)")
        if len(fixed) > 1:
            names = ", ".join(f"{d.path} ({d.size_bytes // 10**9} GB {d.model} {d.serial})".strip() for d in fixed)
            raise DiskNotFound(f"several disks found ({names}) and the task names none",
                               hint="Set the task's disk to a path, serial=…, wwn=… or size=….")
        return fixed[0]
    key, sep, value = spec.partition("=")
    if not sep or key not in ("serial", "wwn", "size", "model"):
        raise DiskNotFound(f"disk selector {spec!r} is not /dev/…, serial=…, wwn=…, size=… or model=…")
    if key == "size":
        wanted = _bytes(value)
        matches = [d for d in disks if abs(d.size_bytes - wanted) <= wanted * 0.01]
    else:
        matches = [d for d in disks if getattr(d, key) and getattr(d, key).lower() == value.lower()]
    if not matches:
        raise DiskNotFound(f"no disk has {spec}")
    if len(matches) > 1:
        raise DiskNotFound(f"{len(matches)} disks match {spec} ({', '.join(d.path for d in matches)}); name one by path")
    return matches[0]


def select(spec: str | None) -> Disk:
    """The disk to image: a /dev path as given, or ``choose`` among the disks the kernel shows."""
    if spec and spec.startswith("/dev/"):
        return describe(spec)
    return choose(spec, all_disks())


def select_all(spec: str | None) -> list[Disk]:
    """Several disks in image order: ``spec`` lists them comma-separated; none named means every fixed,
    non-USB disk the kernel shows, in name order (sda, sdb, … / nvme0n1, nvme1n1, …), as FOG's all-disks type does."""
    if spec:
        chosen = [select(item.strip()) for item in spec.split(",") if item.strip()]
    else:
        chosen = [d for d in all_disks() if not d.removable and d.bus != "usb"]
        if not chosen:
            raise DiskNotFound("no fixed disk found (USB and removable disks are used only when the task names them)")
    paths = [os.path.realpath(d.path) for d in chosen]
    if len(set(paths)) != len(paths):
        raise DiskNotFound(f"disk list {spec!r} names the same disk twice")
    return chosen


def partition_path(disk_path: str, number: int) -> str:
    """Device node of partition ``number``: vda1, nvme0n1p1, loop0p1 — asked of sysfs, not guessed."""
    name = os.path.basename(os.path.realpath(disk_path))
    sys_dir = f"/sys/class/block/{name}"
    for entry in sorted(os.listdir(sys_dir)):
        if not entry.startswith(name):
            continue
        try:
            with open(os.path.join(sys_dir, entry, "partition")) as f:
                if int(f.read().strip()) == number:
                    return f"/dev/{entry}"
        except OSError:  # not a partition, or one the kernel is removing while it re-reads the table (ENODEV)
            continue
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
