"""bench/nfsfuse.c (build/nfsfuse), the NFS mount bench/incremental.py deploys from: real nfs-ganesha in a network namespace of the
test's own, the FUSE mount over libnfs in another, joined by bench/incremental_net.py's veth."""
from __future__ import annotations

import errno
import hashlib
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bench.incremental_net import Link, Servers

pytestmark = pytest.mark.root
MiB = 1 << 20


def test_files_read_back_exactly_through_symlinks_while_many_readers_share_the_mount(tmp_path: Path) -> None:
    store = tmp_path / "store"
    version = store / ".images" / "img@1"
    version.mkdir(parents=True)
    sums = {}
    for n in range(6):  # more files read at once than the mount has connections: the pool is shared
        data = os.urandom(9 * MiB + n * 4099)
        (version / f"part{n}.bin").write_bytes(data)
        sums[f"part{n}.bin"] = hashlib.sha256(data).hexdigest()
    (store / "img").symlink_to(".images/img@1")
    link = Link()
    servers = Servers(link, store, tmp_path / "nfs")
    try:
        servers.start_http()
        assert servers.start_nfs() == ""
        image = tmp_path / "nfs" / "img"
        assert image.is_symlink() and os.readlink(image) == ".images/img@1"
        assert sorted(p.name for p in image.iterdir()) == sorted(sums)

        def digest(name: str) -> str:
            h = hashlib.sha256()
            with open(image / name, "rb") as f:
                while block := f.read(3 * MiB + 17):  # odd sizes: reads straddle the server's read limit
                    h.update(block)
            return h.hexdigest()
        with ThreadPoolExecutor(6) as pool:
            got = dict(zip(sums, pool.map(digest, sums)))
        assert got == sums
        with open(image / "part0.bin", "rb") as f:
            f.seek(5 * MiB + 3)
            assert f.read(10) == (version / "part0.bin").read_bytes()[5 * MiB + 3:5 * MiB + 13]
        assert link.client_bytes() > sum(9 * MiB for _ in sums)  # it all came over the veth
    finally:
        servers.close()
        link.close()
    assert not os.path.ismount(tmp_path / "nfs")


def test_the_mount_is_read_only(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    (store / "a.bin").write_bytes(b"x" * 1000)
    link = Link()
    servers = Servers(link, store, tmp_path / "nfs")
    try:
        assert servers.start_nfs() == ""
        with pytest.raises(OSError) as refused:
            open(tmp_path / "nfs" / "a.bin", "r+b")
        assert refused.value.errno in (errno.EROFS, errno.EACCES)
        with pytest.raises(OSError) as missing:
            open(tmp_path / "nfs" / "nothing.bin", "rb")
        assert missing.value.errno == errno.ENOENT
        assert (store / "a.bin").read_bytes() == b"x" * 1000
    finally:
        servers.close()
        link.close()


def test_reads_go_on_after_the_server_expired_an_idle_connection(tmp_path: Path) -> None:
    """libnfs renews no NFSv4 lease: after an idle spell longer than the lease the mount reconnects and reads on."""
    store = tmp_path / "store"
    store.mkdir()
    first, second = os.urandom(3 * MiB), os.urandom(3 * MiB)
    (store / "first.bin").write_bytes(first)
    (store / "second.bin").write_bytes(second)
    link = Link()
    servers = Servers(link, store, tmp_path / "nfs", lease_seconds=3)
    try:
        assert servers.start_nfs() == ""
        assert (tmp_path / "nfs" / "first.bin").read_bytes() == first
        time.sleep(12)  # several leases, and ganesha's reaper pass
        assert (tmp_path / "nfs" / "second.bin").read_bytes() == second
    finally:
        servers.close()
        link.close()


def test_a_chunk_store_of_thousands_of_files_reads_whole(tmp_path: Path) -> None:
    """A deploy opens each chunk once: the mount keeps a few open, not every one (with every one kept open ganesha
    answered NFS4ERR_IO after some tens of thousands)."""
    store = tmp_path / "store"
    sums = {}
    for n in range(40000):
        path = store / f"{n % 256:02x}" / f"{n:05}.zst"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = n.to_bytes(4, "little") * 8
        path.write_bytes(data)
        sums[path.relative_to(store)] = data
    link = Link()
    servers = Servers(link, store, tmp_path / "nfs")
    try:
        assert servers.start_nfs() == ""
        mount = tmp_path / "nfs"

        def same(name: Path) -> bool:
            return (mount / name).read_bytes() == sums[name]
        with ThreadPoolExecutor(8) as pool:
            assert all(pool.map(same, sums))
        assert "nfsfuse:" not in servers.fuse_log_tail()  # no call failed, none was tried again
    finally:
        servers.close()
        link.close()


def test_one_file_read_by_many_at_once_reads_whole(tmp_path: Path) -> None:
    """A chunked image names some chunks many times (empty ranges), read by several threads at once: a second NFSv4
    OPEN of a file by the same client moves its state on (NFS4ERR_OLD_STATEID for reads with the first's)."""
    store = tmp_path / "store"
    store.mkdir()
    data = os.urandom(200_000)
    (store / "zeros.zst").write_bytes(data)
    link = Link()
    servers = Servers(link, store, tmp_path / "nfs")
    try:
        assert servers.start_nfs() == ""

        def same(_: int) -> bool:
            return (tmp_path / "nfs" / "zeros.zst").read_bytes() == data
        with ThreadPoolExecutor(8) as pool:
            assert all(pool.map(same, range(400)))
        assert "nfsfuse:" not in servers.fuse_log_tail()
    finally:
        servers.close()
        link.close()
