"""Inventory: write down what this machine is made of, the way a technician fills in its card.

Read the system's identity and BIOS from the firmware's DMI tables, count the CPU and the
memory, list the disks exactly as task disk selectors see them (so a serial shown here is the
one ``--disk serial=…`` matches), list the network cards.  Nothing is written anywhere.
"""
from __future__ import annotations

import logging
from typing import Any

from imager import disks, hwinfo, missingfirmware
from imager.ops.context import OpContext

log = logging.getLogger(__name__)


def collect(root: str = "/") -> dict[str, Any]:
    """The whole inventory as the server stores it (docs/task-json.md)."""
    found: dict[str, Any] = {
        "dmi": hwinfo.read_dmi(root),
        "cpu": hwinfo.read_cpu(root),
        "memory_bytes": hwinfo.read_memory(root),
        "disks": [disk_facts(d, root) for d in disks.all_disks()],
        "nics": hwinfo.read_nics(root),
    }
    missing = missingfirmware.missing_nic_firmware(root)
    if missing:  # only then: a server that predates the field still takes every other inventory
        found["firmware_missing"] = missing
    return found


def disk_facts(disk: disks.Disk, root: str = "/") -> dict[str, Any]:
    return {"path": disk.path, "size_bytes": disk.size_bytes, "model": hwinfo.text(disk.model),
            "serial": hwinfo.text(disk.serial), "wwn": hwinfo.text(disk.wwn),
            "rotational": hwinfo.read_rotational(root, disk.name), "removable": disk.removable,
            "bus": hwinfo.text(disk.bus), "logical_sector_size": disk.logical_sector_size}


def summary(inventory: dict[str, Any]) -> list[str]:
    """A few lines for the console: what the technician checks against the sticker on the case."""
    dmi, cpu = inventory.get("dmi", {}), inventory.get("cpu", {})
    lines = [f"system: {dmi.get('sys_vendor', '?')} {dmi.get('product_name', '?')}, "
             f"serial {dmi.get('product_serial', '-')}, BIOS {dmi.get('bios_version', '-')}",
             f"cpu: {cpu.get('model', '?')} ({cpu.get('cores', 0)} cores, {cpu.get('threads', 0)} threads), "
             f"memory {inventory.get('memory_bytes', 0) / 2**30:.1f} GiB"]
    lines += [f"disk: {d['path']} {d['size_bytes'] / 1e9:.1f} GB {d['model']} serial {d['serial'] or '-'}"
              for d in inventory.get("disks", [])]
    lines += [f"nic: {n['name']} {n['mac']} {n['driver']}" for n in inventory.get("nics", [])]
    lines += missingfirmware.console_lines(inventory.get("firmware_missing", []))
    return lines


def inventory(ctx: OpContext) -> dict[str, Any]:
    """The inventory task: collect, show, hand back as the task's result (the agent sends it)."""
    ctx.progress.set_stage("inventory", total=0)
    found = collect()
    for line in summary(found):
        log.info("%s", line)
    return {"inventory": found, "disks": len(found["disks"]), "nics": len(found["nics"])}
