"""FOG and Clonezilla images, made here with the real tools in their layouts, deployed by imager."""
from __future__ import annotations

import subprocess

import pytest

from imager.errors import DiskTooSmall, InvalidImage
from imager.ops.deploy import deploy_image
from imager.progress import Progress
from tests.disktools import attached, filesystem_fingerprint, make_filesystem

pytestmark = pytest.mark.root
MiB = 1024 * 1024
SWAP_UUID = "5f0b5d6e-6d7c-4c5e-9a53-0a7c1b1c2d3e"


def sh(command, cwd):
    subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=cwd, check=True, capture_output=True)


def blank(path, mib):
    with open(path, "wb") as f:
        f.truncate(mib * MiB)


def source(tmp_path, label):
    blank(tmp_path / "src.img", 200)
    if label == "gpt":
        subprocess.run(["sgdisk", "-n1:0:+60M", "-n2:0:+16M", "-t2:8200", "-n3:0:0", "-t3:0700",
                        str(tmp_path / "src.img")], check=True, capture_output=True)
    else:
        subprocess.run(["sfdisk", "--quiet", str(tmp_path / "src.img")],
                       input=b"label: dos\n,60M,83\n,16M,82\n,,7\n", check=True)
    kinds = {1: "ext4", 2: "swap", 3: "ntfs"}
    with attached(tmp_path / "src.img") as dev:
        for n, kind in kinds.items():
            make_filesystem(f"{dev}p{n}", kind)
        return {n: (kind, filesystem_fingerprint(f"{dev}p{n}", kind)) for n, kind in kinds.items()}


def make_fog_image(dev, out, label):
    """FOG's layout: d1.partitions, d1.mbr, d1pN.img (pigz) and split d1pN.img.000… (zstd), swap UUIDs."""
    out.mkdir()
    sh(f"sfdisk -d {dev} > d1.partitions", out)
    if label == "gpt":
        sh(f"sgdisk -b d1.mbr {dev}", out)
    else:
        sh(f"dd if={dev} of=d1.mbr bs=512 count=2048 status=none", out)
    sh(f"partclone.ext4 -c -a0 -q -s {dev}p1 -o - | pigz -6 > d1p1.img", out)
    sh(f"partclone.ntfs -c -a0 -q -s {dev}p3 -o - | zstd -q -3 | split -b 256K -d -a 3 - d1p3.img.", out)
    sh(f"echo '{dev}p2 {SWAP_UUID}' > d1.original.swapuuids", out)


def make_clonezilla_image(dev, out):
    """Clonezilla's layout: sda-pt.sf, sda-mbr, hidden data, <part>.<fs>-ptcl-img.<comp>.aa…, swappt-*.info."""
    out.mkdir()
    sh(f"sfdisk -d {dev} > sda-pt.sf && dd if={dev} of=sda-mbr bs=512 count=1 status=none", out)
    sh(f"dd if={dev} of=sda-hidden-data-after-mbr bs=512 skip=1 count=2047 status=none", out)
    sh(f"partclone.ext4 -c -a1 -z 10485760 -q -s {dev}p1 -o - | zstd -q -c -T0 -3 | split -a 2 -b 300K - "
       "sda1.ext4-ptcl-img.zst.", out)
    sh(f"partclone.ntfs -c -a1 -q -s {dev}p3 -o - | gzip -c -3 | split -a 2 -b 200K - sda3.ntfs-ptcl-img.gz.", out)
    sh(f"echo 'UUID=\"{SWAP_UUID}\"' > swappt-sda2.info && echo 'LABEL=\"swap-lab\"' >> swappt-sda2.info && echo sda > disk && echo 'sda1 sda2 sda3' > parts", out)
    sh("echo 'This image was saved by Clonezilla' > clonezilla-img", out)


@pytest.mark.parametrize("kind, label", [("fog", "dos"), ("fog", "gpt"), ("clonezilla", "dos"),
                                         ("clonezilla", "gpt")])
