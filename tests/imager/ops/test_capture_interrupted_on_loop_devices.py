"""A capture stopped midway, as a technician's SSH session drops: a real ``python -m imager.cli capture`` on a loop
device, with real partclone, stopped by a signal while the source filesystem is shrunk."""
from __future__ import annotations

import glob
import os
import signal
import subprocess

import pytest

from imager import imagestore
from tests.disktools import attached, file_sha256, mounted
from tests.imager.ops.interrupting import (MiB, SIGNALS, block_count, error_lines, partclone_left, run_cli, start_cli, stop,
                                           wait_for)

pytestmark = pytest.mark.root


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A 400 MiB disk: p1 small, p2 large enough to be shrunk for capture, with 120 MiB that do not compress."""
    path = tmp_path_factory.mktemp("source") / "a.img"
    with open(path, "wb") as f:
        f.truncate(400 * MiB)
    sh("sgdisk", "-n1:2048:+40M", "-n2:0:0", str(path))
    with attached(path) as dev:
        for n, mib in (("1", 3), ("2", 120)):
            sh("mkfs.ext4", "-q", "-F", f"{dev}p{n}")
            with mounted(f"{dev}p{n}", readonly=False) as root:
                with open(root / "data.bin", "wb") as out:
                    for _ in range(mib):
                        out.write(os.urandom(MiB))
        yield dev


def staging_files(store: str) -> list[str]:
    current = os.path.realpath(os.path.join(store, "img"))
    return [f for f in glob.glob(os.path.join(store, ".images", "img@*", "*.pcl.zst"))
            if os.path.dirname(f) != current]


def published(store: str) -> tuple[str, str]:
    current = imagestore.resolve(store, "img")
    return current, file_sha256(os.path.join(current, "manifest.json"))


@pytest.fixture(scope="module")
def store(tmp_path_factory, source):
    root = str(tmp_path_factory.mktemp("store"))
    done = run_cli("capture", "--format", "stream", "--yes", source, os.path.join(root, "img"))
    assert done.returncode == 0, done.stderr
    return root


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_a_signal_mid_capture_grows_the_source_back_and_keeps_the_previous_image(source, store, signum):
    size_before = block_count(f"{source}p2")
    before = published(store)
    proc = start_cli("capture", "--format", "stream", "--yes", source, os.path.join(store, "img"))
    wait_for(lambda: bool(staging_files(store)), proc)  # streaming has begun: p2 is shrunk now
    assert block_count(f"{source}p2") < size_before, "the moment chosen is not while p2 is shrunk"
    status, stderr = stop(proc, signum)
    assert status == 128 + signum
    assert error_lines(stderr) == [f"imager: error (interrupted): stopped by {signal.Signals(signum).name}"]
    assert "filesystems are back at their size" in stderr  # the hint that goes with it
    assert block_count(f"{source}p2") == size_before
    assert published(store) == before
    assert os.listdir(os.path.join(store, ".images")) == [os.path.basename(before[0])]
    assert partclone_left(source) == []


def test_a_full_store_is_one_message_and_leaves_nothing_behind(tmp_path, source):
    small = tmp_path / "small"
    small.mkdir()
    sh("mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(small))
    try:
        size_before = block_count(f"{source}p2")
        done = run_cli("capture", "--format", "stream", "--yes", source, str(small / "img"))
        assert done.returncode == 1, done.stderr
        lines = error_lines(done.stderr)
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith("imager: error (storage_full)"), done.stderr[-3000:]
        assert len(lines) == 1 and lines[0].startswith("imager: error (storage_full): capture of 'img' into ")
        assert "the image store is full (No space left on device)" in lines[0]
        assert "imager: Free space on the image store" in done.stderr
        assert block_count(f"{source}p2") == size_before
        assert os.listdir(small / ".images") == []
        assert not os.path.lexists(small / "img")
    finally:
        sh("umount", str(small))


def test_a_killed_capture_leaves_a_version_that_info_names_and_the_next_capture_removes(source, store):
    before = published(store)
    proc = start_cli("capture", "--format", "stream", "--yes", source, os.path.join(store, "img"))
    wait_for(lambda: bool(staging_files(store)), proc)
    leftover = os.path.dirname(staging_files(store)[0])
    proc.kill()  # nothing in imager runs: no cleanup
    proc.wait()
    try:
        assert partclone_left(source) == [], "partclone outlived the killed imager"
        assert published(store) == before
        info = run_cli("info", os.path.join(store, "img"))
        assert info.returncode == 0
        assert f"unfinished capture left behind: {leftover}" in info.stdout
        checked = run_cli("verify", os.path.join(store, "img"))
        assert checked.returncode == 0 and f"unfinished capture left behind: {leftover}" in checked.stdout
    finally:
        sh("e2fsck", "-f", "-y", f"{source}p2")
        sh("resize2fs", f"{source}p2")  # what SIGKILL could not do: the source back at its size
    done = run_cli("capture", "--format", "stream", "--yes", source, os.path.join(store, "img"))
    assert done.returncode == 0, done.stderr
    assert not os.path.exists(leftover)
    assert os.listdir(os.path.join(store, ".images")) == [os.path.basename(imagestore.resolve(store, "img"))]
