"""wipe and disktest with the real tools (wipefs, partprobe, O_DIRECT reads) on loop devices;
the debug shell on a pty."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zlib

import pytest

from imager.errors import UnsupportedDisk
from imager.ops.disktest import disktest
from imager.ops.wipe import wipe
from imager.ops.context import OpContext
from imager.progress import Progress
from tests.qemu.lab import attached, mounted

MiB = 1024 * 1024
SIZE = 96 * MiB
MIDDLE = (48 * MiB, 8 * MiB)   # inside partition 2, far from its start and from both ends


def sh(*argv, check=True):
    return subprocess.run(argv, check=check, capture_output=True, text=True)


def disk_with_data(path):
    """GPT, two ext4 partitions, and 8 MiB of random bytes in the middle of the disk."""
    with open(path, "wb") as f:
        f.truncate(SIZE)
    sh("sgdisk", "-n1:2048:+16M", "-c1:one", "-n2:0:0", "-c2:two", str(path))
    with attached(path) as dev:
        sh("mkfs.ext4", "-q", "-F", f"{dev}p1")
        sh("mkfs.ext4", "-q", "-F", f"{dev}p2")
    with open(path, "r+b") as f:
        f.seek(MIDDLE[0])
        f.write(os.urandom(MIDDLE[1]))
    return region_sha(path, *MIDDLE)


def region_sha(path, offset, length):
    with open(path, "rb") as f:
        f.seek(offset)
        return hashlib.sha256(f.read(length)).hexdigest()


def all_zero(path, offset, length):
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length) == bytes(length)


class Recorder(Progress):
    def __init__(self):
        super().__init__(interval=0)
        self.stages = []
        self.sinks = [lambda snap: self.stages.append(snap["stage"]) if snap["stage"] not in self.stages else None]


@pytest.mark.root
def test_fast_wipe_erases_the_table_and_both_ends_and_leaves_the_middle(tmp_path):
    image = tmp_path / "disk.img"
    middle = disk_with_data(image)
    with attached(image) as dev:
        assert "ext4" in sh("blkid", "-p", f"{dev}p2").stdout
        progress = Recorder()
        result = wipe(OpContext.local(progress, disk=dev, options={"mode": "fast"}))
        assert result["mode"] == "fast" and result["bytes_written"] == 2 * MiB
        assert progress.stages == ["zeroing the first and last MiB"] and progress.done == 2 * MiB
        assert sh("blkid", "-p", dev, check=False).stdout == ""          # no table, no signature
        assert sh("sfdisk", "--dump", dev, check=False).returncode != 0   # "does not contain a recognized table"
        assert not os.path.exists(f"{dev}p1"), "the kernel still shows the old partitions"
    assert all_zero(image, 0, MiB) and all_zero(image, SIZE - MiB, MiB)
    assert region_sha(image, *MIDDLE) == middle, "fast mode touched the middle of the disk"


@pytest.mark.root
@pytest.mark.parametrize("mode, stages", [
    ("normal", ["pass 1/1: zeros"]),
    ("full", ["pass 1/2: random data", "pass 2/2: zeros"]),   # a loop device is no NVMe: write passes
])
def test_normal_and_full_wipes_leave_nothing_but_zeros(tmp_path, mode, stages):
    image = tmp_path / "disk.img"
    disk_with_data(image)
    with attached(image) as dev:
        progress = Recorder()
        before_zeros = []  # the disk as the zeros pass begins: what the passes before it left
        progress.sinks.append(lambda snap: before_zeros.append(incompressible_mib(image))
                              if snap["stage"].endswith("zeros") and snap["bytes_done"] == 0 else None)
        result = wipe(OpContext.local(progress, disk=dev, options={"mode": mode}))
    assert progress.stages == stages
    assert result["bytes_written"] == SIZE * len(stages)
    if mode == "full":  # every MiB held random data before the zeros came
        assert before_zeros == [SIZE // MiB]
    assert all_zero(image, 0, SIZE)


def incompressible_mib(path):
    """How many of the file's MiB blocks zlib cannot shrink: random data, not zeros, tables or old files."""
    count = 0
    with open(path, "rb") as f:
        while block := f.read(MiB):
            count += len(zlib.compress(block, 1)) >= len(block)
    return count


@pytest.mark.root
def test_a_wipe_refuses_a_disk_with_a_mounted_partition(tmp_path):
    image = tmp_path / "disk.img"
    disk_with_data(image)
    with attached(image) as dev:
        with mounted(f"{dev}p1"):
            with pytest.raises(UnsupportedDisk, match="is mounted"):
                wipe(OpContext.local(disk=dev, options={"mode": "fast"}))
        assert "ext4" in sh("blkid", "-p", f"{dev}p1").stdout  # nothing erased


@pytest.mark.root
def test_disktest_reads_every_sector_of_a_healthy_disk(tmp_path):
    image = tmp_path / "disk.img"
    disk_with_data(image)
    with attached(image) as dev:
        progress = Recorder()
        result = disktest(OpContext.local(progress, disk=dev))
    assert result["verdict"] == "pass" and result["reasons"] == []
    assert result["surface"] == {"bytes_read": SIZE, "sector_size": 512, "bad_sectors": 0, "bad_lbas": []}
    assert progress.done == SIZE
    assert result["smart"]["available"] is False  # a loop device has no SMART; smartctl says why
    assert result["smart"]["summary"]


def test_the_debug_shell_shows_the_task_and_leaving_it_ends_the_op(tmp_path):
    """On a real pseudo-terminal: the banner, a shell with the task file, exit ends the op."""
    pexpect = pytest.importorskip("pexpect")
    task = {"id": 12, "type": "debug", "host": {"name": "pc-dbg", "mac": "52:54:00:00:00:12"}, "disk": None,
            "image": None, "storage": None, "options": None, "after": "reboot"}
    code = ("import json, sys; from imager.ops import debug as d; d.TASK_FILE = sys.argv[1]; "
            "from imager.ops.context import OpContext; r = d.debug(OpContext(json.loads(sys.argv[2])), shell=['sh']); print('RESULT', json.dumps(r))")
    child = pexpect.spawn(sys.executable, ["-c", code, str(tmp_path / "task.json"), json.dumps(task)],
                          encoding="utf-8", timeout=20, env={**os.environ, "PS1": "$ "})
    child.expect("imager debug shell - task 12 for pc-dbg")
    child.expect("host       {\"name\": \"pc-dbg\"")
    child.expect("Leave the shell with 'exit'")
    child.expect("imager-debug# ")
    child.sendline('echo "task file: $IMAGER_TASK"; exit 3')
    child.expect(f"task file: {tmp_path / 'task.json'}")
    child.expect('RESULT {"shell_exit_status": 3}')
    child.expect(pexpect.EOF)
    assert json.loads((tmp_path / "task.json").read_text())["id"] == 12
