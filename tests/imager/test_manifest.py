import json

import pytest

from imager import manifest
from imager.errors import DiskTooSmall, InvalidImage, SectorSizeMismatch

LAYOUT = {"label": "gpt", "sector_size": 512, "disk_sectors": 2097152,
          "partitions": [{"number": 1, "start": 2048, "sectors": 131072, "kind": "normal", "name": "boot",
                          "fstype": "ext4", "uuid": "", "label": ""}]}


def make_image(tmp_path, files=None):
    (tmp_path / "d1p1.pcl.zst").write_bytes(b"x" * 10)
    data = {"format": "imager-image", "version": 1, "name": "t",
            "files": files or {"d1p1.pcl.zst": {"size": 10, "sha256": "0" * 64}},
            "disks": [{"index": 1, "layout": LAYOUT, "table_files": {},
                       "partitions": [{"number": 1, "file": "d1p1.pcl.zst"}]}]}
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    return data


def test_a_good_manifest_loads(tmp_path):
    make_image(tmp_path)
    assert manifest.load(str(tmp_path))["name"] == "t"


def test_missing_manifest_means_unfinished_capture(tmp_path):
    with pytest.raises(InvalidImage, match="never finished"):
        manifest.load(str(tmp_path))


def test_wrong_size_and_unsafe_names_are_refused(tmp_path):
    make_image(tmp_path, {"d1p1.pcl.zst": {"size": 11, "sha256": ""}})
    with pytest.raises(InvalidImage, match="11"):
        manifest.load(str(tmp_path))
    make_image(tmp_path, {"../../etc/passwd": {"size": 1, "sha256": ""}})
    with pytest.raises(InvalidImage, match="unsafe"):
        manifest.load(str(tmp_path))


def test_target_checks_come_before_any_write():
    entry = {"layout": LAYOUT}
    needed = (2048 + 131072) * 512 + 33 * 512
    manifest.check_target(entry, needed, 512, "/dev/vda")
    with pytest.raises(DiskTooSmall):
        manifest.check_target(entry, needed - 1, 512, "/dev/vda")
    with pytest.raises(SectorSizeMismatch):
        manifest.check_target(entry, needed * 8, 4096, "/dev/nvme0n1")
