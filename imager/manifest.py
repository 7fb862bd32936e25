"""manifest.json: what an image holds, and the checks before any disk is written."""
from __future__ import annotations

import json
import os
import re
from typing import Any, Callable, Mapping, cast

from imager.errors import InvalidImage, SectorSizeMismatch, DiskTooSmall
from imager.partitions import Layout
from contract.manifest import FORMAT, MANIFEST, VERSION, DiskEntry, FileEntry, Manifest

__all__ = ["FORMAT", "MANIFEST", "VERSION", "Manifest", "DiskEntry", "FileEntry", "Layout", "write", "load", "validate",
           "check_sector_size", "check_target", "verify_small_files", "small_files"]
_SAFE_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def write(image_dir: str, manifest: Manifest | dict[str, Any]) -> None:
    from imager.datapath import write_bytes_fsync
    data = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
    write_bytes_fsync(os.path.join(image_dir, MANIFEST), data)


def load(image_dir: str, size_of: Callable[[str], int | None] | None = None) -> Manifest:
    path = os.path.join(image_dir, MANIFEST)
    try:
        with open(path, "rb") as f:
            manifest = json.load(f)
    except FileNotFoundError as exc:
        raise InvalidImage(f"{image_dir} has no {MANIFEST}: not an image, or its capture never finished") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidImage(f"{path} is not valid JSON: {exc}") from exc
    validate(manifest, image_dir, size_of)
    return cast(Manifest, manifest)


def validate(manifest: dict[str, Any], image_dir: str, size_of: Callable[[str], int | None] | None = None) -> None:
    """Structure, file names and file sizes; checksums are checked while streaming. ``size_of``: a file's size
    elsewhere (over HTTP: httpstore), None when it is missing; default, the file in ``image_dir``."""
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InvalidImage(f"{image_dir}: {MANIFEST} is not an imager manifest")
    if manifest.get("version") != VERSION:
        raise InvalidImage(f"{image_dir}: manifest version {manifest.get('version')} is not supported (expected {VERSION})")
    files = manifest.get("files")
    disks = manifest.get("disks")
    if not isinstance(files, dict) or not isinstance(disks, list) or not disks:
        raise InvalidImage(f"{image_dir}: manifest lacks its files or disks")
    for name, meta in files.items():
        if not _SAFE_FILE.match(name) or not isinstance(meta, dict):
            raise InvalidImage(f"{image_dir}: manifest names an unsafe file {name!r}")
        path = os.path.join(image_dir, name)
        size = size_of(name) if size_of else (os.path.getsize(path) if os.path.isfile(path) else None)
        if size is None:
            raise InvalidImage(f"{image_dir}: {name} is missing")
        if size != meta.get("size"):
            raise InvalidImage(f"{image_dir}: {name} is {size} bytes, the manifest says {meta.get('size')}")
    for disk in disks:
        if disk.get("mode") == "raw":
            if disk.get("file") not in files or not isinstance(disk.get("size_bytes"), int):
                raise InvalidImage(f"{image_dir}: raw disk entry lacks its file or size")
            continue
        try:
            layout = Layout.from_dict(disk["layout"])
        except (KeyError, TypeError) as exc:
            raise InvalidImage(f"{image_dir}: disk entry is malformed ({exc})") from exc
        referenced = list(disk.get("table_files", {}).values())
        referenced += [p["file"] for p in disk.get("partitions", []) if p.get("file")]
        for part in disk.get("partitions", []):
            group = part.get("lvm")
            if group is not None:
                if not isinstance(group, dict) or not isinstance(group.get("volumes"), list):
                    raise InvalidImage(f"{image_dir}: partition {part.get('number')}'s LVM entry is malformed")
                referenced += [group.get("metadata")] + [v["file"] for v in group["volumes"] if v.get("file")]
        for name in referenced:
            if name not in files:
                raise InvalidImage(f"{image_dir}: {name} is used but not listed with a checksum")
        if not layout.partitions:
            raise InvalidImage(f"{image_dir}: disk {disk.get('index')} has no partitions")


def check_sector_size(layout: Layout, target_sector_size: int, target: str) -> None:
    if layout.sector_size != target_sector_size:
        raise SectorSizeMismatch(
            f"the image has {layout.sector_size}-byte sectors, {target} has {target_sector_size}-byte sectors")


def check_target(disk_entry: DiskEntry | dict[str, Any], target_bytes: int, target_sector_size: int, target: str) -> None:
    """Refuse, before any write, a target that cannot hold the image's exact layout."""
    layout = Layout.from_dict(disk_entry["layout"])
    check_sector_size(layout, target_sector_size, target)
    if target_bytes < layout.required_bytes:
        raise DiskTooSmall(
            f"{target} holds {target_bytes} bytes, the image's layout needs {layout.required_bytes} bytes",
            target_bytes=target_bytes, required_bytes=layout.required_bytes)


def verify_small_files(image_dir: str, files: Mapping[str, FileEntry], names: list[str]) -> None:
    """SHA-256 of the files read whole before anything is written (tables, LVM metadata)."""
    from imager.datapath import hash_file

    for name in names:
        size, sha = hash_file(os.path.join(image_dir, name))
        if size != files[name]["size"] or sha != files[name]["sha256"]:
            raise InvalidImage(f"{image_dir}: {name} does not match its checksum in the manifest; the image is damaged")


def small_files(disk_entry: DiskEntry | dict[str, Any]) -> list[str]:
    """Files read whole before the first write (tables, LVM metadata, chunk indexes): checked before they are used."""
    names = list(disk_entry.get("table_files", {}).values())
    names += [p["file"] for p in disk_entry.get("partitions", []) if p.get("chunks") and p.get("file")]
    return names + [group["metadata"] for p in disk_entry.get("partitions", []) if (group := p.get("lvm"))]
