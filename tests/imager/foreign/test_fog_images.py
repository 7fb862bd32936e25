"""FOG images as FOS's upload writes them (fos.py), deployed by imager onto same-size, larger and smaller disks.

The layout rule (docs/image-format.md): a same-size disk gets the original table (d1.partitions) exactly;
on another size the last resizable partition takes the difference, where FOS scales every resizable one.
"""
from __future__ import annotations

import os
import re
import subprocess

import pytest

from imager.errors import DiskTooSmall, InvalidImage
from imager.foreign import check, load
from imager.ops.deploy import deploy_image
from imager.progress import Progress
from tests.disktools import attached, filesystem_fingerprint, make_filesystem, mounted_rw
from tests.imager.foreign import fos
from tests.imager.foreign.checks import blank, check_files, dump_table, fills_partition, last_lba, rows, sgdisk_clean, table

pytestmark = pytest.mark.root
MiB = 1024 * 1024
SPLIT = 256 * 1024   # FOS splits at 200 MiB; small pieces make these small streams split too


def check_fog_files(dev, expected):
    check_files(dev, expected, swap_label=False)   # FOG keeps a swap partition's UUID, not its label


def build(tmp, name, mib, label_script, kinds, label):
    """A source disk with filesystems and files; returns (image path, fingerprints, original table)."""
    src = blank(tmp / f"{name}.img", mib)
    if label == "gpt":
        subprocess.run(["sgdisk", *label_script, str(src)], check=True, capture_output=True)
    else:
        subprocess.run(["sfdisk", "--quiet", str(src)], input=label_script.encode(), check=True)
    return src, kinds


@pytest.fixture(scope="module")
def windows_gpt(tmp_path_factory):
    """Windows-like GPT, resizable, zstd split (imgFormat 6): ESP, MSR, C: (NTFS, shrunk), recovery (fixed)."""
    tmp = tmp_path_factory.mktemp("fog-windows")
    src, kinds = build(tmp, "src", 1024, ["-n1:0:+100M", "-t1:ef00", "-n2:0:+16M", "-t2:0c01", "-n3:0:-100M",
                                          "-t3:0700", "-n4:0:0", "-t4:2700"], {1: "fat32", 3: "ntfs", 4: "ntfs"}, "gpt")
    with attached(src) as dev:
        for n, kind in kinds.items():
            make_filesystem(f"{dev}p{n}", kind)
        expected = {n: (k, filesystem_fingerprint(f"{dev}p{n}", k)) for n, k in kinds.items()}
        original = rows(dev)
        image = fos.upload(dev, tmp / "win10", "n", img_format=6, split_bytes=SPLIT, fixed_extra=(4,))
        assert rows(dev) == original, "the source got its own table back"
    return image, expected, original


def test_fos_wrote_a_resizable_gpt_image_as_fos_does(windows_gpt):
    image, _, original = windows_gpt
    assert (image / "d1.fixed_size_partitions").read_text() == "1:2:4\n"
    assert (image / "d1.mbr").read_bytes()[512:520] == b"EFI PART" and (image / "d1.mbr").stat().st_size == 17920
    minimum = fos.partitions_of_dump((image / "d1.minimum.partitions").read_text())
    assert minimum[3][1] < original[3][1] and minimum[4][0] < original[4][0], "d1.minimum: p3 shrunk, p4 moved down"
    assert (image / "d1p3.img").exists() and (image / "d1p3.img.001").exists() and not (image / "d1p3.img.000").exists()


def test_a_resizable_gpt_image_onto_a_same_size_disk_gets_its_original_layout(windows_gpt, tmp_path):
    image, expected, _ = windows_gpt
    with attached(blank(tmp_path / "dst.img", 1024)) as dst:
        deploy_image(str(image), dst, Progress())
        assert table(dst) == dump_table(image / "d1.partitions")   # not d1.mbr's shrunk, moved table
        assert fills_partition(f"{dst}p3", "ntfs")
        check_fog_files(dst, expected)


