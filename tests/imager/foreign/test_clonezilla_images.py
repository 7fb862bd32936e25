"""Images saved by Clonezilla's own ocs-sr (Debian's clonezilla package), deployed, described and checked by imager."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from imager.errors import CommandFailed, DiskTooSmall
from imager.foreign import check, load
from imager.ops.deploy import deploy_image
from imager.progress import Progress
from tests.disktools import attached, filesystem_fingerprint, make_filesystem
from tests.imager.foreign.ocs import ocs_savedisk
from tests.imager.foreign.checks import blank, check_files, last_lba, sgdisk_clean, table

pytestmark = pytest.mark.root
MiB = 1024 * 1024


def filled(dev, kinds):
    for n, kind in kinds.items():
        make_filesystem(f"{dev}p{n}", kind)
    return {n: (k, filesystem_fingerprint(f"{dev}p{n}", k)) for n, k in kinds.items()}


def guids(dev):
    return [line for line in table(dev) if "uuid=" in line or line.startswith("label-id")]


@pytest.fixture(scope="module")
def gpt_zstd(tmp_path_factory):
    """GPT with an ESP, ext4 and NTFS, 35 MiB left free at the end; ocs-sr -z9p (zstd)."""
    tmp = tmp_path_factory.mktemp("cz-gpt")
    src = blank(tmp / "src.img", 260)
    subprocess.run(["sgdisk", "-n1:0:+64M", "-t1:ef00", "-n2:0:+60M", "-n3:0:+100M", "-t3:0700", str(src)],
                   check=True, capture_output=True)
    with attached(src) as dev:
        expected = filled(dev, {1: "fat32", 2: "ext4", 3: "ntfs"})
        source_table = table(dev)
        image = ocs_savedisk([dev], tmp / "partimag", "gpt-zstd", compression="-z9p")
    return image, expected, source_table


def test_ocs_sr_saved_a_zstd_image(gpt_zstd):
    image, _, _ = gpt_zstd
    assert (image / "clonezilla-img").exists() and len(list(image.glob("*-ptcl-img.zst.aa"))) == 3
    loaded = load(str(image))
    assert [p.stream.compression for p in loaded.disks[0].partitions if p.stream] == ["zstd"] * 3


def test_a_clonezilla_image_onto_a_same_size_disk_is_the_source_again(gpt_zstd, tmp_path):
    image, expected, source_table = gpt_zstd
    with attached(blank(tmp_path / "dst.img", 260)) as dst:
        result = deploy_image(str(image), dst, Progress())
        assert result["format"] == "clonezilla"
        assert table(dst) == source_table   # every start, size, type and GUID, and the GPT's usable area
        check_files(dst, expected)


@pytest.mark.parametrize("target_mib", [300, 230])
def test_a_clonezilla_image_onto_another_size_has_its_backup_gpt_at_the_disks_end(gpt_zstd, tmp_path, target_mib):
    """Larger, or smaller but holding every partition (the source left 35 MiB free at its end)."""
    image, expected, source_table = gpt_zstd
    with attached(blank(tmp_path / "dst.img", target_mib)) as dst:
        deploy_image(str(image), dst, Progress())
        assert last_lba(dst) == target_mib * 2048 - 34 and sgdisk_clean(dst)
        assert guids(dst) == [line for line in source_table if "uuid=" in line or line.startswith("label-id")]
        check_files(dst, expected)


def test_a_clonezilla_image_is_refused_by_a_disk_its_partitions_overrun(gpt_zstd, tmp_path):
    image, _, _ = gpt_zstd
    target = blank(tmp_path / "dst.img", 200)
    with attached(target) as dst, pytest.raises(DiskTooSmall, match="not resizable"):
        deploy_image(str(image), dst, Progress())
    assert target.read_bytes().count(0) == 200 * MiB


def test_info_describes_a_clonezilla_image(gpt_zstd):
    image, _, _ = gpt_zstd
    text = "\n".join(check.describe(load(str(image))))
    assert "clonezilla savedisk" in text and "table gpt" in text
    assert re.search(r"p1: fat32 .* zstd", text) and re.search(r"p3: ntfs .*100\.0 MiB", text)


@pytest.fixture(scope="module")
def mbr_gzip(tmp_path_factory):
    """MBR with logical partitions (ext4, swap, NTFS in an extended one); ocs-sr -z1p (gzip) with MD5SUMS."""
    tmp = tmp_path_factory.mktemp("cz-mbr")
    src = blank(tmp / "src.img", 200)
    subprocess.run(["sfdisk", "--quiet", str(src)], input=b"label: dos\n,40M,83,*\n,,5\n,50M,83\n,16M,82\n,,7\n",
                   check=True)
    with attached(src) as dev:
        expected = filled(dev, {1: "ext4", 5: "ext4", 6: "swap", 7: "ntfs"})
        source_table = table(dev)
        image = ocs_savedisk([dev], tmp / "partimag", "mbr-gzip", compression="-z1p", checksums=("-gm",))
    return image, expected, source_table


@pytest.mark.parametrize("target_mib", [200, 256])
def test_a_clonezilla_mbr_image_with_logical_partitions_deploys(mbr_gzip, tmp_path, target_mib):
    image, expected, source_table = mbr_gzip
    with attached(blank(tmp_path / "dst.img", target_mib)) as dst:
        deploy_image(str(image), dst, Progress())
        assert table(dst) == source_table
        check_files(dst, expected)   # swap: its UUID and label from swappt-*.info


def test_verify_checks_clonezilla_md5sums_and_every_stream(mbr_gzip, tmp_path):
    image, _, _ = mbr_gzip
    results = check.verify_foreign(load(str(image)))
    assert all(r.ok for r in results)
    listed = [r.name for r in results if not r.name.endswith(".aa")]
    assert any(name.endswith("-pt.sf") for name in listed), "MD5SUMS was read"
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(image), str(copy)], check=True)
    dump = next(copy.glob("*-pt.sf"))
    dump.write_text(dump.read_text() + "\n")
    bad = [r for r in check.verify_foreign(load(str(copy))) if not r.ok]
    assert [r.name for r in bad] == [dump.name] and "MD5SUMS" in bad[0].reason


@pytest.fixture(scope="module")
def two_disks_uncompressed(tmp_path_factory):
    """Two disks in one savedisk, -z0 (uncompressed pieces); an unformatted partition travels as partclone.dd."""
    tmp = tmp_path_factory.mktemp("cz-two")
    first, second = blank(tmp / "a.img", 64), blank(tmp / "b.img", 48)
    subprocess.run(["sfdisk", "--quiet", str(first)], input=b"label: dos\n,20M,83\n,,83\n", check=True)
    subprocess.run(["sgdisk", "-n1:0:+16M", "-t1:ef00", "-n2:0:0", str(second)], check=True, capture_output=True)
    with attached(first) as a, attached(second) as b:
        expected = [filled(a, {1: "ext4", 2: "raw"}), filled(b, {1: "fat16", 2: "ext2"})]
        tables = [table(a), table(b)]
        image = ocs_savedisk([a, b], tmp / "partimag", "two", compression="-z0")
    return image, expected, tables


def test_a_two_disk_clonezilla_image_deploys_disk_for_disk(two_disks_uncompressed, tmp_path):
    image, expected, tables = two_disks_uncompressed
    assert list(image.glob("*.dd-ptcl-img.uncomp.aa")) and list(image.glob("*.ext4-ptcl-img.uncomp.aa"))
    with attached(blank(tmp_path / "x.img", 64)) as x, attached(blank(tmp_path / "y.img", 48)) as y:
        deploy_image(str(image), f"{x},{y}", Progress())
        assert [table(x), table(y)] == tables
        check_files(x, expected[0])
        check_files(y, expected[1])


def corrupted_copy(image, tmp_path):
    copy = tmp_path / "damaged"
    subprocess.run(["cp", "-a", str(image), str(copy)], check=True)
    stream = next(copy.glob("*p1.ext4-ptcl-img.uncomp.aa"))
    data = bytearray(stream.read_bytes())
    data[len(data) // 2] ^= 0xFF   # one byte inside the used blocks: only partclone's CRC can tell
    stream.write_bytes(bytes(data))
    return copy, stream


def test_a_damaged_block_fails_the_deploy_with_partclones_reason(two_disks_uncompressed, tmp_path):
    image, _, _ = two_disks_uncompressed
    copy, _ = corrupted_copy(image, tmp_path)
    with attached(blank(tmp_path / "x.img", 64)) as x, attached(blank(tmp_path / "y.img", 48)) as y:
        with pytest.raises(CommandFailed, match=r"CRC error, block_id=\d+"):
            deploy_image(str(copy), f"{x},{y}", Progress())
        head = open(x, "rb").read(1024 * 1024)
    assert head[510:512] != b"\x55\xaa", "the half-written disk was left without a table"


def test_verify_first_finds_the_damage_before_writing(two_disks_uncompressed, tmp_path):
    image, _, _ = two_disks_uncompressed
    copy, stream = corrupted_copy(image, tmp_path)
    x, y = blank(tmp_path / "x.img", 64), blank(tmp_path / "y.img", 48)
    with attached(x) as dx, attached(y) as dy:
        run = subprocess.run([sys.executable, "-m", "imager.cli", "deploy", "--verify-first", "--yes", str(copy),
                              f"{dx},{dy}"], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert re.search(rf"BAD\s+{re.escape(stream.name)}.*CRC error", run.stdout), run.stdout
    assert "checksum_mismatch" in run.stderr and "Nothing was written" in run.stderr
    assert x.read_bytes().count(0) == 64 * MiB and y.read_bytes().count(0) == 48 * MiB
