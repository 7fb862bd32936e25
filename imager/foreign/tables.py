"""``sfdisk -d`` dumps, the one table format FOG and Clonezilla both keep."""
from __future__ import annotations

import os
import re

from imager.errors import InvalidImage
from imager.partitions import Layout, Partition

_EXTENDED_TYPES = {"5", "f", "85"}
GPT_ENTRIES_BYTES = 128 * 128


def parse_sfdisk_dump(text: str) -> Layout:
    """Layout from ``sfdisk -d`` text (any device names)."""
    header = dict(re.findall(r"^([a-z-]+):\s*(\S+)\s*$", text, re.M))
    label = {"dos": "msdos", "gpt": "gpt"}.get(header.get("label", "dos"), "msdos")
    sector_size = int(header.get("sector-size", "512"))
    parts = []
    for line in text.splitlines():
        match = re.match(r"^\S*?(\d+)\s*:\s*(.*)$", line)
        if not match:
            continue
        fields = dict(re.findall(r"(\w+)=\s*(\"[^\"]*\"|[^,\s]+)", match.group(2)))
        if "start" not in fields or "size" not in fields:
            raise InvalidImage(f"the partition table dump's line for partition {match.group(1)} has no start or size")
        number = int(match.group(1))
        ptype = str(fields.get("type") or fields.get("Id") or "").lower()
        kind = "extended" if label == "msdos" and ptype in _EXTENDED_TYPES else (
            "logical" if label == "msdos" and number >= 5 else "normal")
        parts.append(Partition(number=number, start=int(fields["start"]), sectors=int(fields["size"]), kind=kind,
                               name=fields.get("name", "").strip('"')))
    if not parts:
        raise InvalidImage("the partition table dump lists no partitions")
    last = max(p.end for p in parts)
    tail = 1 + GPT_ENTRIES_BYTES // sector_size   # the backup header and its 128 entries follow last-lba
    disk_sectors = int(header["last-lba"]) + 1 + tail if "last-lba" in header else last + 1
    return Layout(label, sector_size, disk_sectors, parts)


def last_usable(text: str) -> int | None:
    """The GPT's last usable sector the dump records (None for MBR, or when it does not say)."""
    match = re.search(r"^last-lba:\s*(\d+)\s*$", text, re.M)
    return int(match.group(1)) if match else None


def read_if_present(image_dir: str, name: str) -> bytes:
    """A small file of the image (a table, a boot area, a list), or b"" when the image has none."""
    path = os.path.join(image_dir, name)
    if not os.path.exists(path):
        return b""
    with open(path, "rb") as f:
        return f.read()