@pytest.mark.parametrize("target_mib", [1300, 800])
def test_a_resizable_gpt_image_gives_the_room_to_its_last_resizable_partition(windows_gpt, tmp_path, target_mib):
    image, expected, original = windows_gpt
    delta = (target_mib - 1024) * 2048
    with attached(blank(tmp_path / "dst.img", target_mib)) as dst:
        deploy_image(str(image), dst, Progress())
        got = rows(dst)
        assert got[1] == original[1] and got[2] == original[2]
        assert got[3] == (original[3][0], original[3][1] + delta)
        assert got[4] == (original[4][0] + delta, original[4][1])    # the fixed recovery partition moves along
        assert last_lba(dst) == target_mib * 2048 - 34 and sgdisk_clean(dst)
        assert fills_partition(f"{dst}p3", "ntfs")
        check_fog_files(dst, expected)


def test_a_resizable_image_too_big_for_the_disk_is_refused_before_writing(windows_gpt, tmp_path):
    image, _, _ = windows_gpt
    target = blank(tmp_path / "dst.img", 600)   # 100 + 16 + 505 (C: at its minimum) + 100 MiB do not fit
    with attached(target) as dst, pytest.raises(DiskTooSmall, match=dst):
        deploy_image(str(image), dst, Progress())
    assert target.read_bytes().count(0) == 600 * MiB


@pytest.fixture(scope="module")
def linux_mbr(tmp_path_factory):
    """Linux-like MBR, resizable, gzip (imgFormat 0): /boot, an extended partition with swap and root."""
    tmp = tmp_path_factory.mktemp("fog-linux")
    src, kinds = build(tmp, "src", 400, "label: dos\n,100M,83,*\n,,5\n,32M,82\n,,83\n",
                       {1: "ext4", 5: "swap", 6: "ext4"}, "dos")
    with attached(src) as dev:
        for n, kind in kinds.items():
            make_filesystem(f"{dev}p{n}", kind)
        with mounted_rw(f"{dev}p6", "ext4") as root:
            (root / "etc").mkdir()
            (root / "etc" / "hostname").write_text("golden\n")
            (root / "etc" / "hosts").write_text("127.0.0.1\tlocalhost\n127.0.1.1\tgolden\n")
        expected = {n: (k, filesystem_fingerprint(f"{dev}p{n}", k)) for n, k in kinds.items()}
        image = fos.upload(dev, tmp / "debian", "n", img_format=0)
        original = rows(dev)
    return image, expected, original


def test_fos_wrote_a_resizable_mbr_image_as_fos_does(linux_mbr):
    image, _, _ = linux_mbr
    assert (image / "d1.fixed_size_partitions").read_text() == "2:5\n"
    assert (image / "d1.original.swapuuids").read_text().startswith("5 ")
    assert (image / "d1.mbr").stat().st_size == 2048 * 512 and (image / "d1p2.ebr").stat().st_size == 512
    assert sorted(p.name for p in image.glob("d1p*.img*")) == ["d1p1.img", "d1p6.img"]


@pytest.mark.parametrize("target_mib", [400, 520, 300])
def test_a_resizable_mbr_image_with_logical_partitions_deploys_onto_any_fitting_disk(linux_mbr, tmp_path,
                                                                                     target_mib):
    image, expected, original = linux_mbr
    with attached(blank(tmp_path / "dst.img", target_mib)) as dst:
        deploy_image(str(image), dst, Progress())
        if target_mib == 400:
            assert table(dst) == dump_table(image / "d1.partitions")
        got, delta = rows(dst), (target_mib - 400) * 2048
        assert got[1] == original[1] and got[5] == original[5]
        assert got[6] == (original[6][0], original[6][1] + delta)
        assert got[2] == (original[2][0], original[2][1] + delta), "the extended partition stretches with root"
        assert fills_partition(f"{dst}p6", "ext4") and fills_partition(f"{dst}p1", "ext4")
        check_fog_files(dst, expected)   # swap: its UUID from d1.original.swapuuids


def test_a_fog_image_gets_the_tasks_hostname_as_fogs_hostname_changer_sets_it(linux_mbr, tmp_path):
    image, _, _ = linux_mbr
    with attached(blank(tmp_path / "dst.img", 400)) as dst:
        result = deploy_image(str(image), dst, Progress(), hostname="lab-pc-7")
        assert result["hostname_set"]["linux"] == [f"{dst}p6"]
        with mounted_rw(f"{dst}p6", "ext4", readonly=True) as root:
            assert (root / "etc" / "hostname").read_text() == "lab-pc-7\n"
            assert "127.0.1.1\tlab-pc-7" in (root / "etc" / "hosts").read_text()


