"""What a machine may say about its hardware: the inventory's shape, checked field by field.

The client (imager/hwinfo.py) reads exactly the fields named here; the server stores an
inventory only after ``clean``.

Registration is open to any machine on the network (there is no task and so no token), so
nothing from a client is stored before it passed ``clean``: known keys only, every value of
its type, strings short and printable, lists bounded.  A client that sends more is refused
(HTTP 400), not trimmed, so a mismatch between boot image and server shows up at once.
"""
from __future__ import annotations

import re
from typing import Any, Callable, Mapping


class InvalidInventory(ValueError):
    """The inventory is not of this shape; the message names the first wrong field."""


_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
# The DMI/SMBIOS fields (/sys/class/dmi/id/<field>) a client reads and the server accepts.
DMI_FIELDS = ("sys_vendor", "product_name", "product_version", "product_serial", "product_uuid", "bios_vendor",
              "bios_version", "bios_date", "board_vendor", "board_name", "board_version", "board_serial",
              "chassis_type", "chassis_serial")

MAX_BODY = 64 * 1024       # bytes of JSON accepted from a client with an inventory
MAX_ITEMS = 64             # disks, NICs
MAX_TEXT = 256             # characters in any string
_PRINTABLE = re.compile(r"^[^\x00-\x1f\x7f-\x9f]*$")  # no control characters (terminals, logs)


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_TEXT or not _PRINTABLE.match(value):
        raise InvalidInventory(f"{where} must be a printable string of at most {MAX_TEXT} characters")
    return value


def _count(limit: int) -> Callable[[Any, str], int]:
    def check(value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
            raise InvalidInventory(f"{where} must be a whole number 0-{limit}")
        return value
    return check


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInventory(f"{where} must be true or false")
    return value


def _optional(check: Callable[[Any, str], Any]) -> Callable[[Any, str], Any]:
    return lambda value, where: None if value is None else check(value, where)


def _mac(value: Any, where: str) -> str:
    mac = _text(value, where).strip().lower().replace("-", ":")
    if not _MAC.match(mac):
        raise InvalidInventory(f"{where}: {value!r} is not a MAC address (aa:bb:cc:dd:ee:ff)")
    return mac


_BYTES = _count(2**63 - 1)
_CPU = {"model": _text, "sockets": _count(1024), "cores": _count(1 << 20), "threads": _count(1 << 20)}
_DISK = {"path": _text, "size_bytes": _BYTES, "model": _text, "serial": _text, "wwn": _text,
         "rotational": _optional(_flag), "removable": _flag, "bus": _text, "logical_sector_size": _count(1 << 16)}
_NIC = {"name": _text, "mac": _mac, "speed_mbps": _optional(_count(10**7)), "driver": _text}
_DMI = {key: _text for key in DMI_FIELDS}
# A NIC whose driver could not load a firmware file (imager/missingfirmware.py).
_MISSING_FIRMWARE = {"driver": _text, "device": _text, "interface": _text, "file": _text}


def _record(value: Any, where: str, fields: Mapping[str, Callable[[Any, str], Any]]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInventory(f"{where} must be an object")
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise InvalidInventory(f"{where} has unknown fields: {', '.join(unknown[:5])}")
    return {key: check(value[key], f"{where}.{key}") for key, check in fields.items() if key in value}


def _list(value: Any, where: str, fields: Mapping[str, Callable[[Any, str], Any]]) -> list[dict[str, Any]]:
    if not isinstance(value, list) or len(value) > MAX_ITEMS:
        raise InvalidInventory(f"{where} must be a list of at most {MAX_ITEMS} entries")
    return [_record(item, f"{where}[{i}]", fields) for i, item in enumerate(value)]


_TOP: dict[str, Callable[[Any, str], Any]] = {"cpu": lambda v, w: _record(v, w, _CPU), "memory_bytes": _BYTES,
        "disks": lambda v, w: _list(v, w, _DISK), "nics": lambda v, w: _list(v, w, _NIC),
        "dmi": lambda v, w: _record(v, w, _DMI),
        "firmware_missing": lambda v, w: _list(v, w, _MISSING_FIRMWARE)}


def clean(inventory: Any) -> dict[str, Any]:
    """The inventory as it will be stored, or Invalid naming the first field that is wrong."""
    return _record(inventory, "inventory", _TOP)
