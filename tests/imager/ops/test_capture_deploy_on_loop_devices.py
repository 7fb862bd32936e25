"""capture and deploy with the real tools on loop devices: partclone, sfdisk, sgdisk, ext4."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess

import pytest

from imager import imagestore
from imager.errors import ChecksumMismatch, DiskTooSmall, InvalidImage, TaskCanceled
from imager.ops.capture import capture_image
from imager.ops.deploy import deploy_image
from imager.progress import Progress
from tests.qemu.lab import attached, file_sha256, mounted, read_disk, tree_checksums

pytestmark = pytest.mark.root
MiB = 1024 * 1024


def sh(*argv):
    subprocess.run(argv, check=True, capture_output=True)


def blank(path, mib):
    with open(path, "wb") as f:
        f.truncate(mib * MiB)
    return path


def make_disk(path, label, mib=160):
    """Two ext4 partitions with files; returns {partition: {file: sha256}}."""
    blank(path, mib)
    if label == "gpt":
        sh("sgdisk", "-n1:2048:+40M", "-c1:one", "-n2:0:0", "-c2:two", str(path))
    else:
        subprocess.run(["sfdisk", "--quiet", str(path)], input=b"label: dos\n,40M,L,*\n,,L\n", check=True)
    written = {}
    with attached(path) as dev:
        for n in ("1", "2"):
            sh("mkfs.ext4", "-q", "-F", f"{dev}p{n}")
            with mounted(f"{dev}p{n}", readonly=False) as root:
                (root / f"file{n}.bin").write_bytes(os.urandom(3 * MiB))
                (root / "dir").mkdir()
                (root / "dir" / "text.txt").write_text(f"partition {n}\n" * 1000)
                written[n] = tree_checksums(root)
    return written


@pytest.mark.parametrize("label, parted_name", [("gpt", "gpt"), ("dos", "msdos")])
def test_capture_then_deploy_restores_table_and_files(tmp_path, label, parted_name):
    written = make_disk(tmp_path / "a.img", label)
    blank(tmp_path / "b.img", 200)  # larger target: the exact layout fits and is kept
    with attached(tmp_path / "a.img") as a, attached(tmp_path / "b.img") as b:
        result = capture_image(a, str(tmp_path / "store"), "img", Progress(), image_type="multipart")
        assert result["partitions"] == 2
        deploy_image(imagestore.resolve(str(tmp_path / "store"), "img"), b, Progress())
    table_a, files_a = read_disk(tmp_path / "a.img")
    table_b, files_b = read_disk(tmp_path / "b.img")
    assert files_b == written == files_a
    strip = lambda t: [l for l in t.splitlines() if not l.startswith("last-lba")]  # noqa: E731
    assert strip(table_b) == strip(table_a)
    manifest = json.loads((tmp_path / "store" / "img" / "manifest.json").read_text())
    assert manifest["disks"][0]["layout"]["label"] == parted_name
    for name, meta in manifest["files"].items():
        assert file_sha256(tmp_path / "store" / "img" / name) == meta["sha256"]


def test_deploy_refuses_a_small_disk_before_writing(tmp_path):
    make_disk(tmp_path / "a.img", "gpt", mib=300)
    small = blank(tmp_path / "small.img", 100)
    with open(small, "r+b") as f:
        f.write(b"keep me" * 1000)
    before = file_sha256(small)
    with attached(tmp_path / "a.img") as a:
        capture_image(a, str(tmp_path / "store"), "img", Progress())
    with attached(small) as s, pytest.raises(DiskTooSmall):
        deploy_image(imagestore.resolve(str(tmp_path / "store"), "img"), s, Progress())
    assert file_sha256(small) == before


def test_a_stream_that_is_not_the_manifests_fails_the_deploy_on_its_sha256(tmp_path):
    """Another valid zstd stream: zstd and partclone find nothing wrong, only the manifest's SHA-256 can."""
    make_disk(tmp_path / "a.img", "gpt")
    blank(tmp_path / "b.img", 160)
    with attached(tmp_path / "a.img") as a:
        capture_image(a, str(tmp_path / "store"), "img", Progress())
    image = imagestore.resolve(str(tmp_path / "store"), "img")
    path = os.path.join(image, "manifest.json")
    manifest = json.loads(open(path).read())
    manifest["files"]["d1p2.pcl.zst"]["sha256"] = hashlib.sha256(b"another capture").hexdigest()
    with open(path, "w") as f:
        json.dump(manifest, f)
    with attached(tmp_path / "b.img") as b:
        with pytest.raises(ChecksumMismatch, match="d1p2.pcl.zst: SHA-256") as info:
            deploy_image(image, b, Progress())
        # p1 was restored, then p2 failed: the disk is left blank, not looking whole
        dump = subprocess.run(["sfdisk", "--dump", b], capture_output=True, text=True)
        assert dump.returncode != 0 and "does not contain a recognized partition table" in dump.stderr
    assert info.value.code == "checksum_mismatch"


