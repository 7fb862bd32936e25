"""Chunked images (issue 17) with the real tools on loop devices: partclone, sgdisk, ext4, a web server.

Exactness is checked the way the issue asks: the SHA-256 of partclone's used-block stream of each deployed
partition equals the image's own stream (its index's header and bitmap, then its chunks in order), and every
file matches.  The redeploys onto a disk holding v1, or v2 changed by its users, reuse what matches and
fetch and write only the rest; a disk laid out otherwise falls back to a full deploy and says why."""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from contract import chunkindex
from imager import httpchunks, httpstore, imagestore
from imager.chunkstore import LocalChunks
from imager.errors import ChecksumMismatch
from imager.ops.capture import capture_image
from imager.ops.deploy import deploy_image
from imager.progress import Progress
from imager.verify import verify_image
from tests.imager.ops.test_capture_deploy_on_loop_devices import blank, make_disk, sh
from tests.imager.webservers import nginx_server, python_http_server
from tests.qemu.lab import attached, mounted, read_disk

pytestmark = pytest.mark.root
MiB = 1024 * 1024
Store = tuple[Path, dict[str, str]]   # the store, {"v1"|"v2": version directory name}


def change(device: str, partition: str) -> None:
    """What a month does to a lab machine: one file rewritten in place, one replaced, new ones added."""
    with mounted(f"{device}p{partition}", readonly=False) as root:
        with open(root / f"file{partition}.bin", "r+b") as f:
            f.seek(MiB)
            f.write(os.urandom(64 * 1024))
        (root / "dir" / "text.txt").write_text("updated\n" * 3000)
        (root / "added.bin").write_bytes(os.urandom(2 * MiB))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """A two-partition GPT disk captured chunked (multipart: exact layout) as v1, changed, captured as v2."""
    work = tmp_path_factory.mktemp("chunked")
    make_disk(work / "source.img", "gpt")
    (work / "store").mkdir()
    versions = {}
    with attached(work / "source.img") as source:
        v1 = capture_image(source, str(work / "store"), "img", Progress(), image_type="multipart", image_format="chunked")
        # a capture replaces the version it publishes over: v1 is kept aside (its chunks stay in the store)
        shutil.copytree(work / "store" / ".images" / v1["version"], work / "store" / ".images" / "img-v1")
        versions["v1"] = "img-v1"
        shutil.copy(work / "source.img", work / "v1.img")
        change(source, "2")
        v2 = capture_image(source, str(work / "store"), "img", Progress(), image_type="multipart", image_format="chunked")
        versions["v2"] = v2["version"]
    # the second capture added the changed chunks only: the 2 MiB file added and little more
    assert 2 * MiB < v2["new_bytes"] < 2.5 * MiB < v2["stored_bytes"] / 3, (v1, v2)
    shutil.copy(work / "source.img", work / "v2.img")
    return work / "store", versions


def image_stream_sha(store: Path, version: str, partition: str) -> str:
    """The SHA-256 of the partclone stream the image holds for a partition: header, bitmap, chunks in order."""
    index = chunkindex.read(str(store / ".images" / version / f"d1p{partition}.cidx"))
    chunks = LocalChunks(str(store))
    digest = hashlib.sha256(index.header + index.bitmap)
    for chunk in index.chunks:
        digest.update(chunks.fetch(chunk, chunk.used_blocks * index.info.block_size))
    return digest.hexdigest()


def device_stream_sha(device: str) -> str:
    """The SHA-256 of partclone's used-block stream of a partition, as a capture reads it."""
    proc = subprocess.run(["partclone.extfs", "-c", "-a0", "-q", "-s", device, "-o", "-"], capture_output=True, check=True)
    return hashlib.sha256(proc.stdout).hexdigest()


def assert_exact(store: Path, version: str, target: Path, source_copy: Path) -> None:
    with attached(target) as device:
        for n in ("1", "2"):
            assert device_stream_sha(f"{device}p{n}") == image_stream_sha(store, version, n), f"partition {n}"
    assert read_disk(target)[1] == read_disk(source_copy)[1]


def deploy(store: Path, version: str, target: Path) -> dict[str, Any]:
    with attached(target) as device:
        return deploy_image(str(store / ".images" / version), device, Progress())


def test_a_full_deploy_of_a_chunked_image_is_exact(store: Store, tmp_path: Path) -> None:
    root, versions = store
    target = blank(tmp_path / "t.img", 200)
    result = deploy(root, versions["v2"], target)
    assert result["reused_bytes"] == 0 and result["fetched_bytes"] > 0
    assert_exact(root, versions["v2"], target, root.parent / "v2.img")


