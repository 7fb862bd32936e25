"""A deploy stopped midway never leaves a disk that looks whole: a real ``python -m imager.cli deploy`` onto a loop
device, real partclone, stopped by a signal (blank disk: no partition table) or killed (no partclone left writing)."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess

import pytest

from imager import imagestore
from imager.errors import InvalidImage
from imager.ops.capture import capture_image
from imager.ops.deploy import deploy_image
from imager.progress import Progress
from tests.disktools import attached, file_sha256, mounted
from tests.imager.ops.interrupting import MiB, SIGNALS, error_lines, partclone_left, processes_using, start_cli, stop, wait_for

pytestmark = pytest.mark.root


def sh(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=True, capture_output=True, text=True)


def blank_file(path, mib: int):
    with open(path, "wb") as f:
        f.truncate(mib * MiB)
    return path


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    """An exact-layout image whose p2 holds 120 MiB that do not compress: its restore takes a while."""
    work = tmp_path_factory.mktemp("image")
    source = blank_file(work / "a.img", 300)
    sh("sgdisk", "-n1:2048:+40M", "-n2:0:0", str(source))
    with attached(source) as dev:
        for n, mib in (("1", 3), ("2", 120)):
            sh("mkfs.ext4", "-q", "-F", f"{dev}p{n}")
            with mounted(f"{dev}p{n}", readonly=False) as root:
                with open(root / "data.bin", "wb") as out:
                    for _ in range(mib):
                        out.write(os.urandom(MiB))
        capture_image(dev, str(work / "store"), "img", Progress(), image_type="multipart")
    return imagestore.resolve(str(work / "store"), "img")


def partition_table(device: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sfdisk", "--dump", device], capture_output=True, text=True)


def restoring(device: str) -> bool:
    return any("partclone" in p for p in processes_using(f"{device}p2"))


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_a_signal_mid_deploy_leaves_the_disk_blank(tmp_path, image, signum):
    for attempt in range(3):
        with attached(blank_file(tmp_path / "b.img", 300)) as target:
            proc = start_cli("deploy", "--yes", image, target)
            wait_for(lambda: restoring(target), proc)  # the table is written and p1 restored: the disk looks whole
            status, stderr = stop(proc, signum)
            if status == 0 and attempt < 2:
                continue  # the deploy ended before the signal came (this process was not scheduled): again
            assert status == 128 + signum
            assert error_lines(stderr) == [f"imager: error (interrupted): stopped by {signal.Signals(signum).name}"]
            assert "left blank (no partition table)" in stderr
            assert partclone_left(target) == []
            dump = partition_table(target)
            assert dump.returncode != 0 and "does not contain a recognized partition table" in dump.stderr
            assert sh("wipefs", "--no-act", target).stdout.strip() == ""  # no backup GPT at the end either
            return


def test_a_killed_deploy_leaves_no_partclone_writing_the_disk(tmp_path, image):
    with attached(blank_file(tmp_path / "b.img", 300)) as target:
        proc = start_cli("deploy", "--yes", image, target)
        wait_for(lambda: restoring(target), proc)
        proc.kill()  # SIGKILL: only the kernel acts, through PR_SET_PDEATHSIG
        proc.wait()
        assert partclone_left(target) == [], "partclone outlived the killed imager"
        first = file_sha256(tmp_path / "b.img")
        second = file_sha256(tmp_path / "b.img")
        assert first == second, "something is still writing the disk"


def test_a_damaged_table_file_refuses_the_image_and_leaves_the_disk_as_it_was(tmp_path, image):
    damaged = tmp_path / "img"
    shutil.copytree(image, damaged)
    table = damaged / "d1.sfdisk"
    table.write_text(table.read_text().replace("size=", "size ", 1))  # same size: only the checksum can tell
    target = blank_file(tmp_path / "b.img", 300)
    sh("sgdisk", "-n1:2048:+100M", "-n2:0:0", str(target))  # a disk with a table of its own
    with attached(target) as dev:
        before = partition_table(dev).stdout
        with pytest.raises(InvalidImage, match="d1.sfdisk does not match its checksum"):
            deploy_image(str(damaged), dev, Progress())
        assert partition_table(dev).stdout == before  # not blanked: nothing had been written


def test_a_stopped_single_partition_deploy_blanks_that_partition_only(tmp_path, image):
    with attached(blank_file(tmp_path / "b.img", 300)) as target:
        deploy_image(image, target, Progress())
        table = partition_table(target).stdout
        proc = start_cli("deploy", "--yes", "--partition", "2", image, target)
        wait_for(lambda: restoring(target), proc)
        status, stderr = stop(proc, signal.SIGTERM)
        assert status == 128 + signal.SIGTERM, stderr
        assert partition_table(target).stdout == table  # the table and partition 1 stay
        assert sh("wipefs", "--no-act", f"{target}p2").stdout.strip() == ""  # p2 reads as blank
        with mounted(f"{target}p1") as root:
            assert (root / "data.bin").stat().st_size == 3 * MiB
