"""Images captured by FOG or Clonezilla, read as they are, so sites can switch without recapturing.

``load(image_dir)`` returns a manifest in our own shape (docs/image-format.md) whose
partitions name their pieces and compression instead of one zstd file:

FOG (docs: FOG's image layout)        Clonezilla
  d1.partitions   sfdisk -d             sda-pt.sf                     sfdisk -d
  d1.mbr          boot area (MBR) or    sda-mbr + sda-hidden-data-    boot area (MBR)
                  sgdisk backup (GPT)   after-mbr; sda-gpt.gdisk      sgdisk backup (GPT)
  d1pN.img[.000…] partclone, gzip|zstd  sdaN.<fs>-ptcl-img.<gz|zst|uncomp>.aa… partclone, split
  d1.original.swapuuids                 swappt-sdaN.info              swap identities
  d1.minimum.partitions (resizable)     —                             shrunk sizes: deploy fits smaller disks

Neither format records checksums of its files; partclone's own checksums and
the compression's frame checks are what guard these streams.
"""
from __future__ import annotations

import glob
import os
import re
from typing import Any

from imager import filesystems
from imager.errors import InvalidImage
from imager.partitions import Layout, Partition

_EXTENDED_TYPES = {"5", "f", "85"}


def detect(image_dir: str) -> str | None:
    if os.path.exists(os.path.join(image_dir, "d1.partitions")) or glob.glob(os.path.join(image_dir, "d1p*.img*")):
        return "fog"
    if os.path.exists(os.path.join(image_dir, "clonezilla-img")) or glob.glob(os.path.join(image_dir, "*-pt.sf")):
        return "clonezilla"
    return None


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
        number = int(match.group(1))
        ptype = str(fields.get("type") or fields.get("Id") or "").lower()
        kind = "extended" if label == "msdos" and ptype in _EXTENDED_TYPES else (
            "logical" if label == "msdos" and number >= 5 else "normal")
        parts.append(Partition(number=number, start=int(fields["start"]), sectors=int(fields["size"]), kind=kind,
                               name=fields.get("name", "").strip('"')))
    if not parts:
        raise InvalidImage("the partition table dump lists no partitions")
    last = max(p.end for p in parts)
    disk_sectors = int(header["last-lba"]) + 34 if "last-lba" in header else last + 1
    return Layout(label, sector_size, disk_sectors, parts)


def _compression_of(path: str) -> str:
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic.startswith(b"\x1f\x8b"):
        return "gzip"
    if magic == b"\x28\xb5\x2f\xfd":
        return "zstd"
    if magic.startswith(b"partclone"):
        return "none"
    raise InvalidImage(f"{os.path.basename(path)}: unknown compression (magic {magic.hex()})")


def _read(image_dir: str, name: str) -> bytes:
    with open(os.path.join(image_dir, name), "rb") as f:
        return f.read()


def _load_fog(image_dir: str) -> dict[str, Any]:
    dump_path = os.path.join(image_dir, "d1.partitions")
    if not os.path.exists(dump_path):
        raise InvalidImage(f"{image_dir}: FOG image without d1.partitions (raw or multi-disk FOG images are not read yet)")
    dump = _read(image_dir, "d1.partitions")
    layout = parse_sfdisk_dump(dump.decode())
    swaps = {}
    if os.path.exists(os.path.join(image_dir, "d1.original.swapuuids")):
        for line in _read(image_dir, "d1.original.swapuuids").decode().splitlines():
            dev, _, uuid = line.partition(" ")
            number = re.search(r"(\d+)$", dev)
            if number:
                swaps[int(number.group(1))] = {"uuid": uuid.strip()}
    table: dict[str, Any] = {"sfdisk_dump": dump}
    mbr = os.path.join(image_dir, "d1.mbr")
    if layout.label == "gpt":
        table["sgdisk_backup"] = mbr
    else:
        table["boot_area"] = _read(image_dir, "d1.mbr") if os.path.exists(mbr) else b""
    parts = []
    for part in layout.partitions:
        single = os.path.join(image_dir, f"d1p{part.number}.img")
        pieces = [single] if os.path.exists(single) else sorted(glob.glob(f"{single}.[0-9][0-9][0-9]"))
        parts.append(_partition_entry(part, pieces, swaps.get(part.number)))
    return {"format": "fog", "layout": layout, "table": table, "partitions": parts,
            "fs_bytes": _fog_minimum_sizes(image_dir, layout)}