def test_a_redeploy_onto_v1_fetches_and_writes_only_what_changed(store: Store, tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    root, versions = store
    target = blank(tmp_path / "t.img", 200)
    full = deploy(root, versions["v1"], target)
    caplog.set_level(logging.INFO)
    again = deploy(root, versions["v2"], target)
    assert "incremental" in caplog.text
    assert again["reused_bytes"] > 10 * again["wrote_bytes"] > 0
    assert again["fetched_bytes"] < 2.5 * MiB < full["fetched_bytes"] / 2  # the 2 MiB added, and little more
    assert_exact(root, versions["v2"], target, root.parent / "v2.img")


def test_a_disk_its_users_changed_is_brought_back_exactly(store: Store, tmp_path: Path) -> None:
    root, versions = store
    target = blank(tmp_path / "t.img", 200)
    deploy(root, versions["v2"], target)
    with attached(target) as device:
        with mounted(f"{device}p2", readonly=False) as files:
            (files / "homework.txt").write_text("mine\n" * 10000)
            (files / "file2.bin").unlink()
    result = deploy(root, versions["v2"], target)
    assert result["reused_bytes"] > result["wrote_bytes"] > 0
    assert_exact(root, versions["v2"], target, root.parent / "v2.img")


def test_another_layout_or_filesystem_falls_back_to_a_full_deploy_and_says_why(
        store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root, versions = store
    other = blank(tmp_path / "other.img", 200)
    sh("sgdisk", "-n1:2048:+60M", "-n2:0:0", str(other))  # partitions elsewhere
    caplog.set_level(logging.INFO)
    result = deploy(root, versions["v2"], other)
    assert "partition table differs from the image's layout" in caplog.text and result["reused_bytes"] == 0
    assert_exact(root, versions["v2"], other, root.parent / "v2.img")

    same_layout = blank(tmp_path / "fat.img", 200)
    deploy(root, versions["v2"], same_layout)
    with attached(same_layout) as device:
        sh("mkfs.vfat", f"{device}p2")  # the same partitions, another filesystem in the second
    caplog.clear()
    result = deploy(root, versions["v2"], same_layout)
    assert "holds no EXTFS filesystem partclone can read" in caplog.text
    assert 0 < result["reused_bytes"] < result["wrote_bytes"]   # partition 1 reused, partition 2 in full
    assert_exact(root, versions["v2"], same_layout, root.parent / "v2.img")


def test_a_damaged_chunk_fails_the_deploy_and_leaves_the_disk_blank(store: Store, tmp_path: Path) -> None:
    root, versions = store
    copy = tmp_path / "store"
    shutil.copytree(root, copy, symlinks=True)
    index = chunkindex.read(str(copy / ".images" / versions["v2"] / "d1p2.cidx"))
    victim = LocalChunks(str(copy)).path(index.chunks[len(index.chunks) // 2].sha256)
    data = bytearray(Path(victim).read_bytes())
    data[len(data) // 2] ^= 0xFF
    Path(victim).write_bytes(bytes(data))
    target = blank(tmp_path / "t.img", 200)
    with pytest.raises(ChecksumMismatch, match="chunk [0-9a-f]{64}"):
        deploy(copy, versions["v2"], target)
    with attached(target) as device:
        dump = subprocess.run(["sfdisk", "--dump", device], capture_output=True, text=True)
    assert dump.returncode != 0  # no table left that looks whole


@contextlib.contextmanager
def with_bad_sectors(image: Path, first_byte: int, length: int, work: Path) -> Iterator[Path]:
    """``image`` seen through tests/imager/faultydisk.c: reads of [first_byte, +length) fail until written."""
    binary, point = work / "faultydisk", work / "faulty"
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "fuse"], capture_output=True, text=True,
                           check=True).stdout.split()
    sh("cc", "-O2", "-Wall", "-o", str(binary), str(Path(__file__).with_name("faultydisk.c")), *flags)
    point.mkdir()
    daemon = subprocess.Popen([str(binary), str(image), str(point), str(first_byte), str(length)])
    try:
        for _ in range(100):
            if (point / "disk").exists() or daemon.poll() is not None:
                break
            time.sleep(0.1)
        assert (point / "disk").exists(), "faultydisk did not mount"
        yield point / "disk"
    finally:
        daemon.terminate()
        daemon.wait(10)
        subprocess.run(["umount", str(point)], capture_output=True)


def test_a_target_with_unreadable_blocks_is_deployed_in_full_where_it_fails_and_says_why(
        store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Bad sectors under a file of partition 1 (one the version needs): reading them to compare fails, so that
    partition is written in full (the write remaps them, as on a real disk); partition 2 is still reused."""
    root, versions = store
    target = blank(tmp_path / "t.img", 200)
    deploy(root, versions["v1"], target)
    with attached(target) as device:
        block = int(subprocess.run(["debugfs", "-R", "bmap /file1.bin 100", f"{device}p1"], capture_output=True,
                                   text=True, check=True).stdout.split()[-1])
        start = int(Path(f"/sys/class/block/{os.path.basename(device)}p1/start").read_text()) * 512
    size = chunkindex.read(str(root / ".images" / versions["v2"] / "d1p1.cidx")).info.block_size
    with with_bad_sectors(target, start + block * size, 3 * 4096, tmp_path) as faulty, \
            attached(faulty) as device:
        with open(f"{device}p1", "rb") as disk, pytest.raises(OSError):
            os.pread(disk.fileno(), size, block * size)   # the sectors really are bad
        caplog.set_level(logging.INFO)
        result = deploy_image(str(root / ".images" / versions["v2"]), device, Progress())
    assert re.search(r"p1: full deploy: \S+p1 cannot be read at block \d+", caplog.text), caplog.text
    partition_2 = chunkindex.read(str(root / ".images" / versions["v2"] / "d1p2.cidx")).raw_bytes
    assert 0 < result["reused_bytes"] <= partition_2   # nothing of partition 1 counts as reused
    assert_exact(root, versions["v2"], target, root.parent / "v2.img")


def test_verify_checks_every_chunk_a_version_needs(store: Store, tmp_path: Path) -> None:
    root, versions = store
    checks = verify_image(str(root / ".images" / versions["v2"]))
    assert all(check.ok for check in checks), [c.reason for c in checks]
    copy = tmp_path / "store"
    shutil.copytree(root, copy, symlinks=True)
    index = chunkindex.read(str(copy / ".images" / versions["v2"] / "d1p1.cidx"))
    lost = index.chunks[0].sha256
    os.unlink(LocalChunks(str(copy)).path(lost))
    checks = {c.name: c for c in verify_image(str(copy / ".images" / versions["v2"]))}
    assert not checks["d1p1.cidx"].ok and lost in checks["d1p1.cidx"].reason
    assert checks["d1p2.cidx"].ok


def test_an_incremental_redeploy_over_http_fetches_only_the_missing_chunks(store: Store, tmp_path: Path) -> None:
    root, versions = store
    target = blank(tmp_path / "t.img", 200)
    deploy(root, versions["v1"], target)
    with python_http_server(root) as url, attached(target) as device, tempfile.TemporaryDirectory() as local:
        remote = httpstore.Remote(f"{url}.images/{versions['v2']}/", requests.Session())
        image = httpstore.fetch_image(remote, local, httpchunks.chunks_for(remote, f"{url}.chunks/"))
        result = deploy_image(local, device, Progress(), remote=image)
    v2_stored = json.loads((root / ".images" / versions["v2"] / "manifest.json").read_text())
    stored = sum(p["stored_bytes"] for p in v2_stored["disks"][0]["partitions"])
    assert 2 * MiB < result["fetched_bytes"] < 2.5 * MiB < stored / 3
    assert_exact(root, versions["v2"], target, root.parent / "v2.img")


def test_a_full_deploy_from_nginx_is_exact_with_its_gets_back_to_back(store: Store, tmp_path: Path) -> None:
    """nginx serving the node's tree as it lies (`.chunks/` too) is enough: a full deploy onto a blank disk, its
    chunks asked 64 a connection (HTTP/1.1 pipelining), ends exact; nginx's log shows every GET answered 200."""
    root, versions = store
    target = blank(tmp_path / "t.img", 200)
    with nginx_server(root, tmp_path / "nginx") as url, attached(target) as device, \
            tempfile.TemporaryDirectory() as local:
        remote = httpstore.Remote(f"{url}.images/{versions['v2']}/", requests.Session())
        chunks = httpchunks.chunks_for(remote, f"{url}.chunks/")
        assert chunks.batch == httpchunks.BATCH_CHUNKS
        result = deploy_image(local, device, Progress(), remote=httpstore.fetch_image(remote, local, chunks))
    assert result["reused_bytes"] == 0 and result["fetched_bytes"] > 0
    assert chunks._batches_work(), "a group of GETs failed"
    log = [line for line in (tmp_path / "nginx" / "access.log").read_text().splitlines()
           if '"HEAD / ' not in line]  # nginx_server's readiness probe (no listing: 403)
    assert len([line for line in log if "/.chunks/" in line and '" 200 ' in line]) >= result["fetched_bytes"] // (64 * 1024)
    assert not [line for line in log if '" 200 ' not in line]
    assert_exact(root, versions["v2"], target, root.parent / "v2.img")


def test_imagestore_sees_a_chunked_version_as_published(store: Store) -> None:
    root, versions = store
    assert os.path.basename(imagestore.resolve(str(root), "img")) == versions["v2"]
    assert not list((root / ".images").glob("*/*.partial"))


def differing_blocks(a: str, b: str) -> list[int]:
    """Blocks where two ext4 filesystems' used-block streams differ (same bitmap asserted)."""
    streams = [subprocess.run(["partclone.extfs", "-c", "-a0", "-q", "-s", dev, "-o", "-"], capture_output=True,
                              check=True).stdout for dev in (a, b)]
    info = chunkindex.parse_partclone_header(streams[0])
    assert info is not None
    start = chunkindex.HEADER_SIZE + chunkindex.bitmap_size(info)
    assert streams[0][:start] == streams[1][:start]  # the same blocks in use
    bits, size = chunkindex.usable_bits(streams[0][chunkindex.HEADER_SIZE:start], info.total_blocks), info.block_size
    used = [n for n in range(info.total_blocks) if bits[n // 8] >> (n % 8) & 1]
    return [n for k, n in enumerate(used)
            if streams[0][start + k * size:start + (k + 1) * size] != streams[1][start + k * size:start + (k + 1) * size]]


def stamped_blocks(device: str) -> set[int]:
    """Where e2fsck and resize2fs write the time: every superblock copy, and the resize inode (7)'s block."""
    dump = subprocess.run(["dumpe2fs", device], capture_output=True, text=True, check=True).stdout
    blocks = {int(m) for m in re.findall(r"[Ss]uperblock at (\d+)", dump)}
    size = int(re.search(r"^Block size:\s+(\d+)", dump, re.M).group(1))  # type: ignore[union-attr]
    inode_size = int(re.search(r"^Inode size:\s+(\d+)", dump, re.M).group(1))  # type: ignore[union-attr]
    table = int(re.search(r"Inode table at (\d+)", dump).group(1))  # type: ignore[union-attr]
    return blocks | {table + (7 - 1) * inode_size // size}


def test_a_resizable_redeploy_onto_a_larger_disk_equals_a_full_one(tmp_path: Path) -> None:
    """Captured shrunk, laid onto a larger disk and grown: the redeploy over v1 reuses v1's blocks, and the
    grown result is a full deploy's, block for block, but for the times e2fsck and resize2fs stamp."""
    make_disk(tmp_path / "source.img", "gpt")
    root = tmp_path / "store"
    root.mkdir()
    with attached(tmp_path / "source.img") as source:
        capture_image(source, str(root), "img", Progress(), image_format="chunked")
        v1 = imagestore.resolve(str(root), "img")
        shutil.copytree(v1, root / ".images" / "img-v1")
        change(source, "2")
        capture_image(source, str(root), "img", Progress(), image_format="chunked")
    v2 = imagestore.resolve(str(root), "img")
    over_v1, full = blank(tmp_path / "over.img", 300), blank(tmp_path / "full.img", 300)
    with attached(over_v1) as device:
        deploy_image(str(root / ".images" / "img-v1"), device, Progress())
        result = deploy_image(v2, device, Progress())
    assert result["reused_bytes"] > result["wrote_bytes"] > 0
    with attached(full) as device:
        deploy_image(v2, device, Progress())
    with attached(over_v1) as a, attached(full) as b:
        for n in ("1", "2"):
            sh("e2fsck", "-fn", f"{a}p{n}")
            assert set(differing_blocks(f"{a}p{n}", f"{b}p{n}")) <= stamped_blocks(f"{a}p{n}"), f"partition {n}"
    assert read_disk(over_v1)[1] == read_disk(full)[1] == read_disk(tmp_path / "source.img")[1]


def test_the_cli_captures_verifies_and_deploys_a_chunked_image(tmp_path: Path) -> None:
    import sys
    make_disk(tmp_path / "a.img", "gpt")
    blank(tmp_path / "b.img", 160)
    (tmp_path / "store").mkdir()
    cli, image = [sys.executable, "-m", "imager.cli"], str(tmp_path / "store" / "lab1")
    with attached(tmp_path / "a.img") as a, attached(tmp_path / "b.img") as b:
        assert subprocess.run(cli + ["capture", "--format", "chunked", a, image], capture_output=True).returncode == 0
        verify = subprocess.run(cli + ["verify", image], capture_output=True, text=True)
        assert verify.returncode == 0 and "ok   d1p2.cidx" in verify.stdout, verify.stdout
        info = subprocess.run(cli + ["info", image], capture_output=True, text=True)
        assert info.returncode == 0 and "p2: ext4" in info.stdout
        assert subprocess.run(cli + ["deploy", "--yes", image, b], capture_output=True).returncode == 0
    assert read_disk(tmp_path / "b.img")[1] == read_disk(tmp_path / "a.img")[1]
    assert list((tmp_path / "store" / ".chunks").glob("??/*.zst"))
