"""Resizable images: shrink for capture, source left as it was, deploy onto larger and smaller disks."""
from __future__ import annotations

import re
import subprocess

import pytest

from imager import imagestore
from imager.errors import DiskTooSmall, TaskCanceled
from imager.ops.capture import capture_image
from imager.ops.deploy import deploy_image
from imager.progress import Progress
from tests.disktools import attached, filesystem_fingerprint, make_filesystem

pytestmark = pytest.mark.root
MiB = 1024 * 1024


def blank(path, mib):
    with open(path, "wb") as f:
        f.truncate(mib * MiB)


def source_disk(path):
    """GPT: a 64 MiB ext4, a 32 MiB NTFS, and a 400 MiB ext4 holding ~1 MiB of files, as a fleet image would."""
    blank(path, 512)
    subprocess.run(["sgdisk", "-n1:0:+64M", "-n2:0:+32M", "-t2:0700", "-n3:0:0", str(path)], check=True,
                   capture_output=True)
    with attached(path) as dev:
        for n, kind in ((1, "ext4"), (2, "ntfs"), (3, "ext4")):
            make_filesystem(f"{dev}p{n}", kind)
        return state(dev)


def state(dev):
    """Everything that must be the same after a capture: table, filesystem sizes, files."""
    table = subprocess.run(["sfdisk", "--dump", dev], capture_output=True, text=True, check=True).stdout
    sizes = {n: fs_bytes(f"{dev}p{n}") for n in (1, 3)}
    files = {n: filesystem_fingerprint(f"{dev}p{n}", kind) for n, kind in ((1, "ext4"), (2, "ntfs"), (3, "ext4"))}
    return table.replace(dev, "DISK"), sizes, files


def fs_bytes(device):
    out = subprocess.run(["dumpe2fs", "-h", device], capture_output=True, text=True).stdout
    return int(re.search(r"Block count:\s+(\d+)", out).group(1)) * int(re.search(r"Block size:\s+(\d+)", out).group(1))


def partition_bytes(device):
    with open(device, "rb") as f:
        return f.seek(0, 2)


@pytest.fixture
def captured(tmp_path):
    before = source_disk(tmp_path / "src.img")
    store = str(tmp_path / "store")
    with attached(tmp_path / "src.img") as src:
        result = capture_image(src, store, "res", Progress())
        after = state(src)
    assert after == before, "capture must leave the source as it found it"
    image = imagestore.resolve(store, "res")
    return {"image": image, "files": before[2], "result": result}


@pytest.mark.parametrize("target_mib", [1024, 512, 200])
def test_deploy_fills_larger_same_and_smaller_disks(tmp_path, captured, target_mib):
    blank(tmp_path / "dst.img", target_mib)
    with attached(tmp_path / "dst.img") as dst:
        deploy_image(captured["image"], dst, Progress())
        last = f"{dst}p3"
        # The last partition took the disk's size, and its filesystem fills it.
        assert partition_bytes(last) > (target_mib - 100 - 2) * MiB
        assert abs(fs_bytes(last) - partition_bytes(last)) < 4 * MiB
        for n, kind in ((1, "ext4"), (2, "ntfs"), (3, "ext4")):
            assert filesystem_fingerprint(f"{dst}p{n}", kind) == captured["files"][n]
        subprocess.run(["e2fsck", "-f", "-n", last], check=True, capture_output=True)


def test_a_disk_too_small_for_the_data_is_refused_before_writing(tmp_path, captured):
    blank(tmp_path / "tiny.img", 120)
    with open(tmp_path / "tiny.img", "r+b") as f:
        f.write(b"untouched" * 1000)
    with attached(tmp_path / "tiny.img") as dst, pytest.raises(DiskTooSmall, match="partition 3"):
        deploy_image(captured["image"], dst, Progress())
    assert (tmp_path / "tiny.img").read_bytes()[:9000] == b"untouched" * 1000


def test_a_capture_failing_midway_still_grows_the_source_back(tmp_path):
    before = source_disk(tmp_path / "src.img")

    def fail(snapshot):
        if snapshot["stage"].startswith("partition 3"):
            raise TaskCanceled("stop here")

    with attached(tmp_path / "src.img") as src:
        with pytest.raises(TaskCanceled):
            capture_image(src, str(tmp_path / "store"), "res", Progress([fail], interval=0))
        assert state(src) == before