def _fog_minimum_sizes(image_dir: str, layout: Layout) -> dict[int, int]:
    """FOG's resizable images: partitions captured shrunk, with their shrunk size in bytes.

    FOG shrinks a filesystem and its partition, records that table in d1.minimum.partitions, captures,
    then puts the original table back; d1.fixed_size_partitions lists the ones never to resize.
    """
    path = os.path.join(image_dir, "d1.minimum.partitions")
    if not os.path.exists(path):
        return {}
    minimum = parse_sfdisk_dump(_read(image_dir, "d1.minimum.partitions").decode())
    fixed_path = os.path.join(image_dir, "d1.fixed_size_partitions")
    fixed = {int(n) for n in re.findall(r"\d+", _read(image_dir, "d1.fixed_size_partitions").decode())} \
        if os.path.exists(fixed_path) else set()
    original = {p.number: p for p in layout.partitions}
    sizes = {}
    for part in minimum.partitions:
        full = original.get(part.number)
        if full and part.number not in fixed and full.kind != "extended" and part.sectors < full.sectors:
            sizes[part.number] = part.sectors * minimum.sector_size
    return sizes


def _load_clonezilla(image_dir: str) -> dict[str, Any]:
    dumps = glob.glob(os.path.join(image_dir, "*-pt.sf"))
    if len(dumps) != 1:
        raise InvalidImage(f"{image_dir}: expected one <disk>-pt.sf, found {len(dumps)} (multi-disk images are not read yet)")
    disk = os.path.basename(dumps[0])[:-len("-pt.sf")]
    dump = _read(image_dir, f"{disk}-pt.sf")
    layout = parse_sfdisk_dump(dump.decode())
    table: dict[str, Any] = {"sfdisk_dump": dump}
    boot = b""
    for name in (f"{disk}-mbr", f"{disk}-hidden-data-after-mbr"):
        if os.path.exists(os.path.join(image_dir, name)):
            boot += _read(image_dir, name)
    table["boot_area"] = boot if layout.label != "gpt" else boot[:440]
    parts = []
    for part in layout.partitions:
        name = f"{disk}{'p' if disk[-1].isdigit() else ''}{part.number}"
        pieces = sorted(glob.glob(os.path.join(image_dir, f"{name}.*-ptcl-img.*.[a-z][a-z]")))
        pieces = pieces or sorted(glob.glob(os.path.join(image_dir, f"{name}.dd-img.*.[a-z][a-z]")))
        swap = None
        info = os.path.join(image_dir, f"swappt-{name}.info")
        if os.path.exists(info):
            text = _read(image_dir, os.path.basename(info)).decode()
            swap = {key.lower(): value for key, value in re.findall(r'^(UUID|LABEL)="([^"]*)"', text, re.M)}
        parts.append(_partition_entry(part, pieces, swap))
    return {"format": "clonezilla", "layout": layout, "table": table, "partitions": parts}


def _partition_entry(part: Partition, pieces: list[str], swap: dict[str, str] | None) -> dict[str, Any]:
    if part.kind == "extended":
        return {"number": part.number, "tool": filesystems.CONTAINER}
    if swap is not None and not pieces:
        return {"number": part.number, "tool": filesystems.SWAP, "uuid": swap.get("uuid", ""),
                "label": swap.get("label", "")}
    if not pieces:
        raise InvalidImage(f"no data file for partition {part.number}")
    raw = ".dd-img." in os.path.basename(pieces[0])
    return {"number": part.number, "tool": filesystems.RAW if raw else "restore", "pieces": pieces,
            "compression": _compression_of(pieces[0]), "bytes": sum(os.path.getsize(p) for p in pieces)}


def load(image_dir: str) -> dict[str, Any]:
    kind = detect(image_dir)
    if kind == "fog":
        return _load_fog(image_dir)
    if kind == "clonezilla":
        return _load_clonezilla(image_dir)
    raise InvalidImage(f"{image_dir} is neither an imager, a FOG nor a Clonezilla image")
