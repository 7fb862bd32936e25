"""Readers of the machine's hardware facts from /proc and /sys, in pure Python.

Each reader is one small function taking ``root`` (``/`` on the machine, a fake tree in unit
tests) and never raises for a missing or unreadable file: an absent fact is an empty string or
None, because an inventory with a gap is worth more than no inventory.
"""
from __future__ import annotations

import os
import re

from contract.inventory import DMI_FIELDS

MAX_TEXT = 256  # the server refuses longer strings
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")

# DMI_FIELDS: the /sys/class/dmi/id files we report; product_serial, product_uuid and board_serial are root-only.


def text(value: str) -> str:
    """Firmware strings can hold anything: keep them printable and short."""
    return _CONTROL.sub("", value).strip()[:MAX_TEXT]


def _read(root: str, path: str) -> str | None:
    try:
        with open(os.path.join(root, path.lstrip("/")), "rb") as f:
            return f.read(64 * 1024).decode("utf-8", errors="replace")
    except OSError:  # missing, not readable, or EINVAL (speed of a NIC without link)
        return None


def read_cpu(root: str = "/") -> dict:
    """Model, sockets, physical cores and threads from /proc/cpuinfo."""
    blocks = [dict((k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in block.splitlines()))
              for block in (_read(root, "proc/cpuinfo") or "").split("\n\n") if block.strip()]
    processors = [b for b in blocks if "processor" in b]
    model = next((b.get("model name") or b.get("Processor") or b.get("cpu model") or "" for b in processors), "")
    sockets = {b.get("physical id", "0") for b in processors}
    cores = {(b.get("physical id", "0"), b["core id"]) for b in processors if "core id" in b}
    return {"model": text(model), "sockets": len(sockets), "cores": len(cores) or len(processors),
            "threads": len(processors)}


def read_memory(root: str = "/") -> int:
    """RAM in bytes as the kernel sees it (MemTotal: physical minus what firmware and kernel keep)."""
    match = re.search(r"^MemTotal:\s+(\d+) kB", _read(root, "proc/meminfo") or "", re.M)
    return int(match.group(1)) * 1024 if match else 0


def read_dmi(root: str = "/") -> dict:
    """SMBIOS identity and BIOS from /sys/class/dmi/id; fields the firmware leaves out are omitted."""
    found = {}
    for field in DMI_FIELDS:
        value = _read(root, f"sys/class/dmi/id/{field}")
        if value is not None and text(value):
            found[field] = text(value)
    return found


def read_nics(root: str = "/") -> list[dict]:
    """Physical Ethernet NICs (those with a device behind them): name, MAC, link speed, driver."""
    net = os.path.join(root, "sys/class/net")
    try:
        names = sorted(os.listdir(net))
    except OSError:
        return []
    nics = []
    for name in names:
        base = f"sys/class/net/{name}"
        if (_read(root, f"{base}/type") or "").strip() != "1" or not os.path.exists(os.path.join(net, name, "device")):
            continue  # loopback, bridges, tunnels, bonds: not a card in the machine
        speed = (_read(root, f"{base}/speed") or "").strip()
        try:
            driver = os.path.basename(os.readlink(os.path.join(net, name, "device", "driver")))
        except OSError:
            driver = ""
        mac = (_read(root, f"{base}/address") or "").strip().lower()
        if not _MAC.match(mac):
            continue
        nics.append({"name": text(name), "mac": mac,
                     # -1 or unreadable: no link, so no speed
                     "speed_mbps": int(speed) if speed.isdigit() else None, "driver": text(driver)})
    return nics


def read_rotational(root: str, disk_name: str) -> bool | None:
    """True for a spinning disk, False for flash; None when the kernel does not say."""
    value = (_read(root, f"sys/block/{disk_name}/queue/rotational") or "").strip()
    return {"1": True, "0": False}.get(value)
