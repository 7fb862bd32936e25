"""LVM in the lab: a client whose disk holds an LVM volume group is captured LV by LV and deployed.

The host has no device-mapper, so the imager's LVM path (vgchange -ay, partclone on /dev/<vg>/<lv>)
can only run inside a QEMU client; the host builds and reads the disks with tests/lvmtools.py.
"""
from __future__ import annotations

import json
import shutil

import pytest

from tests.lvmtools import GROUP, lvm_fingerprints, lvm_layout, make_lvm_disk
from tests.qemu.lab import Lab

pytestmark = [pytest.mark.qemu, pytest.mark.root]

MAC_SOURCE = "52:54:00:12:35:01"
MAC_TARGET = "52:54:00:12:35:02"
IMAGE = "lvm-image"


@pytest.fixture(scope="module")
def lab():
    with Lab() as lab:
        yield lab
    shutil.rmtree(lab.dir, ignore_errors=True)


def run_task(lab: Lab, name: str, mac: str, disk, verb: str) -> dict:
    lab.cli("host", "add", mac, name)
    task = lab.cli_json("task", verb, name, IMAGE)
    vm = lab.boot(name, mac, disk)
    vm.wait_exit(900)
    return lab.task(task["id"])


def test_lvm_volumes_travel_one_by_one_and_come_back_exactly(lab):
    source = lab.dir / "lvm-a.img"
    written = make_lvm_disk(source, lab.dir)
    layout_before = lvm_layout(source)
    lab.cli("image", "add", IMAGE, "--storage", "lab")

    captured = run_task(lab, "lvm-a", MAC_SOURCE, source, "capture")
    assert captured["state"] == "done", captured.get("error")
    image_dir = (lab.images / IMAGE).resolve()
    manifest = json.loads((image_dir / "manifest.json").read_text())
    pv = next(p for p in manifest["disks"][0]["partitions"] if p["number"] == 2)
    assert pv["tool"] == "lvm" and pv["lvm"]["vg"] == GROUP
    volumes = {v["name"]: v for v in pv["lvm"]["volumes"]}
    assert {n: v["fstype"] for n, v in volumes.items()} == {"root": "ext4", "home": "ext3", "swap": "swap"}
    assert volumes["swap"]["file"] is None, "swap is recreated, not copied"
    for name in ("root", "home"):  # each LV has its own partclone stream, not the PV's raw bytes
        assert (image_dir / volumes[name]["file"]).is_file()
        assert volumes[name]["raw_bytes"] < volumes[name]["size_bytes"]
    assert lvm_fingerprints(source) == written, "capture changed the source disk"
    assert lvm_layout(source) == layout_before

    target = lab.dir / "lvm-b.img"
    with open(target, "wb") as f:
        f.truncate(320 * 1024 * 1024)
    deployed = run_task(lab, "lvm-b", MAC_TARGET, target, "deploy")
    assert deployed["state"] == "done", deployed.get("error")
    # Same PV UUID, group, LV UUIDs, sizes and extents; every file of every LV; swap's UUID and label.
    assert lvm_layout(target) == layout_before
    assert lvm_fingerprints(target) == written
