"""Clonezilla image directories (``ocs-sr savedisk``), one or several disks.

    disk                           the disks saved, space-separated ("sda sdb")
    <disk>-pt.sf                   sfdisk -d of each disk
    <disk>-mbr                     its first sector; + <disk>-hidden-data-after-mbr (MBR disks)
    <part>.<fs>-ptcl-img.<c>.aa…   partclone stream, compressed with <c> (gz, zst, xz, bz2, uncomp), split
    <part>.dd-img.<c>.aa…          raw bytes of a filesystem partclone does not know
    swappt-<part>.info             a swap partition's UUID and LABEL (no stream)
    MD5SUMS, SHA1SUMS, B2SUMS …    checksums of the image's files, where saving asked for them (-gm, -gs …)
"""
from __future__ import annotations

import glob
import os
import re

from imager.errors import InvalidImage
from imager.foreign.model import CLONEZILLA, ForeignDisk, ForeignImage, ForeignPartition, Stream
from imager.foreign.streams import CLONEZILLA_TAGS
from imager.foreign.tables import parse_sfdisk_dump, read_if_present

CHECKSUM_FILES = ("MD5SUMS", "SHA1SUMS", "SHA256SUMS", "SHA512SUMS", "B2SUMS", "B3SUMS")


def load(image_dir: str) -> ForeignImage:
    names = _disk_names(image_dir)
    if os.path.exists(os.path.join(image_dir, "lvm_vg_dev.list")):
        raise InvalidImage(f"{image_dir} holds LVM volumes (lvm_vg_dev.list): Clonezilla images of LVM disks are "
                           "not read yet", hint="Restore it with Clonezilla, or capture the disk with imager.")
    disks = [_load_disk(image_dir, name) for name in names]
    checksums = [name for name in CHECKSUM_FILES if os.path.exists(os.path.join(image_dir, name))]
    return ForeignImage(CLONEZILLA, "savedisk", image_dir, disks, checksums)


def _disk_names(image_dir: str) -> list[str]:
    listed = os.path.join(image_dir, "disk")
    if os.path.exists(listed):
        with open(listed) as f:
            names = f.read().split()
    else:
        names = sorted(os.path.basename(p)[:-len("-pt.sf")] for p in glob.glob(os.path.join(glob.escape(image_dir), "*-pt.sf")))
    if not names:
        raise InvalidImage(f"{image_dir}: a Clonezilla image without a partition table dump (<disk>-pt.sf); "
                           "partition-only images (saveparts) are not read yet")
    for name in names:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or not os.path.exists(os.path.join(image_dir, f"{name}-pt.sf")):
            raise InvalidImage(f"{image_dir}: the image lists disk {name!r} but has no {name}-pt.sf for it")
    return names


def _load_disk(image_dir: str, disk: str) -> ForeignDisk:
    dump = read_if_present(image_dir, f"{disk}-pt.sf")
    layout = parse_sfdisk_dump(dump.decode(errors="replace"))
    mbr = read_if_present(image_dir, f"{disk}-mbr")
    boot = mbr[:440] if layout.label == "gpt" else mbr + read_if_present(image_dir, f"{disk}-hidden-data-after-mbr")
    partitions = [_partition(image_dir, disk, part.number, part.kind) for part in layout.partitions]
    return ForeignDisk(disk, layout, dump, boot, partitions)


def _partition(image_dir: str, disk: str, number: int, kind: str) -> ForeignPartition:
    if kind == "extended":
        return ForeignPartition(number, "container")
    name = f"{disk}{'p' if disk[-1].isdigit() else ''}{number}"
    prefix = os.path.join(glob.escape(image_dir), name)
    for pattern, raw in ((f"{prefix}.*-ptcl-img.*.[a-z][a-z]", False), (f"{prefix}.dd-img.*.[a-z][a-z]", True)):
        pieces = sorted(glob.glob(pattern))
        if pieces:
            return _stream_partition(number, pieces, raw)
    info = os.path.join(image_dir, f"swappt-{name}.info")
    if os.path.exists(info):
        text = read_if_present(image_dir, os.path.basename(info)).decode(errors="replace")
        found = dict(re.findall(r'^(UUID|LABEL)="([^"]*)"', text, re.M))
        return ForeignPartition(number, "swap", swap_uuid=found.get("UUID", ""), swap_label=found.get("LABEL", ""),
                                fstype="swap")
    raise InvalidImage(f"{image_dir}: no data file for partition {number} ({name}.*-ptcl-img.*)")


def _stream_partition(number: int, pieces: list[str], raw: bool) -> ForeignPartition:
    base = os.path.basename(pieces[0])
    match = re.match(r"^.+?\.(?:(?P<fs>[^.]+)-ptcl-img|dd-img)\.(?P<tag>[^.]+)\.[a-z]{2}$", base)
    tag = match.group("tag") if match else ""
    compression = CLONEZILLA_TAGS.get(tag)
    if compression is None:
        raise InvalidImage(f"{base}: Clonezilla's {tag or 'unnamed'} compression is not supported "
                           f"(supported: {', '.join(sorted(CLONEZILLA_TAGS))})",
                           hint="Save the image with -z1p (gzip) or -z9p (zstd).")
    fstype = (match.group("fs") or "") if match else ""
    raw = raw or fstype == "dd"   # partclone.dd's output (<part>.dd-ptcl-img): the bytes, no partclone header
    return ForeignPartition(number, "stream", Stream(pieces, compression, raw=raw), fstype="" if raw else fstype)
