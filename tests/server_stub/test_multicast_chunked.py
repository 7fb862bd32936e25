"""Multicast of a chunked image: a real imager-server in its own namespace sends a chunked partition as one stream
(header and bitmap, then the chunks as stored, written into udp-sender's stdin by server_stub/chunkfeed.py) to
two udp-receivers in two other namespaces; a damaged store is refused before anyone is queued; a cancel leaves
no sender, no pipe and no writer behind.  Namespaces come from tests/server_stub/test_multicast.py's Net."""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import zstandard

from contract import chunkindex
from contract.chunkindex import Chunk, ChunkIndex
from server_stub import multicast
from server_stub.config import ServerConfig
from server_stub.errors import Invalid
from server_stub.udpcast import SenderOptions, SenderProcess, sender_argv
from tests.server_stub.chunkfiles import BLOCK, GRID, chunk_path, partclone_header, store_chunk
from tests.server_stub.test_multicast import (MACS, NEEDS, Net, clients, join, sender_alive, serve_captured_image,
                                              store_with_image, wait_session)

VERSION = "img@20260101T000000-abcdef"


def chunked_image(root: Path, ranges: int, seed: int = 0) -> tuple[ChunkIndex, bytes]:
    """A chunked version of ``ranges`` full ranges of random blocks, plus a stream partition; (its index, the
    partclone stream the index stands for)."""
    blocks = [os.urandom(GRID * BLOCK) for _ in range(ranges)]
    bitmap = b"\xff" * ranges + b"\0\0\0\0"
    index = ChunkIndex(partclone_header(ranges * GRID, ranges * GRID), bitmap, GRID, [])
    for i, data in enumerate(blocks):
        name = store_chunk(str(root), data)
        index.chunks.append(Chunk(i, GRID, os.path.getsize(chunk_path(str(root), name)), name))
    chunkindex.check(index, "test")
    vdir = root / ".images" / VERSION
    vdir.mkdir(parents=True)
    (vdir / "d1p1.cidx").write_bytes(chunkindex.encode(index))
    (vdir / "d1p2.pcl.zst").write_bytes(zstandard.ZstdCompressor().compress(b"stream" * 1000))
    parts = [{"number": 1, "file": "d1p1.cidx", "chunks": {"grid_blocks": GRID, "count": ranges, "new_bytes": 0}},
             {"number": 2, "file": "d1p2.pcl.zst"}]
    (vdir / "manifest.json").write_text(json.dumps({"disks": [{"partitions": parts}]}))
    (root / "img").symlink_to(f".images/{VERSION}")
    return index, index.header + index.bitmap + b"".join(blocks)


@pytest.fixture
def store(tmp_path):
    s, images = store_with_image(tmp_path)
    s.index, s.raw = chunked_image(images, 4)
    s.images = images
    yield s
    s.close()


def test_a_chunked_partition_is_sent_as_its_index_name_and_a_damaged_store_is_named(store):
    _, image_dir, _ = multicast.local_image(store, store.image("img"))
    files = multicast.image_files(json.loads(Path(image_dir, "manifest.json").read_text()))
    assert files == ["d1p1.cidx", "d1p2.pcl.zst"]
    multicast.check_chunked(image_dir, files)             # whole: nothing to say
    gone = store.index.chunks[2].sha256
    os.unlink(chunk_path(str(store.images), gone))
    with pytest.raises(Invalid, match=f"d1p1.cidx names chunks the store lacks \\({gone}\\)"):
        multicast.check_chunked(image_dir, files)
    Path(image_dir, "d1p1.cidx").write_bytes(b"not an index")
    with pytest.raises(Invalid, match="d1p1.cidx is too short to be a chunk index"):
        multicast.check_chunked(image_dir, files)


def test_an_index_removed_after_the_session_was_created_fails_it_with_the_name(store, tmp_path):
    store.add_host("52:54:00:00:00:01", "pc0")
    image = store.image("img")
    node, image_dir, version = multicast.local_image(store, image)
    session = store.add_session(image, ["pc0"], min_receivers=None, max_wait=60, rate=None, interface="eth0",
                                image_dir=image_dir, version=version, files=["d1p1.cidx", "d1p2.pcl.zst"],
                                storage_id=node["id"])
    os.unlink(Path(image_dir, "d1p1.cidx"))
    manager = multicast.MulticastManager(store, ServerConfig(admin_token="t", boot_dir=str(tmp_path),
                                                             data_dir=str(tmp_path)))
    result, error = asyncio.run(manager._send(session, 0, "d1p1.cidx", 1, max_wait=10))
    assert not result.ok and result.returncode is None   # no udp-sender was started
    assert error is not None and error.startswith("d1p1.cidx cannot be sent: [Errno 2]"), error
    assert manager.senders == {}


