"""Resizable images (FOG's "single disk - resizable").

Capture shrinks each ext2/3/4 and NTFS filesystem to about its minimum before
partclone reads it, and grows it back to fill its partition afterwards — also
when the capture fails — so the source keeps its partition table, filesystem
sizes and files.  The partition table itself is never touched on the source.

Deploy plans a new layout for the target: the last resizable partition absorbs
the difference in disk size (larger or smaller), partitions after it move with
it, an extended partition around it stretches; then each shrunk filesystem is
grown to fill its partition.  xfs and btrfs cannot be shrunk offline: they keep
at least their size, but take the room of a larger disk and are grown mounted.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import re
from typing import Iterator

from imager import disks, filesystems
from imager.errors import DiskTooSmall
from imager.partitions import GPT_TAIL_BYTES, Layout, Partition

log = logging.getLogger(__name__)

ALIGN_BYTES = 1024 * 1024
SLACK_BYTES = 64 * 1024 * 1024   # room left above the minimum, as FOG leaves some


def _align_up(n: int, step: int) -> int:
    return -(-n // step) * step


@contextlib.contextmanager
def shrunk_filesystems(disk_path: str, layout: Layout) -> Iterator[dict[int, int]]:
    """Shrink what can be shrunk; yield {partition number: filesystem bytes}; always grow back."""
    sizes: dict[int, int] = {}
    shrunk: list[Partition] = []
    try:
        for part in layout.partitions:
            if part.fstype not in filesystems.SHRINKABLE:
                continue
            device = disks.partition_path(disk_path, part.number)
            minimum = filesystems.minimum_bytes(device, part.fstype)
            part_bytes = part.sectors * layout.sector_size
            if minimum is None:
                continue
            target = _align_up(minimum + max(SLACK_BYTES, minimum // 20), ALIGN_BYTES)
            if target >= part_bytes:
                continue
            log.info("shrinking %s (%s) to %d MiB for capture", device, part.fstype, target // 2**20)
            shrunk.append(part)
            filesystems.shrink(device, part.fstype, target)
            sizes[part.number] = target
        yield sizes
    finally:
        for part in reversed(shrunk):
            device = disks.partition_path(disk_path, part.number)
            log.info("growing %s back to its partition", device)
            filesystems.grow(device, part.fstype)


def plan(layout: Layout, fs_bytes: dict[int, int], target_sectors: int) -> Layout:
    """The layout for a target of ``target_sectors``; raises DiskTooSmall when the data cannot fit.

    ``fs_bytes`` names the resizable partitions and the bytes their filesystem needs.
    """
    align = ALIGN_BYTES // layout.sector_size
    delta = (target_sectors - layout.disk_sectors) // align * align
    new = copy.deepcopy(layout)
    new.disk_sectors = target_sectors
    movable = [p for p in new.partitions if p.number in fs_bytes and p.kind != "extended"]
    if delta == 0 or not movable:
        if target_sectors * layout.sector_size < layout.required_bytes:
            raise DiskTooSmall(f"the disk holds {target_sectors * layout.sector_size} bytes, the image's "
                               f"layout needs {layout.required_bytes} bytes and has no resizable partition")
        return new
    def needed_sectors(part: Partition) -> int:
        return _align_up(fs_bytes[part.number], layout.sector_size) // layout.sector_size

    if delta < 0:  # a smaller disk: only a partition whose filesystem was shrunk can give room back
        movable = [p for p in movable if needed_sectors(p) < p.sectors] or movable
    grow = max(movable, key=lambda p: p.start)
    needed = needed_sectors(grow)
    if grow.sectors + delta < needed:
        short = (needed - grow.sectors - delta) * layout.sector_size
        raise DiskTooSmall(f"the disk is {short} bytes too small even with partition {grow.number} shrunk "
                           f"to its {fs_bytes[grow.number]}-byte filesystem")
    old_end = grow.end
    for part in new.partitions:
        if part.number == grow.number:
            part.sectors += delta
        elif part.kind == "extended" and part.start <= grow.start and part.end >= old_end:
            part.sectors += delta      # the container stretches with its logical partition
        elif part.start > old_end:
            part.start += delta        # everything after moves along
    tail = GPT_TAIL_BYTES // layout.sector_size if layout.label == "gpt" else 0
    last = max(p.end for p in new.partitions)
    if last + 1 + tail > target_sectors:
        raise DiskTooSmall(f"the planned layout ends at sector {last} past the disk's {target_sectors} sectors")
    return new


def smallest_disk_bytes(layout: Layout, fs_bytes: dict[int, int]) -> int:
    """The smallest disk ``plan`` accepts for this layout (the source's own disk always fits)."""
    def fits(sectors: int) -> bool:
        try:
            plan(layout, fs_bytes, sectors)
        except DiskTooSmall:
            return False
        return True

    low, high = 1, layout.disk_sectors  # a larger disk fits when a smaller one does
    while low < high:
        middle = (low + high) // 2
        low, high = (low, middle) if fits(middle) else (middle + 1, high)
    return high * layout.sector_size


def sfdisk_script(dump: str, layout: Layout) -> str:
    """The saved ``sfdisk --dump`` with each partition's start and size replaced from ``layout``."""
    by_number = {p.number: p for p in layout.partitions}
    lines = []
    for line in dump.splitlines():
        if line.startswith(("last-lba:", "device:")):
            continue  # let sfdisk use the target disk's own end
        match = re.match(r"^(\S*?)(\d+)\s*:\s*(.*)$", line)
        if match and int(match.group(2)) in by_number:
            part = by_number[int(match.group(2))]
            fields = [f for f in match.group(3).split(",") if not f.strip().startswith(("start=", "size="))]
            line = f"{match.group(1)}{match.group(2)} : start={part.start}, size={part.sectors}," + ",".join(fields)
        lines.append(line)
    return "\n".join(lines) + "\n"