@pytest.fixture(scope="module")
def multipart_gpt(tmp_path_factory):
    """FOG's "multiple partition" type on a 320 MiB GPT disk, gzip split (imgFormat 2)."""
    tmp = tmp_path_factory.mktemp("fog-mps")
    src, kinds = build(tmp, "src", 320, ["-n1:0:+64M", "-t1:ef00", "-n2:0:+100M", "-n3:0:0"],
                       {1: "fat32", 2: "ext4", 3: "ext4"}, "gpt")
    with attached(src) as dev:
        for n, kind in kinds.items():
            make_filesystem(f"{dev}p{n}", kind)
        expected = {n: (k, filesystem_fingerprint(f"{dev}p{n}", k)) for n, k in kinds.items()}
        image = fos.upload(dev, tmp / "mps", "mps", img_format=2, split_bytes=SPLIT)
    return image, expected


def test_a_multiple_partition_image_onto_a_same_size_disk_keeps_the_gpt_usable_area(multipart_gpt, tmp_path):
    image, expected = multipart_gpt
    with attached(blank(tmp_path / "dst.img", 320)) as dst:
        deploy_image(str(image), dst, Progress())
        assert last_lba(dst) == 655326   # FOS's own backup loader keeps it; --move-second-header made it 653312
        assert table(dst) == dump_table(image / "d1.partitions")
        check_fog_files(dst, expected)


def test_a_multiple_partition_image_onto_a_larger_disk_moves_the_backup_gpt_to_the_end(multipart_gpt, tmp_path):
    image, expected = multipart_gpt
    with attached(blank(tmp_path / "dst.img", 400)) as dst:
        deploy_image(str(image), dst, Progress())
        assert last_lba(dst) == 400 * 2048 - 34 and sgdisk_clean(dst)
        assert rows(dst) == fos.partitions_of_dump((image / "d1.partitions").read_text())
        check_fog_files(dst, expected)


def test_a_multiple_partition_image_is_refused_by_a_disk_its_partitions_overrun(multipart_gpt, tmp_path):
    image, _ = multipart_gpt
    target = blank(tmp_path / "dst.img", 300)
    with attached(target) as dst, pytest.raises(DiskTooSmall, match="not resizable"):
        deploy_image(str(image), dst, Progress())
    assert target.read_bytes().count(0) == 300 * MiB


def test_an_all_disks_image_uncompressed_and_split_deploys_disk_for_disk(tmp_path):
    """FOG's "multiple partitions, all disks" (d1.*, d2.*, dD.size), imgFormat 4 (none, split)."""
    first, _ = build(tmp_path, "a", 64, ["-n1:0:+20M", "-n2:0:0"], {}, "gpt")
    second, _ = build(tmp_path, "b", 48, "label: dos\n,,83\n", {}, "dos")
    kinds = [{1: "ext4", 2: "fat16"}, {1: "ext3"}]
    with attached(first) as a, attached(second) as b:
        for dev, parts in zip((a, b), kinds):
            for n, kind in parts.items():
                make_filesystem(f"{dev}p{n}", kind)
        expected = [{n: (k, filesystem_fingerprint(f"{dev}p{n}", k)) for n, k in parts.items()}
                    for dev, parts in zip((a, b), kinds)]
        image = fos.upload_all_disks([a, b], tmp_path / "lab", img_format=4, split_bytes=SPLIT)
    assert (image / "d2.size").read_text() == f"2:{48 * MiB}\n" and (image / "d1p1.img.001").exists()
    with attached(blank(tmp_path / "x.img", 64)) as x, attached(blank(tmp_path / "y.img", 48)) as y:
        result = deploy_image(str(image), f"{x},{y}", Progress())
        assert result["disks"] == 2
        assert table(x) == dump_table(image / "d1.partitions") and table(y) == dump_table(image / "d2.partitions")
        check_fog_files(x, expected[0])
        check_fog_files(y, expected[1])