@pytest.mark.root
@pytest.mark.skipif(bool(NEEDS), reason=f"missing {NEEDS}")
@pytest.mark.timeout(60)
def test_a_sender_fed_on_stdin_left_by_a_dead_server_is_found_by_its_directory(store, tmp_path):
    """No --file on its command line: the restarted server knows it by its working directory (the image's)."""
    _, image_dir, _ = multicast.local_image(store, store.image("img"))
    read_fd, write_fd = os.pipe()
    argv = sender_argv(SenderOptions(interface="lo", min_receivers=1, start_timeout=30))
    sender = SenderProcess(argv, stdin=read_fd, cwd=image_dir)
    try:
        sender.start()
        os.close(read_fd)
        assert sender_alive(sender.pid, settle=0.5)
        manager = multicast.MulticastManager(store, ServerConfig(admin_token="t", boot_dir=str(tmp_path),
                                                                 data_dir=str(tmp_path)))
        other = dict(image_dir=str(tmp_path / "elsewhere"), sender_pid=sender.pid)
        manager._kill_orphan(other)    # another image's directory: not ours, kept
        assert sender_alive(sender.pid, settle=0.5)
        manager._kill_orphan(dict(image_dir=image_dir, sender_pid=sender.pid))
        assert sender.wait(5).returncode == -9
    finally:
        sender.stop()
        os.close(write_fd)


@pytest.fixture
def net(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    index, raw = chunked_image(images, 200)   # 6.25 MiB of random blocks: ~13 s at 4 Mbit/s
    with Net(tmp_path) as net:
        serve_captured_image(net, images)
        net.index, net.raw, net.images = index, raw, images
        yield net


def server_pipes(net) -> int:
    """Pipes the server process holds open (a ChunkFeed holds two while it sends)."""
    fd_dir = Path(f"/proc/{net.server.pid}/fd")
    return sum(os.readlink(fd_dir / fd).startswith("pipe:") for fd in os.listdir(fd_dir))


def start(net, **body):
    s = net.call("POST", "/api/multicast", {"image": "img", "hosts": ["pc0", "pc1"], "min_receivers": 2,
                                            "interface": "eth0", "max_wait": 60, **body})
    assert s["state"] == "waiting" and s["files"] == ["d1p1.cidx", "d1p2.pcl.zst"], s
    tasks = {}
    for host, where in (("pc0", "r1"), ("pc1", "r2")):
        task_id, token, _ = join(net, s, host, where)
        tasks[host] = where
        net.call("POST", f"/api/tasks/{task_id}/ready", {}, token=token, where=where)
    return wait_session(net, s["id"], lambda s: s["state"] != "waiting"), tasks


@pytest.mark.root
@pytest.mark.skipif(bool(NEEDS), reason=f"missing {NEEDS}")
@pytest.mark.timeout(180)
def test_a_chunked_partition_reaches_two_receivers_as_partclones_stream(net):
    pipes = server_pipes(net)
    s, tasks = start(net)
    assert s["state"] == "sending", s
    out = net.tmp / "out"
    out.mkdir()
    for i, name in enumerate(s["files"]):
        procs = [net.receiver(where, s["portbase"] + 2 * i, out / f"{host}.{name}") for host, where in tasks.items()]
        for proc in procs:
            assert proc.wait(60) == 0, proc.stderr.read().decode(errors="replace")[-400:]
    s = wait_session(net, s["id"], lambda s: s["state"] != "sending")
    assert s["state"] == "done", s
    want = hashlib.sha256(net.raw).hexdigest()
    for host in tasks:
        received = zstandard.ZstdDecompressor().stream_reader(open(out / f"{host}.d1p1.cidx", "rb"),
                                                              read_across_frames=True).read()
        assert hashlib.sha256(received).hexdigest() == want, host   # header + bitmap + every chunk, in order
        stored = (out / f"{host}.d1p1.cidx").read_bytes()            # the chunks travel as stored
        first = chunk_path(str(net.images), net.index.chunks[0].sha256)
        assert Path(first).read_bytes() in stored
    assert server_pipes(net) == pipes      # the writer's pipe is gone with its sender


@pytest.mark.root
@pytest.mark.skipif(bool(NEEDS), reason=f"missing {NEEDS}")
@pytest.mark.timeout(120)
def test_cancel_mid_chunked_stream_leaves_no_sender_pipe_or_writer(net):
    pipes = server_pipes(net)
    s, tasks = start(net, rate="4m")
    receivers = [net.receiver(where, s["portbase"], net.tmp / f"partial.{host}") for host, where in tasks.items()]
    s = wait_session(net, s["id"], lambda s: s.get("sender_pid") and " bytes" in (s.get("detail") or "")
                     and int(s["detail"].split(": ")[1].split()[0]) > 0)
    pid = s["sender_pid"]
    assert server_pipes(net) >= pipes + 2     # the feed's pipe (and udp-sender's stderr) while it sends
    s = net.call("POST", f"/api/multicast/{s['id']}/cancel")
    assert s["state"] == "canceled" and {c["task_state"] for c in s["clients"]} == {"canceled"}
    assert not sender_alive(pid, settle=3)
    deadline = time.monotonic() + 10
    while server_pipes(net) != pipes and time.monotonic() < deadline:
        time.sleep(0.2)
    assert server_pipes(net) == pipes, "a pipe of the chunk writer outlived the cancel"
    for receiver in receivers:
        assert receiver.wait(40) != 0      # silence mid-stream: never a "complete" disk
    assert clients(net, s)["pc0"]["task_state"] == "canceled"
    assert not list(Path(net.tmp / "data").rglob("*.cidx*")), "no copy of the stream on the server's disk"
    assert subprocess.run(["pgrep", "-P", str(net.server.pid), "udp-sender"], capture_output=True).returncode == 1
