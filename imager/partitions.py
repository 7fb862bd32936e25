"""Partition tables: read with pyparted, saved and restored with sfdisk/sgdisk.

What an image keeps of a table (see docs/image-format.md):
- ``d1.sfdisk``   ``sfdisk --dump`` (MBR and GPT; the MBR restore source),
- ``d1.sgdisk``   ``sgdisk --backup`` (GPT only; the GPT restore source, keeps every GUID),
- ``d1.bootarea`` the bytes before the first partition (boot code, GRUB's core image).
"""
from __future__ import annotations

import gc
import os
from dataclasses import asdict, dataclass, field

import parted

from imager import process
from imager.errors import UnsupportedDisk

# Room the backup GPT needs at the end of a disk: header + 128 entries of 128 bytes.
GPT_TAIL_BYTES = 33 * 512
# Boot areas beyond this are not boot code but a layout we do not understand.
MAX_BOOT_AREA = 16 * 1024 * 1024


@dataclass
class Partition:
    number: int
    start: int          # in logical sectors
    sectors: int
    kind: str           # normal | logical | extended
    name: str = ""
    fstype: str = ""
    uuid: str = ""
    label: str = ""

    @property
    def end(self) -> int:
        return self.start + self.sectors - 1


@dataclass
class Layout:
    label: str          # gpt | msdos
    sector_size: int
    disk_sectors: int
    partitions: list[Partition] = field(default_factory=list)

    @property
    def boot_area_bytes(self) -> int:
        first = min((p.start for p in self.partitions), default=1)
        return first * self.sector_size

    @property
    def required_bytes(self) -> int:
        """Smallest disk that holds this exact layout."""
        last = max((p.end for p in self.partitions), default=0)
        tail = GPT_TAIL_BYTES if self.label == "gpt" else 0
        return (last + 1) * self.sector_size + tail

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Layout":
        parts = [Partition(**p) for p in data["partitions"]]
        return cls(data["label"], data["sector_size"], data["disk_sectors"], parts)


_KINDS = {parted.PARTITION_NORMAL: "normal", parted.PARTITION_LOGICAL: "logical",
          parted.PARTITION_EXTENDED: "extended"}


def probe_filesystem(device: str) -> dict[str, str]:
    """blkid's low-level probe (no udev needed): TYPE, UUID, LABEL when present."""
    result = process.run(["blkid", "-p", "-o", "export", device], check=False)
    values = {}
    for line in result.text.splitlines():
        key, _, value = line.partition("=")
        values[key] = value
    fstype = values.get("TYPE", "")
    if fstype == "vfat" and values.get("VERSION") == "FAT12":
        fstype = "fat12"  # its own name: partclone 0.3.23 restores FAT12 wrongly, so it travels raw
    return {"fstype": fstype, "uuid": values.get("UUID", ""), "label": values.get("LABEL", "")}


def read_layout(disk_path: str) -> Layout:
    try:
        return _read_layout(disk_path)
    finally:
        # libparted caches devices by path and never re-probes them: a path reused for another disk
        # (loop devices, hot-swapped drives) would be read with the old geometry, and a larger disk
        # crashes it.  Drop the cache once our Python objects are gone.
        gc.collect()
        parted.freeAllDevices()


def _read_layout(disk_path: str) -> Layout:
    try:
        device = parted.getDevice(disk_path)
        disk = parted.newDisk(device)
    except parted.DiskException as exc:
        raise UnsupportedDisk(f"{disk_path} has no partition table pyparted can read: {exc}") from exc
    if disk.type not in ("gpt", "msdos"):
        raise UnsupportedDisk(f"{disk_path} has a {disk.type} partition table; only GPT and MBR are supported")
    layout = Layout(disk.type, device.sectorSize, device.length)
    for part in disk.partitions:
        layout.partitions.append(Partition(
            number=part.number, start=part.geometry.start, sectors=part.geometry.length,
            kind=_KINDS.get(part.type, "normal"),
            name=(part.name or "") if disk.type == "gpt" else ""))
    return layout


def save_table(disk_path: str, layout: Layout, image_dir: str, prefix: str = "d1") -> dict[str, str]:
    """Write the table files into ``image_dir``; returns {role: filename}."""
    from imager.datapath import write_bytes_fsync

    files = {"sfdisk": f"{prefix}.sfdisk", "bootarea": f"{prefix}.bootarea"}
    dump = process.run(["sfdisk", "--dump", disk_path]).stdout
    write_bytes_fsync(os.path.join(image_dir, files["sfdisk"]), dump)
    if layout.label == "gpt":
        files["sgdisk"] = f"{prefix}.sgdisk"
        process.run(["sgdisk", f"--backup={os.path.join(image_dir, files['sgdisk'])}", disk_path])
    size = min(layout.boot_area_bytes, MAX_BOOT_AREA)
    with open(disk_path, "rb") as disk:
        write_bytes_fsync(os.path.join(image_dir, files["bootarea"]), disk.read(size))
    return files


def restore_table(disk_path: str, layout: Layout, image_dir: str, files: dict[str, str], disk_bytes: int,
                  planned: Layout | None = None) -> None:
    """Lay the saved table onto ``disk_path`` (or ``planned``, a resized version of it); sizes are checked."""
    from imager.resize import sfdisk_script

    with open(os.path.join(image_dir, files["bootarea"]), "rb") as src:
        boot_area = src.read()
    with open(os.path.join(image_dir, files["sfdisk"]), "rb") as dump:
        saved = dump.read()
    resized = planned is not None and [(p.start, p.sectors) for p in planned.partitions] != [
        (p.start, p.sectors) for p in layout.partitions]
    if resized and planned is not None:
        # sfdisk's dump carries every GUID, name, type and attribute; only starts and sizes change.
        write_table(disk_path, boot_area, sfdisk_script(saved.decode(), planned).encode())
    else:
        backup = os.path.join(image_dir, files["sgdisk"]) if layout.label == "gpt" else None
        write_table(disk_path, boot_area, saved, sgdisk_backup=backup,
                    move_backup_gpt=disk_bytes != layout.disk_sectors * layout.sector_size)


def write_table(disk_path: str, boot_area: bytes, sfdisk_dump: bytes, *, sgdisk_backup: str | None = None,
                move_backup_gpt: bool = False) -> None:
    """Wipe old signatures, write the boot area, then the table (sgdisk backup if given, else sfdisk)."""
    # Old signatures (a previous GPT's backup header at the end, a stale fs) must not survive.
    process.run(["wipefs", "--all", "--force", disk_path])
    with open(disk_path, "r+b") as disk:
        disk.write(boot_area)
        disk.flush()
        os.fsync(disk.fileno())
    if sgdisk_backup:
        process.run(["sgdisk", f"--load-backup={sgdisk_backup}", disk_path])
        if move_backup_gpt:
            process.run(["sgdisk", "--move-second-header", disk_path])  # backup GPT to the real end
    else:
        process.run(["sfdisk", "--no-reread", "--force", disk_path], input=sfdisk_dump)