def test_a_damaged_table_file_stops_the_deploy_before_any_write(tmp_path):
    make_disk(tmp_path / "a.img", "gpt")
    target = blank(tmp_path / "b.img", 160)
    with open(target, "r+b") as f:
        f.write(b"keep me" * 1000)
    before = file_sha256(target)
    with attached(tmp_path / "a.img") as a:
        capture_image(a, str(tmp_path / "store"), "img", Progress())
    image = imagestore.resolve(str(tmp_path / "store"), "img")
    table = os.path.join(image, "d1.sfdisk")
    text = open(table).read()
    with open(table, "w") as f:  # same size, so only the checksum can tell
        f.write(text.replace("size=", "size ", 1))
    with attached(target) as b, pytest.raises(InvalidImage, match="d1.sfdisk does not match its checksum"):
        deploy_image(image, b, Progress())
    assert file_sha256(target) == before


def test_a_capture_stopped_midway_keeps_the_previous_image(tmp_path):
    make_disk(tmp_path / "a.img", "gpt")
    store = str(tmp_path / "store")
    with attached(tmp_path / "a.img") as a:
        capture_image(a, store, "img", Progress())
        first = imagestore.resolve(store, "img")

        def cancel(snapshot):
            if snapshot["bytes_done"] > 0:
                raise TaskCanceled("canceled on the server")

        with pytest.raises(TaskCanceled):
            capture_image(a, store, "img", Progress([cancel], interval=0))
    assert imagestore.resolve(store, "img") == first
    assert os.listdir(os.path.join(store, ".images")) == [os.path.basename(first)]


def test_cli_capture_verify_info_deploy_exit_codes(tmp_path):
    """The standalone CLI, as a technician runs it: exit 0 only on success."""
    import sys
    make_disk(tmp_path / "a.img", "gpt")
    blank(tmp_path / "b.img", 160)
    cli = [sys.executable, "-m", "imager.cli"]
    image = str(tmp_path / "store" / "lab1")
    with attached(tmp_path / "a.img") as a, attached(tmp_path / "b.img") as b:
        typo = subprocess.run(cli + ["capture", a, image], capture_output=True, text=True)  # no store/ yet
        assert typo.returncode == 1 and "is not an existing directory; nothing was created" in typo.stderr
        assert not os.path.exists(tmp_path / "store")
        os.mkdir(tmp_path / "store")
        assert subprocess.run(cli + ["capture", "--format", "stream", a, image], capture_output=True).returncode == 0
        verify = subprocess.run(cli + ["verify", image], capture_output=True, text=True)
        assert verify.returncode == 0 and "ok   d1p2.pcl.zst" in verify.stdout
        info = subprocess.run(cli + ["info", image], capture_output=True, text=True)
        assert info.returncode == 0 and "p2: ext4" in info.stdout
        assert subprocess.run(cli + ["deploy", image, b], capture_output=True).returncode == 0
        with open(os.path.join(image, "d1p1.pcl.zst"), "r+b") as f:
            f.seek(200)
            f.write(b"\0\1\2")
        bad = subprocess.run(cli + ["verify", image], capture_output=True, text=True)
        assert bad.returncode == 1 and "BAD  d1p1.pcl.zst" in bad.stdout and "checksum_mismatch" in bad.stderr
        missing = subprocess.run(cli + ["deploy", str(tmp_path / "nope"), b], capture_output=True, text=True)
        assert missing.returncode == 1 and "image_not_found" in missing.stderr


