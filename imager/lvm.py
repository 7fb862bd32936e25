"""LVM physical volumes: each logical volume travels through its own partclone, like Clonezilla does.

Capture saves the volume group's metadata (``vgcfgbackup``), activates it, and streams every
logical volume; deploy recreates the physical volume with its old UUID (``pvcreate --restorefile``),
restores the metadata (``vgcfgrestore``), so every LV gets its exact extents back, activates the
group and restores each volume into it.

A group we cannot rebuild that way — one spread over PVs outside this partition, or holding thin
pools, snapshots, RAID or cache volumes — is copied as raw bytes of the partition instead: bigger,
but nothing is lost.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Iterator

from imager import filesystems, process
from imager.errors import InvalidImage

log = logging.getLogger(__name__)

PV_TYPE = "LVM2_member"
TOOL = "lvm"  # manifest tool name of a partition whose logical volumes travel one by one
# No udev rules for device-mapper in the boot environment (and no udev daemon on a plain host):
# libdevmapper creates the nodes itself; scan only real block devices.
# Nothing is archived under /etc/lvm of a standalone host either: the image keeps its own copy.
CONFIG = ("devices { obtain_device_list_from_udev=0 use_devicesfile=0 scan_lvs=0 } "
          "activation { udev_sync=0 udev_rules=0 monitoring=0 } "
          "backup { backup=0 archive=0 }")
# Segment types whose LVs are plain extents on the PVs: vgcfgrestore recreates them exactly.
SIMPLE_SEGMENTS = {"linear", "striped"}


@dataclass
class LogicalVolume:
    name: str
    uuid: str
    size_bytes: int
    segtype: str


@dataclass
class VolumeGroup:
    name: str
    uuid: str
    pv_uuid: str
    pv_count: int
    volumes: list[LogicalVolume] = field(default_factory=list)

    def device_of(self, lv_name: str) -> str:
        return volume_device(self.name, lv_name)

    def why_not_per_volume(self) -> str | None:
        """The reason this group must travel raw, or None when each LV can have its own stream."""
        if self.pv_count != 1:
            return f"volume group {self.name} spans {self.pv_count} physical volumes"
        odd = sorted({lv.segtype for lv in self.volumes} - SIMPLE_SEGMENTS)
        if odd:
            return f"volume group {self.name} holds {', '.join(odd)} volumes"
        return None


def volume_device(group_name: str, lv_name: str) -> str:
    return f"/dev/{group_name}/{lv_name}"


def lvm(*args: str, check: bool = True) -> process.Result:
    return process.run(["lvm", args[0], "--config", CONFIG, *args[1:]], check=check)


def _report(command: str, *args: str) -> list[dict[str, str]]:
    text = lvm(command, "--reportformat", "json", "--units", "b", "--nosuffix", *args).text
    data = json.loads(text)["report"][0]
    key = {"pvs": "pv", "lvs": "lv", "vgs": "vg"}[command]
    return data.get(key, [])


def volume_group_on(pv_device: str) -> VolumeGroup | None:
    """The volume group whose physical volume is ``pv_device``, or None for an orphan PV."""
    rows = _report("pvs", "-o", "pv_uuid,vg_name,vg_uuid,pv_count", pv_device)
    if not rows or not rows[0].get("vg_name"):
        return None
    row = rows[0]
    group = VolumeGroup(row["vg_name"], row["vg_uuid"], row["pv_uuid"], int(row["pv_count"]))
    for lv in _report("lvs", "-o", "lv_name,lv_uuid,lv_size,segtype", group.name):
        group.volumes.append(LogicalVolume(lv["lv_name"], lv["lv_uuid"], int(lv["lv_size"]), lv["segtype"]))
    return group


def save_metadata(group: VolumeGroup, path: str) -> None:
    lvm("vgcfgbackup", "-f", path, group.name)


@contextlib.contextmanager
def activated(group_name: str) -> Iterator[None]:
    """The group's LVs as block devices for the duration of the block, and deactivated afterwards."""
    lvm("vgchange", "-ay", group_name)
    try:
        yield
    finally:
        lvm("vgchange", "-an", group_name, check=False)


def recreate(pv_device: str, group_name: str, pv_uuid: str, metadata_path: str) -> None:
    """The PV with its old UUID and the group with its exact LV extents, on a freshly written partition."""
    if not os.path.isfile(metadata_path):
        raise InvalidImage(f"{metadata_path} (the volume group's metadata) is missing")
    lvm("vgchange", "-an", group_name, check=False)  # a leftover activation of the disk's old contents
    lvm("pvcreate", "-ff", "-y", "--uuid", pv_uuid, "--restorefile", metadata_path, pv_device)
    lvm("vgcfgrestore", "-f", metadata_path, group_name)


def probe_volumes(group: VolumeGroup) -> list[dict]:
    """Per LV: its filesystem and the tool that carries it (the group must be active)."""
    from imager.partitions import probe_filesystem

    volumes = []
    for index, lv in enumerate(group.volumes, 1):
        fs = probe_filesystem(group.device_of(lv.name))
        volumes.append({"index": index, "name": lv.name, "uuid": lv.uuid, "size_bytes": lv.size_bytes,
                        "fstype": fs["fstype"], "fs_uuid": fs["uuid"], "label": fs["label"],
                        "tool": filesystems.tool_for(fs["fstype"])})
    return volumes
