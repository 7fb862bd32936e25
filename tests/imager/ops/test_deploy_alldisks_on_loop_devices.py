"""FOG's all-disks image type on loop devices: every disk of the machine in one image, each with its exact layout."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest

from imager import imagestore
from imager.errors import DiskNotFound, DiskTooSmall
from imager.ops.capture import capture_image
from imager.ops.deploy import deploy_image
from imager.progress import Progress
from tests.imager.ops.test_capture_deploy_on_loop_devices import blank, make_disk
from tests.qemu.lab import attached, read_disk

pytestmark = pytest.mark.root


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def two_disk_image(tmp_path):
    """A machine with a GPT system disk and an MBR data disk, captured as one all-disks image."""
    written = {"a1": make_disk(tmp_path / "a1.img", "gpt", mib=160), "a2": make_disk(tmp_path / "a2.img", "dos", mib=120)}
    with attached(tmp_path / "a1.img") as a1, attached(tmp_path / "a2.img") as a2:
        result = capture_image(f"{a1},{a2}", str(tmp_path / "store"), "machine", Progress(), image_type="alldisks")
    assert result["disks"] == 2 and result["partitions"] == 4
    return tmp_path, written, imagestore.resolve(str(tmp_path / "store"), "machine")


def test_every_disk_comes_back_in_order(two_disk_image):
    tmp_path, written, image_dir = two_disk_image
    image = json.loads(open(f"{image_dir}/manifest.json").read())
    assert image["image_type"] == "alldisks"
    assert [d["index"] for d in image["disks"]] == [1, 2]
    assert [d["layout"]["label"] for d in image["disks"]] == ["gpt", "msdos"]
    assert {"d1.sgdisk", "d1p1.pcl.zst", "d2.sfdisk", "d2.bootarea", "d2p2.pcl.zst"} <= set(image["files"])
    info = subprocess.run([sys.executable, "-m", "imager.cli", "info", image_dir], capture_output=True, text=True)
    assert info.returncode == 0 and "disk 1: table gpt" in info.stdout and "disk 2: table msdos" in info.stdout
    blank(tmp_path / "b1.img", 160)
    blank(tmp_path / "b2.img", 150)
    with attached(tmp_path / "b1.img") as b1, attached(tmp_path / "b2.img") as b2:
        result = deploy_image(image_dir, f"{b1},{b2}", Progress())
    assert result["disks"] == 2
    for source, target in (("a1", "b1"), ("a2", "b2")):
        table_a, files_a = read_disk(tmp_path / f"{source}.img")
        table_b, files_b = read_disk(tmp_path / f"{target}.img")
        assert table_b == table_a, f"{target} did not get {source}'s table"
        assert files_b == files_a == written[source]


def test_too_few_or_too_small_disks_are_refused_before_any_write(two_disk_image):
    tmp_path, _, image_dir = two_disk_image
    blank(tmp_path / "c1.img", 160)
    blank(tmp_path / "c2.img", 64)  # smaller than the second disk's layout
    before = {n: sha(tmp_path / n) for n in ("c1.img", "c2.img")}
    with attached(tmp_path / "c1.img") as c1, attached(tmp_path / "c2.img") as c2:
        with pytest.raises(DiskNotFound, match="holds 2 disks"):
            deploy_image(image_dir, c1, Progress())
        with pytest.raises(DiskTooSmall):
            deploy_image(image_dir, f"{c1},{c2}", Progress())
    # The first disk would have fitted: it must not have been written either.
    assert {n: sha(tmp_path / n) for n in before} == before
