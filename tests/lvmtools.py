"""LVM disks on a host without device-mapper (this one), with the real lvm tools.

The volume group's metadata is written by lvm itself (pvcreate, vgcreate, then vgcfgrestore of a
metadata file that adds the logical volumes — lvcreate would need device-mapper).  A linear LV is a
contiguous range of extents, so a loop device with offset and size limit over the physical volume
reads and writes exactly what /dev/<vg>/<lv> would in a machine that activates the group.
"""
from __future__ import annotations

import contextlib
import json
import os
import uuid
from pathlib import Path
from typing import Iterator

from tests.disktools import _run, attached, filesystem_fingerprint, make_filesystem

EXTENT_MIB = 4


def lvm_config(pv_device: str) -> str:
    """Only this one device is scanned: another disk attached with the same PV UUID would confuse lvm."""
    return ("devices { obtain_device_list_from_udev=0 use_devicesfile=0 scan_lvs=0 "
            f'filter=["a|^{pv_device}$|", "r|.*|"] }} '
            "activation { udev_sync=0 udev_rules=0 monitoring=0 } backup { backup=0 archive=0 }")


def lvm(pv_device: str, command: str, *args: str) -> str:
    env = {**os.environ, "LVM_SUPPRESS_FD_WARNINGS": "1", "LC_ALL": "C"}
    return _run("lvm", command, "--config", lvm_config(pv_device), *args, env=env).stdout


def _lvm_uuid() -> str:
    raw = uuid.uuid4().hex[:32].replace("0", "A")
    parts, sizes, at = [], (6, 4, 4, 4, 4, 4, 6), 0
    for size in sizes:
        parts.append(raw[at:at + size])
        at += size
    return "-".join(parts)


def create_volume_group(pv_device: str, group: str, volumes: list[tuple[str, int]], workdir: Path) -> None:
    """PV + VG on ``pv_device`` and linear LVs [(name, MiB)] laid one after another."""
    lvm(pv_device, "pvcreate", "-ff", "-y", pv_device)
    lvm(pv_device, "vgcreate", "-s", f"{EXTENT_MIB}m", group, pv_device)
    metadata = workdir / f"{group}.vg"
    lvm(pv_device, "vgcfgbackup", "-f", str(metadata), group)
    text = metadata.read_text()
    entries, next_extent = [], 0
    for name, mib in volumes:
        extents = mib // EXTENT_MIB
        entries.append(f'''
        {name} {{
            id = "{_lvm_uuid()}"
            status = ["READ", "WRITE", "VISIBLE"]
            flags = []
            segment_count = 1
            segment1 {{
                start_extent = 0
                extent_count = {extents}
                type = "striped"
                stripe_count = 1
                stripes = ["pv0", {next_extent}]
            }}
        }}''')
        next_extent += extents
    end = text.rstrip().rfind("}")
    metadata.write_text(text[:end] + "\n    logical_volumes {" + "".join(entries) + "\n    }\n}\n")
    lvm(pv_device, "vgcfgrestore", "-f", str(metadata), group)


def describe(pv_device: str) -> dict:
    """What deploy must reproduce: group, PV UUID, and each LV's UUID, size and extents."""
    report = json.loads(lvm(pv_device, "lvs", "--reportformat", "json", "--units", "b", "--nosuffix", "-o",
                            "vg_name,vg_uuid,lv_name,lv_uuid,lv_size,seg_pe_ranges"))
    pv = json.loads(lvm(pv_device, "pvs", "--reportformat", "json", "--units", "b", "--nosuffix", "-o",
                        "pv_uuid,pe_start"))["report"][0]["pv"][0]
    volumes = {}
    for row in report["report"][0]["lv"]:
        volumes[row["lv_name"]] = {"vg": row["vg_name"], "vg_uuid": row["vg_uuid"], "uuid": row["lv_uuid"],
                                   "size": int(row["lv_size"]), "extents": row["seg_pe_ranges"].split(":", 1)[1]}
    return {"pv_uuid": pv["pv_uuid"], "pe_start": int(pv["pe_start"]), "volumes": volumes}


@contextlib.contextmanager
def volume(pv_device: str, name: str) -> Iterator[str]:
    """A linear LV as a loop device (offset and size from the group's metadata)."""
    info = describe(pv_device)
    lv = info["volumes"][name]
    first = int(lv["extents"].split("-")[0])
    offset = info["pe_start"] + first * EXTENT_MIB * 1024 * 1024
    device = _run("losetup", "--find", "--show", "--offset", str(offset), "--sizelimit", str(lv["size"]),
                  pv_device).stdout.strip()
    try:
        yield device
    finally:
        _run("losetup", "--detach", device, check=False)


# The lab's LVM disk: what a default Debian/Ubuntu/RHEL install with LVM looks like, smaller.
GROUP = "labvg"
VOLUMES = [("root", 96, "ext4"), ("home", 48, "ext3"), ("swap", 16, "swap")]


def make_lvm_disk(path: Path, workdir: Path, size_mib: int = 320) -> dict[str, dict[str, str]]:
    """GPT: p1 ext4 /boot, p2 an LVM PV holding root (ext4), home (ext3) and swap. Returns fingerprints."""
    with open(path, "wb") as f:
        f.truncate(size_mib * 1024 * 1024)
    _run("sgdisk", "-n1:2048:+48M", "-t1:8300", "-c1:boot", "-n2:0:0", "-t2:8e00", "-c2:lvm", str(path))
    with attached(path) as device:
        make_filesystem(f"{device}p1", "ext4")
        create_volume_group(f"{device}p2", GROUP, [(name, mib) for name, mib, _ in VOLUMES], workdir)
        for name, _, kind in VOLUMES:
            with volume(f"{device}p2", name) as lv:
                make_filesystem(lv, kind)
    return lvm_fingerprints(path)


def lvm_fingerprints(path: Path) -> dict[str, dict[str, str]]:
    """Every file of p1 and of each LV (or swap's identity), as the host reads them."""
    with attached(path) as device:
        prints = {"p1": filesystem_fingerprint(f"{device}p1", "ext4")}
        for name, _, kind in VOLUMES:
            with volume(f"{device}p2", name) as lv:
                prints[name] = filesystem_fingerprint(lv, kind)
    return prints


def lvm_layout(path: Path) -> dict:
    with attached(path) as device:
        return describe(f"{device}p2")