def test_a_raw_image_is_partclone_imager_of_the_whole_disk(tmp_path):
    """FOG's raw type: <name>.000 (zstd, imgFormat 5), no table files; the disk comes back whole."""
    src, _ = build(tmp_path, "src", 64, "label: dos\n,30M,83\n,,7\n", {}, "dos")
    with attached(src) as dev:
        make_filesystem(f"{dev}p1", "ext4")
        make_filesystem(f"{dev}p2", "ntfs")
        expected = {1: ("ext4", filesystem_fingerprint(f"{dev}p1", "ext4")),
                    2: ("ntfs", filesystem_fingerprint(f"{dev}p2", "ntfs"))}
        image = fos.upload(dev, tmp_path / "rawimg", "dd", img_format=5)
    assert [p.name for p in image.iterdir()] == ["rawimg.000"]
    with attached(blank(tmp_path / "dst.img", 80)) as dst:
        deploy_image(str(image), dst, Progress())
        subprocess.run(["partprobe", dst], check=False)
        check_fog_files(dst, expected)
    target = blank(tmp_path / "small.img", 60)
    with attached(target) as dst, pytest.raises(DiskTooSmall):
        deploy_image(str(image), dst, Progress())
    assert target.read_bytes().count(0) == 60 * MiB


def test_a_partimage_era_image_is_refused_by_name_before_writing(tmp_path):
    src, _ = build(tmp_path, "src", 48, "label: dos\n,,83\n", {}, "dos")
    image = tmp_path / "xp"
    image.mkdir()
    with attached(src) as dev:
        subprocess.run(["mkfs.ext3", "-q", f"{dev}p1"], check=True)
        subprocess.run(["sh", "-c", f"sfdisk -d {dev} > {image}/d1.partitions && "
                                    f"dd if={dev} of={image}/d1.mbr bs=512 count=2048 status=none"], check=True)
        subprocess.run(["partimage", "-b", "-z1", "-o", "-d", "-f3", "save", f"{dev}p1", str(tmp_path / "vol")],
                       check=True, capture_output=True, stdin=subprocess.DEVNULL,
                       env={**os.environ, "TERM": "xterm"})  # partimage draws with ncurses even in batch mode
    (tmp_path / "vol.000").rename(image / "d1p1.img")
    target = blank(tmp_path / "dst.img", 48)
    with attached(target) as dst, pytest.raises(InvalidImage, match="partimage"):
        deploy_image(str(image), dst, Progress())
    assert target.read_bytes().count(0) == 48 * MiB


def test_info_and_verify_read_a_fog_image(windows_gpt):
    image, _, _ = windows_gpt
    loaded = load(str(image))
    text = "\n".join(check.describe(loaded))
    assert "fog resizable" in text and "table gpt" in text and re.search(r"p3: ntfs .* zstd, \d+ piece", text)
    assert re.search(r"needs 7\d\d\.\d MiB", text), "the smallest disk: C: at its minimum"
    results = check.verify_foreign(loaded)
    assert [r.ok for r in results] == [True] * 4 and results[2].name.startswith("d1p3.img (+")


def test_a_truncated_split_piece_is_found_by_verify_and_blanks_a_deploy(windows_gpt, tmp_path):
    image, _, _ = windows_gpt
    copy = tmp_path / "damaged"
    subprocess.run(["cp", "-a", str(image), str(copy)], check=True)
    last = sorted(copy.glob("d1p3.img.0*"))[-1]
    last.write_bytes(last.read_bytes()[:-3000])
    bad = [r for r in check.verify_foreign(load(str(copy))) if not r.ok]
    assert [r.name.split()[0] for r in bad] == ["d1p3.img"] and "truncated" in bad[0].reason
    target = blank(tmp_path / "dst.img", 1024)
    with attached(target) as dst, pytest.raises(InvalidImage, match="truncated"):
        deploy_image(str(copy), dst, Progress())
    with open(target, "rb") as f:
        assert f.read(1024)[512:520] != b"EFI PART", "the half-written disk was left without a table"


def test_a_split_piece_cut_short_in_the_middle_is_refused_before_writing(windows_gpt, tmp_path):
    image, _, _ = windows_gpt
    copy = tmp_path / "damaged"
    subprocess.run(["cp", "-a", str(image), str(copy)], check=True)
    middle = copy / "d1p3.img.001"
    middle.write_bytes(middle.read_bytes()[:-1000])
    target = blank(tmp_path / "dst.img", 1024)
    with attached(target) as dst, pytest.raises(InvalidImage, match="d1p3.img.001: shorter"):
        deploy_image(str(copy), dst, Progress())
    assert target.read_bytes().count(0) == 1024 * MiB