def test_raw_image_copies_every_byte(tmp_path):
    make_disk(tmp_path / "a.img", "dos")
    blank(tmp_path / "b.img", 170)
    with attached(tmp_path / "a.img") as a, attached(tmp_path / "b.img") as b:
        result = capture_image(a, str(tmp_path / "store"), "raw", Progress(), image_type="raw")
        assert result["raw_bytes"] == 160 * MiB
        deploy_image(imagestore.resolve(str(tmp_path / "store"), "raw"), b, Progress())
    with open(tmp_path / "b.img", "rb") as f:
        assert hashlib.sha256(f.read(160 * MiB)).hexdigest() == file_sha256(tmp_path / "a.img")
    blank(tmp_path / "c.img", 150)
    with attached(tmp_path / "c.img") as c, pytest.raises(DiskTooSmall):
        deploy_image(imagestore.resolve(str(tmp_path / "store"), "raw"), c, Progress())


def test_one_partition_only_leaves_the_rest_of_the_disk_alone(tmp_path):
    written = make_disk(tmp_path / "a.img", "gpt")
    make_disk(tmp_path / "b.img", "gpt")  # same layout, other files
    with attached(tmp_path / "b.img") as b, mounted(f"{b}p1") as root:
        other_p1 = tree_checksums(root)
    with attached(tmp_path / "a.img") as a, attached(tmp_path / "b.img") as b:
        capture_image(a, str(tmp_path / "store"), "img", Progress())
        table_before = subprocess.run(["sfdisk", "--dump", b], capture_output=True, text=True).stdout
        deploy_image(imagestore.resolve(str(tmp_path / "store"), "img"), b, Progress(), partition=2)
        assert subprocess.run(["sfdisk", "--dump", b], capture_output=True, text=True).stdout == table_before
        with mounted(f"{b}p2") as root:
            assert tree_checksums(root) == written["2"]
        with mounted(f"{b}p1") as root:
            assert tree_checksums(root) == other_p1


def test_deploy_sets_the_linux_hostname(tmp_path):
    make_disk(tmp_path / "a.img", "gpt")
    with attached(tmp_path / "a.img") as a, mounted(f"{a}p2", readonly=False) as root:
        (root / "etc").mkdir()
        (root / "etc" / "hostname").write_text("golden-image\n")
        (root / "etc" / "hosts").write_text("127.0.0.1\tlocalhost\n127.0.1.1\tgolden-image\n")
    blank(tmp_path / "b.img", 160)
    with attached(tmp_path / "a.img") as a, attached(tmp_path / "b.img") as b:
        capture_image(a, str(tmp_path / "store"), "img", Progress())
        deploy_image(imagestore.resolve(str(tmp_path / "store"), "img"), b, Progress(), hostname="lab-pc-42")
        with mounted(f"{b}p2") as root:
            assert (root / "etc" / "hostname").read_text() == "lab-pc-42\n"
            assert "127.0.1.1\tlab-pc-42" in (root / "etc" / "hosts").read_text()
            assert "golden-image" not in (root / "etc" / "hosts").read_text()


def test_a_4k_native_target_is_refused_before_any_write(tmp_path):
    from imager.errors import SectorSizeMismatch
    make_disk(tmp_path / "a.img", "gpt")
    with attached(tmp_path / "a.img") as a:
        capture_image(a, str(tmp_path / "store"), "img", Progress())
    target = blank(tmp_path / "4kn.img", 400)
    with open(target, "r+b") as f:
        f.write(b"4Kn data" * 1000)
    before = file_sha256(target)
    device = subprocess.run(["losetup", "--find", "--show", "--sector-size", "4096", str(target)],
                            capture_output=True, text=True, check=True).stdout.strip()
    try:
        with pytest.raises(SectorSizeMismatch, match="4096-byte sectors"):
            deploy_image(imagestore.resolve(str(tmp_path / "store"), "img"), device, Progress())
    finally:
        subprocess.run(["losetup", "-d", device])
    assert file_sha256(target) == before
