"""NICs whose firmware is missing, read from the kernel log.

Debian's non-free firmware is not in the boot image unless the site added it
(``make initramfs FIRMWARE_DIR=…``, docs/hardware.md).  A driver that lacks its file says so in the
kernel log; this names the NIC (driver, device, interface) and the file, for the console and
the inventory the server stores.  ``parse`` is pure; ``read_kernel_log`` and ``nic_of`` read
``root`` (``/`` on the machine, a fake tree in tests) and never raise.
"""
from __future__ import annotations

import errno
import os
import re
from typing import TypedDict

from contract.inventory import MAX_ITEMS
from imager.hwinfo import text

MAX_LOG = 4 * 1024 * 1024  # the kernel's ring buffer is far smaller; a bound for a fake or odd file

# "<driver> <device>[ <interface>]: <message>" — how dev_err()/netdev_err() prefix their lines.
_DEVICE_LINE = re.compile(r"^(?P<driver>[\w-]+) (?P<device>[\w:.-]{1,64})(?: (?P<interface>[\w.-]+))?: (?P<message>.*)$")
# What the firmware loader and the drivers say; the file name is the first path-like word after it.
_MESSAGES = [
    re.compile(r"Direct firmware load for (?P<file>\S+) failed with error"),
    re.compile(r"(?i)(?:failed to|unable to|can't|cannot) (?:load|request) firmware(?: patch| file| image)?"
               r"[\s:\"']*(?P<file>\w[\w+-]*(?:[./][\w+-]+)+)"),
]
# A kmsg record "<prio>,<seq>,<usec>,<flags>;<text>" or a dmesg line "[   1.234] <text>".
_KMSG_PREFIX = re.compile(r"^\d+,\d+,\d+,[^;]*;")
_DMESG_PREFIX = re.compile(r"^(?:<\d+>)?\[\s*\d+\.\d+\]\s?")


class MissingFirmware(TypedDict):
    driver: str
    device: str
    interface: str
    file: str


def parse(kernel_log: str) -> list[MissingFirmware]:
    """Every (device, file) the log says could not be loaded, in order, once each."""
    found: list[MissingFirmware] = []
    for raw in kernel_log.splitlines():
        if raw.startswith(" "):  # a kmsg record's continuation (SUBSYSTEM=, DEVICE=)
            continue
        line = _DMESG_PREFIX.sub("", _KMSG_PREFIX.sub("", raw)).strip()
        match = _DEVICE_LINE.match(line)
        if not match:
            continue
        for message in _MESSAGES:
            file_match = message.search(match["message"])
            if file_match:
                file = text(file_match["file"].rstrip(".,;:)\"'"))  # the server takes printable, short text
                known = next((f for f in found if (f["device"], f["file"]) == (match["device"], file)), None)
                if known is None:
                    found.append({"driver": text(match["driver"]), "device": match["device"],
                                  "interface": text(match["interface"] or ""), "file": file})
                elif not known["interface"]:  # the loader's line has no interface, the driver's may
                    known["interface"] = text(match["interface"] or "")
                break
    return found


def read_kernel_log(root: str = "/") -> str:
    """The kernel log from /dev/kmsg (one record per read; stops when none is left); '' if unreadable."""
    try:
        fd = os.open(os.path.join(root, "dev/kmsg"), os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return ""
    chunks: list[bytes] = []
    size = 0
    try:
        while size < MAX_LOG:
            try:
                chunk = os.read(fd, 8192)
            except BlockingIOError:  # no record left
                break
            except OSError as exc:
                if exc.errno == errno.EPIPE:  # records overwritten while reading: go on with the next
                    continue
                break
            if not chunk:
                break
            chunks.append(chunk if chunk.endswith(b"\n") else chunk + b"\n")
            size += len(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode(errors="replace")


def nic_of(entry: MissingFirmware, root: str = "/") -> MissingFirmware | None:
    """The entry if its device is a NIC (PCI class 02xx, or it has a network interface), with the
    interface filled in from sysfs; None for other devices (a USB controller, a GPU …)."""
    for bus in ("pci", "usb"):
        device = os.path.join(root, "sys/bus", bus, "devices", entry["device"])
        if not os.path.isdir(device):
            continue
        try:
            interfaces = sorted(os.listdir(os.path.join(device, "net")))
        except OSError:
            interfaces = []
        try:
            with open(os.path.join(device, "class")) as f:
                network_class = f.read().strip().startswith("0x02")
        except OSError:
            network_class = False
        if interfaces or network_class:
            return {**entry, "interface": entry["interface"] or (interfaces[0] if interfaces else "")}
    return None


def missing_nic_firmware(root: str = "/") -> list[MissingFirmware]:
    """The NICs on this machine whose driver could not load a firmware file."""
    return [nic for nic in (nic_of(e, root) for e in parse(read_kernel_log(root))) if nic is not None][:MAX_ITEMS]


def console_lines(missing: list[MissingFirmware]) -> list[str]:
    return [f"NIC {m['interface'] or '(no interface)'} ({m['driver']} {m['device']}) is missing firmware "
            f"{m['file']}: add it to the boot image with make initramfs FIRMWARE_DIR=… (docs/hardware.md)"
            for m in missing]
