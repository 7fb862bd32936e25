"""Telling FOG and Clonezilla image directories apart by their file names (no root, nothing opened)."""
from __future__ import annotations

import pytest

from contract.foreign import CLONEZILLA, FOG, detect_format, image_type


def make(tmp_path, name, files):
    folder = tmp_path / name
    folder.mkdir()
    for file in files:
        (folder / file).write_bytes(b"")
    return str(folder)


@pytest.mark.parametrize("files, fmt, kind", [
    (["d1.partitions", "d1.mbr", "d1.minimum.partitions", "d1p1.img", "d1p2.img.001"], FOG, "resizable"),
    (["d1.partitions", "d1.mbr", "d1p1.img"], FOG, "multipart"),
    (["d1.mbr", "d1.partitions", "d2.mbr", "d2.partitions", "d1.size", "d2.size"], FOG, "alldisks"),
    (["win7.000", "win7.001"], FOG, "raw"),
    (["clonezilla-img", "sda-pt.sf", "sda1.ext4-ptcl-img.zst.aa", "disk"], CLONEZILLA, "multipart"),
    (["sda-pt.sf", "sdb-pt.sf", "disk"], CLONEZILLA, "alldisks"),
])
def test_foreign_layouts_are_told_by_their_file_names(tmp_path, files, fmt, kind):
    folder = make(tmp_path, "win7", files)
    assert detect_format(folder) == fmt and image_type(folder, fmt) == kind


def test_our_own_images_and_other_folders_are_not_foreign(tmp_path):
    assert detect_format(make(tmp_path, "ours", ["manifest.json", "d1.sfdisk"])) is None
    assert detect_format(make(tmp_path, "photos", ["a.jpg"])) is None
    assert detect_format(str(tmp_path / "missing")) is None
