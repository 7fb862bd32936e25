"""Deploy a FOG or Clonezilla image as it lies in its directory.

The recipe is deploy's: read the image, pick the target disks and plan each one's layout for its
size, and check every stream's contents (a partimage volume, a stream with no partclone image) —
all before the first write (``imager deploy --verify-first`` reads the whole image first). Then, disk by disk: the boot area and table, each partition's stream through partclone,
swap recreated with its UUID, and filesystems FOG captured shrunk grown to fill their partitions.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Any

from imager import datapath, disks, filesystems, foreign, partclone, postdeploy, process
from imager.errors import DiskTooSmall
from imager.foreign import plan, streams
from imager.foreign.model import ForeignDisk, ForeignImage, Stream
from imager.manifest import check_sector_size
from imager.ops.capture import refuse_if_mounted
from imager.ops.deploy import BlankOnFailure, targets_for
from imager.partitions import Layout, probe_filesystem, write_table
from imager.progress import Progress, human
from imager.winhostname import set_windows_hostname

log = logging.getLogger(__name__)


def deploy_foreign(image_dir: str, disk_spec: str | None, progress: Progress, written: BlankOnFailure,
                   hostname: str | None = None) -> dict[str, Any]:
    started = time.monotonic()
    if hostname:
        postdeploy.check_hostname(hostname)  # a wrong name fails the task before anything is written
    image = foreign.load(image_dir)
    targets = targets_for(len(image.disks), disk_spec)
    plans = [plan_target(disk, target) for disk, target in zip(image.disks, targets)]
    # Refuses a partimage volume or unknown contents before any write; the sizes drive progress.
    sizes = {s.name: streams.expected_bytes(s) for d in image.disks for s in d.streams}
    for target in targets:
        refuse_if_mounted(target.path)
    progress.expect(sum(sizes.values()))
    for disk, target, planned in zip(image.disks, targets, plans):
        log.info("deploying %s image %s, disk %s, onto %s (%s)", image.format, image_dir, disk.name, target.path,
                 human(target.size_bytes))
        written.writing(target.path)
        if disk.raw is not None:
            restore_raw(disk, target, progress, sizes)
        else:
            write_disk_table(disk, target, planned)
            restore_partitions(disk, target, progress, sizes)
    renamed = set_hostname(image, targets, hostname) if hostname else {}
    process.run(["sync"], check=False)
    return {"image": image.name, "format": image.format, "disk": ", ".join(t.path for t in targets),
            "seconds": round(time.monotonic() - started, 1), "disks": len(targets),
            "partitions": sum(len(d.partitions) for d in image.disks), "hostname_set": renamed}


def plan_target(disk: ForeignDisk, target: disks.Disk) -> Layout:
    check_sector_size(disk.layout, target.logical_sector_size, target.path)
    if disk.raw is not None:
        if target.size_bytes < disk.layout.disk_sectors * disk.layout.sector_size:
            raise DiskTooSmall(f"{target.path} holds {target.size_bytes} bytes, the raw image of disk {disk.name} "
                               f"is {disk.layout.disk_sectors * disk.layout.sector_size}")
        return disk.layout
    try:
        return plan.plan_disk(disk, target.size_bytes)
    except DiskTooSmall as exc:
        raise DiskTooSmall(f"{target.path} ({human(target.size_bytes)}): {exc.message}") from exc


def write_disk_table(disk: ForeignDisk, target: disks.Disk, planned: Layout) -> None:
    write_table(target.path, disk.boot_area, plan.table_script(disk, planned, target.size_bytes))
    disks.reread_partitions(target.path, [p.number for p in disk.layout.partitions])


def restore_partitions(disk: ForeignDisk, target: disks.Disk, progress: Progress, sizes: dict[str, int]) -> None:
    shrunk = plan.shrunk_bytes(disk)
    for i, part in enumerate(disk.partitions, 1):
        device = disks.partition_path(target.path, part.number)
        if part.kind == "swap":
            filesystems.recreate_swap(device, part.swap_uuid, part.swap_label)
        elif part.stream is not None:
            progress.set_stage(f"disk {disk.name}, partition {i}/{len(disk.partitions)}: {os.path.basename(device)}",
                               total=sizes[part.stream.name])
            restore_stream(part.stream, device, progress, shrunk=part.number in shrunk)
        if part.number in shrunk:  # captured shrunk by FOG: fill the partition again
            fstype = probe_filesystem(device)["fstype"]
            if fstype in filesystems.SHRINKABLE | filesystems.GROW_ONLY:
                filesystems.grow(device, fstype)


def restore_raw(disk: ForeignDisk, target: disks.Disk, progress: Progress, sizes: dict[str, int]) -> None:
    assert disk.raw is not None
    progress.set_stage(f"whole disk {target.path}", total=sizes[disk.raw.name])
    restore_stream(disk.raw, target.path, progress)   # FOG's raw type is partclone.imager of the disk
    process.run(["partprobe", target.path], check=False)


def restore_stream(stream: Stream, device: str, progress: Progress, shrunk: bool = False) -> None:
    """The pieces concatenated and decompressed into partclone (raw bytes: partclone.dd) onto ``device``."""
    tool = partclone.RAW if stream.raw else "restore"
    datapath.feed_partclone(tool, device, lambda sink: datapath.decompress_pieces(
        stream.pieces, stream.compression, sink, progress.add), shrunk=shrunk)
    progress.flush()


def set_hostname(image: ForeignImage, targets: list[disks.Disk], hostname: str) -> dict[str, list[str]]:
    """The task's hostname on every Linux root and Windows system deployed (as FOG's hostname changer)."""
    renamed: dict[str, list[str]] = {"linux": [], "windows": []}
    for disk, target in zip(image.disks, targets):
        on_disk: list[dict[str, Any]] = [
            {"number": p.number, "fstype": probe_filesystem(disks.partition_path(target.path, p.number))["fstype"]}
            for p in disk.partitions if p.stream is not None]
        renamed["linux"] += postdeploy.set_linux_hostname(target.path, on_disk, hostname)
        renamed["windows"] += set_windows_hostname(target.path, on_disk, hostname)
    return renamed