def fs_size(device: str, kind: str) -> int:
    """The filesystem's own idea of its size, read offline from its superblock."""
    if kind == "xfs":
        out = subprocess.run(["xfs_db", "-r", "-c", "sb 0", "-c", "p dblocks", "-c", "p blocksize", device],
                             capture_output=True, text=True, check=True).stdout
        values = dict(line.split(" = ") for line in out.splitlines())
        return int(values["dblocks"]) * int(values["blocksize"])
    out = subprocess.run(["btrfs", "inspect-internal", "dump-super", device], capture_output=True, text=True,
                         check=True).stdout
    return int(re.search(r"^total_bytes\s+(\d+)", out, re.M).group(1))


@pytest.mark.parametrize("kind", ["xfs", "btrfs"])
def test_xfs_and_btrfs_grow_onto_a_larger_disk_and_never_shrink(tmp_path, kind):
    """They cannot shrink offline: a resizable image keeps their size, and a larger disk's room goes to them."""
    blank(tmp_path / "src.img", 512)
    subprocess.run(["sgdisk", "-n1:0:+64M", "-n2:0:0", str(tmp_path / "src.img")], check=True, capture_output=True)
    with attached(tmp_path / "src.img") as src:
        make_filesystem(f"{src}p1", "ext4")
        make_filesystem(f"{src}p2", kind)
        files = filesystem_fingerprint(f"{src}p2", kind)
        size_before = fs_size(f"{src}p2", kind)
        capture_image(src, str(tmp_path / "store"), "grow", Progress())
        assert fs_size(f"{src}p2", kind) == size_before
    image = imagestore.resolve(str(tmp_path / "store"), "grow")
    blank(tmp_path / "big.img", 900)
    with attached(tmp_path / "big.img") as dst:
        deploy_image(image, dst, Progress())
        assert partition_bytes(f"{dst}p2") > 800 * MiB
        assert fs_size(f"{dst}p2", kind) > size_before + 300 * MiB, "the filesystem was not grown"
        assert abs(fs_size(f"{dst}p2", kind) - partition_bytes(f"{dst}p2")) < 8 * MiB
        assert filesystem_fingerprint(f"{dst}p2", kind) == files
    blank(tmp_path / "small.img", 400)
    with attached(tmp_path / "small.img") as dst, pytest.raises(DiskTooSmall):
        deploy_image(image, dst, Progress())
    assert (tmp_path / "small.img").read_bytes().count(0) == 400 * MiB, "a refused deploy wrote to the disk"


def ntfs_bytes(device: str) -> int:
    out = subprocess.run(["ntfsresize", "--info", "--force", "--no-progress-bar", device], capture_output=True,
                         text=True).stdout
    return int(re.search(r"Current volume size: (\d+) bytes", out).group(1))


def test_a_windows_like_disk_shrinks_its_ntfs_for_capture_and_fits_a_smaller_disk(tmp_path):
    """NTFS large enough to be shrunk: captured at its minimum (partclone.ntfs refuses a volume ntfsresize
    left marked for chkdsk unless the mark is cleared), source grown back, deployed onto a smaller disk."""
    blank(tmp_path / "src.img", 400)
    subprocess.run(["sgdisk", "-n1:0:+64M", "-n2:0:0", "-t2:0700", str(tmp_path / "src.img")], check=True,
                   capture_output=True)
    with attached(tmp_path / "src.img") as src:
        make_filesystem(f"{src}p1", "ext4")
        make_filesystem(f"{src}p2", "ntfs")
        files = filesystem_fingerprint(f"{src}p2", "ntfs")
        size_before = ntfs_bytes(f"{src}p2")
        result = capture_image(src, str(tmp_path / "store"), "win", Progress())
        assert ntfs_bytes(f"{src}p2") == size_before, "the source's NTFS was not grown back"
    image = imagestore.resolve(str(tmp_path / "store"), "win")
    import json
    shrunk = json.loads(open(f"{image}/manifest.json").read())["disks"][0]["partitions"][1]["fs_bytes"]
    assert shrunk < size_before / 2, "NTFS was not shrunk for capture"
    assert result["partitions"] == 2
    blank(tmp_path / "dst.img", 200)
    with attached(tmp_path / "dst.img") as dst:
        deploy_image(image, dst, Progress())
        assert filesystem_fingerprint(f"{dst}p2", "ntfs") == files
        assert partition_bytes(f"{dst}p2") - ntfs_bytes(f"{dst}p2") < 2 * MiB