def test_foreign_images_deploy_file_for_file(tmp_path, kind, label):
    expected = source(tmp_path, label)
    with attached(tmp_path / "src.img") as dev:
        table = subprocess.run(["sfdisk", "-d", dev], capture_output=True, text=True).stdout.replace(dev, "D")
        if kind == "fog":
            make_fog_image(dev, tmp_path / "img", label)
        else:
            make_clonezilla_image(dev, tmp_path / "img")
    blank(tmp_path / "dst.img", 200)
    with attached(tmp_path / "dst.img") as dst:
        result = deploy_image(str(tmp_path / "img"), dst, Progress())
        assert result["format"] == kind
        for n, (fs, fingerprint) in expected.items():
            got = filesystem_fingerprint(f"{dst}p{n}", fs)
            if fs == "swap" and kind == "fog":  # FOG records a swap partition's UUID, not its label
                fingerprint = {k: v for k, v in fingerprint.items() if k != "LABEL"}
            assert got == fingerprint, f"partition {n} ({fs})"
        assert subprocess.run(["sfdisk", "-d", dst], capture_output=True, text=True).stdout.replace(dst, "D") == table


def test_a_truncated_piece_fails_loudly(tmp_path):
    source(tmp_path, "dos")
    with attached(tmp_path / "src.img") as dev:
        make_clonezilla_image(dev, tmp_path / "img")
    pieces = sorted((tmp_path / "img").glob("sda1.ext4-ptcl-img.zst.*"))
    pieces[-1].write_bytes(pieces[-1].read_bytes()[:-5000])
    blank(tmp_path / "dst.img", 200)
    with attached(tmp_path / "dst.img") as dst, pytest.raises(InvalidImage, match="zstd stream is truncated") as info:
        deploy_image(str(tmp_path / "img"), dst, Progress())
    assert info.value.code == "invalid_image"


def make_fog_resizable_image(tmp_path):
    """FOG's resizable capture, done by hand with the same tools: shrink the NTFS filesystem and its partition,
    save d1.minimum.partitions, capture the shrunk partitions, put the original table back and grow."""
    expected = source(tmp_path, "dos")
    out = tmp_path / "img"
    with attached(tmp_path / "src.img") as dev:
        make_fog_image(dev, out, "dos")  # d1.partitions of the original, d1.mbr, p1 and swap
        for piece in out.glob("d1p3.img*"):
            piece.unlink()
        sh(f"ntfsresize --force --force --no-progress-bar --size 48M {dev}p3 <<< y && ntfsfix -d {dev}p3", out)
        sh(f"echo ',48M' | sfdisk --quiet --no-reread -N 3 {dev} && partprobe {dev}", out)
        sh(f"sfdisk -d {dev} > d1.minimum.partitions && echo 1 > d1.fixed_size_partitions", out)
        sh(f"partclone.ntfs -c -a0 -q -s {dev}p3 -o - | zstd -q -3 | split -b 256K -d -a 3 - d1p3.img.", out)
        sh(f"sfdisk --quiet --no-reread {dev} < d1.partitions && partprobe {dev}", out)
        sh(f"ntfsresize --force --force --no-progress-bar {dev}p3 <<< y && ntfsfix -d {dev}p3", out)
    return expected


def ntfs_bytes(device):
    out = subprocess.run(["ntfsresize", "--info", "--force", "--no-progress-bar", device], capture_output=True,
                         text=True).stdout
    import re
    return int(re.search(r"Current volume size: (\d+) bytes", out).group(1))


@pytest.mark.parametrize("target_mib", [200, 150])
def test_fog_resizable_images_fit_smaller_disks_and_fill_their_partitions(tmp_path, target_mib):
    expected = make_fog_resizable_image(tmp_path)
    blank(tmp_path / "dst.img", target_mib)
    with attached(tmp_path / "dst.img") as dst:
        deploy_image(str(tmp_path / "img"), dst, Progress())
        with open(f"{dst}p3", "rb") as f:
            part_bytes = f.seek(0, 2)
        assert part_bytes > (target_mib - 80) * MiB, "the last partition did not take the disk's room"
        assert part_bytes - ntfs_bytes(f"{dst}p3") < 2 * MiB, "NTFS was not grown to its partition"
        for n in (1, 3):
            fs, fingerprint = expected[n]
            assert filesystem_fingerprint(f"{dst}p{n}", fs) == fingerprint


def test_fog_resizable_image_too_big_for_the_disk_is_refused_before_writing(tmp_path):
    make_fog_resizable_image(tmp_path)
    blank(tmp_path / "dst.img", 100)  # 60 + 16 + 48 MiB of partitions do not fit
    with attached(tmp_path / "dst.img") as dst, pytest.raises(DiskTooSmall):
        deploy_image(str(tmp_path / "img"), dst, Progress())
    assert (tmp_path / "dst.img").read_bytes().count(0) == 100 * MiB
