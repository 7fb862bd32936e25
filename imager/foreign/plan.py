"""The layout a foreign image's disk gets on a given target, decided before anything is written.

- A target of the source's size gets the source's own table, byte for byte (``sfdisk -d`` as saved).
- Otherwise the table is rewritten for the target (``last-lba`` dropped, so a GPT's usable area and
  backup header sit at the target's own end). FOG resizable images get their resizable partitions
  resized (``resize.plan``); every other image keeps its partitions where they were, and a disk that
  cannot hold them is refused.
"""
from __future__ import annotations

from imager import resize
from imager.errors import DiskTooSmall
from imager.foreign.model import ForeignDisk
from imager.partitions import Layout


def shrunk_bytes(disk: ForeignDisk) -> dict[int, int]:
    """FOG resizable: the partitions captured shrunk, and the bytes their filesystem needs."""
    if disk.minimum is None:
        return {}
    original = {p.number: p for p in disk.layout.partitions}
    sizes = {}
    for part in disk.minimum.partitions:
        full = original.get(part.number)
        if full is None or part.number in disk.fixed or full.kind == "extended":
            continue
        if part.sectors < full.sectors:
            sizes[part.number] = part.sectors * disk.minimum.sector_size
    return sizes


def plan_disk(disk: ForeignDisk, target_bytes: int) -> Layout:
    layout = disk.layout
    target_sectors = target_bytes // layout.sector_size
    if target_sectors == layout.disk_sectors:
        return layout
    shrunk = shrunk_bytes(disk)
    planned = resize.plan(layout, shrunk, target_sectors) if shrunk else layout
    if target_bytes < planned.required_bytes:
        raise DiskTooSmall(f"the disk holds {target_bytes} bytes, the image's disk {disk.name} needs "
                           f"{planned.required_bytes} bytes" + ("" if shrunk else " (its partitions keep their "
                                                                 "size and place: the image is not resizable)"))
    return planned


def table_script(disk: ForeignDisk, planned: Layout, target_bytes: int) -> bytes:
    """What sfdisk writes: the saved dump on a same-size disk, else the dump made to fit ``planned``."""
    if target_bytes // disk.layout.sector_size == disk.layout.disk_sectors:
        return disk.sfdisk_dump
    return resize.sfdisk_script(disk.sfdisk_dump.decode(errors="replace"), planned).encode()


def smallest_disk_bytes(disk: ForeignDisk) -> int:
    """The smallest target ``plan_disk`` accepts."""
    shrunk = shrunk_bytes(disk)
    return resize.smallest_disk_bytes(disk.layout, shrunk) if shrunk else disk.layout.required_bytes
