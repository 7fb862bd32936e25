"""Multicast of a chunked image with the real parts (root): a chunked capture of a loop disk; the server's chunk
writer (server_stub/chunkfeed.py) feeding udp-sender in one network namespace; two clients running the
multicast op (udp-receiver → zstd → each chunk checked against the index → partclone) in two others, each onto
its own loop disk.  Namespaces: the ``lan`` fixture of tests/server_stub/test_udpcast.py (torn down on every path).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from contract import chunkindex
from contract.manifest import multicast_streams
from imager import imagestore, manifest
from imager.chunkstore import LocalChunks
from imager.ops.capture import capture_image
from imager.progress import Progress
from server_stub.chunkfeed import ChunkFeed
from server_stub.udpcast import SenderOptions, SenderProcess, SenderResult, sender_argv
from tests.imager.ops.test_capture_deploy_on_loop_devices import blank, make_disk
from tests.imager.ops.test_multicast_on_loop_devices import CLIENT, REPO, SENDER_IP, stop_senders
from tests.imager.test_chunked_on_loop_devices import device_stream_sha, image_stream_sha
from tests.qemu.lab import attached, read_disk
from tests.server_stub.test_udpcast import NEEDS, lan  # noqa: F401  (the namespaces fixture)

pytestmark = [pytest.mark.root, pytest.mark.timeout(300),
              pytest.mark.skipif(bool(NEEDS), reason=f"missing {NEEDS}")]
PORTBASE = 9400


@pytest.fixture(scope="module")
def chunked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path]:
    """(the node's root, the version directory, a copy of the source disk) of a chunked two-partition capture."""
    work = tmp_path_factory.mktemp("mcchunked")
    make_disk(work / "source.img", "gpt")
    (work / "store").mkdir()
    with attached(work / "source.img") as source:
        capture_image(source, str(work / "store"), "mc", Progress(), image_type="multipart", image_format="chunked")
    image_dir = imagestore.resolve(str(work / "store"), "mc")
    assert multicast_streams(manifest.load(image_dir)) == ["d1p1.cidx", "d1p2.cidx"]
    return work / "store", image_dir, work / "source.img"


def send_and_receive(lan: Any, root: Path, image_dir: str, targets: list[str]) -> dict[str, Any]:
    """One session as the server runs it (a ChunkFeed into each chunked file's udp-sender), the client op on
    each target from its own namespace."""
    hosts, spawn = lan
    version = os.path.basename(image_dir)
    files = multicast_streams(manifest.load(image_dir))
    ports = [{"file": name, "portbase": PORTBASE + 2 * i} for i, name in enumerate(files)]
    session = {"session": 1, "state": "sending", "version": version, "sender": SENDER_IP, "files": ports}
    sent: list[SenderResult] = []
    feeds: list[ChunkFeed] = []
    running: list[SenderProcess] = []
    done = threading.Event()

    def send_all() -> None:
        for entry in ports:
            if done.is_set():
                return
            feed = ChunkFeed.open(str(root), os.path.join(image_dir, entry["file"]))
            feeds.append(feed)
            options = SenderOptions(portbase=entry["portbase"], interface="eth0", min_receivers=len(targets),
                                    max_wait=20, start_timeout=30)
            sender = SenderProcess(sender_argv(options), wrapper=hosts["s"], stdin=feed.read_fd, cwd=image_dir)
            try:
                sender.start()
                feed.start()
                running.append(sender)
                sent.append(sender.wait(90))
            finally:
                sender.stop()
                feed.close()

    senders = threading.Thread(target=send_all, daemon=True)
    senders.start()
    outcomes = []
    try:
        clients = []
        for host, target in zip(("r1", "r2"), targets):
            task = {"id": 1, "type": "multicast", "disk": target, "host": {"mac": "", "name": f"pc-{host}"},
                    "image": {"name": "mc"}, "storage": {"export": "lab:/images"}, "multicast": session}
            args = {"task": task, "storage": str(root), "answer": {**session, "join": True}}
            clients.append(spawn(hosts[host] + [sys.executable, "-c", CLIENT, json.dumps(args)], cwd=REPO,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        for client in clients:
            out, err = client.communicate(timeout=200)
            line = next((l for l in out.splitlines() if l.startswith(("RESULT ", "ERROR "))), None)
            assert line is not None, f"the client printed no outcome:\n{out[-2000:]}\n{err[-2000:]}"
            kind, body = line.split(" ", 1)
            outcomes.append({kind.lower(): json.loads(body), "log": err})
    finally:   # a sender still waiting for a client is stopped, by its PID, before the namespaces go
        stop_senders(done, running, senders)
    assert not senders.is_alive()
    assert all(not feed.running and feed.read_fd == -1 for feed in feeds)   # no writer, no pipe left
    return {"clients": outcomes, "sent": sent, "feeds": feeds}


def test_a_chunked_image_by_multicast_onto_two_disks_is_exact(lan: Any, tmp_path: Path,
                                                              chunked: tuple[Path, str, Path]) -> None:
    root, image_dir, source = chunked
    version = os.path.basename(image_dir)
    images = [blank(tmp_path / f"t{i}.img", 160) for i in range(2)]   # the source's size: the same table
    with attached(images[0]) as t0, attached(images[1]) as t1:
        outcome = send_and_receive(lan, root, image_dir, [t0, t1])
        indexes = [chunkindex.read(os.path.join(image_dir, f"d1p{n}.cidx")) for n in ("1", "2")]
        chunk_bytes = sum(c.used_blocks * i.info.block_size for i in indexes for c in i.chunks)
        for client in outcome["clients"]:
            assert "result" in client, client
            result = client["result"]
            assert result["multicast"] == {"session": 1, "files": 2}
            # the deploy's three figures: nothing reused, every chunk written, the stored bytes received
            assert result["reused_bytes"] == 0 and result["wrote_bytes"] == chunk_bytes, result
            assert sum(i.stored_bytes for i in indexes) < result["fetched_bytes"] < chunk_bytes, result
        assert all(r.ok and r.bytes_sent > 0 for r in outcome["sent"]), outcome["sent"]
        assert all(feed.error is None for feed in outcome["feeds"])
        for device in (t0, t1):
            for n in ("1", "2"):   # partclone's used-block stream of each target is the image's
                assert device_stream_sha(f"{device}p{n}") == image_stream_sha(root, version, n), (device, n)
    for image in images:   # the table and every file equal the source's
        assert read_disk(image) == read_disk(source)


def test_a_damaged_chunk_fails_both_receivers_naming_it_and_leaves_the_disks_blank(
        lan: Any, tmp_path: Path, chunked: tuple[Path, str, Path]) -> None:
    root, image_dir, _ = chunked
    copy = tmp_path / "store"
    shutil.copytree(root, copy, symlinks=True)
    copied_dir = str(copy / ".images" / os.path.basename(image_dir))
    index = chunkindex.read(os.path.join(copied_dir, "d1p2.cidx"))
    victim = index.chunks[len(index.chunks) // 2].sha256
    path = Path(LocalChunks(str(copy)).path(victim))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    images = [blank(tmp_path / f"t{i}.img", 200) for i in range(2)]
    with attached(images[0]) as t0, attached(images[1]) as t1:
        outcome = send_and_receive(lan, copy, copied_dir, [t0, t1])
        for client, device in zip(outcome["clients"], (t0, t1)):
            error = client.get("error", {})
            assert error.get("code") == "checksum_mismatch", client
            assert "d1p2.cidx" in error["message"] and victim in error["message"], error
            dump = subprocess.run(["sfdisk", "--dump", device], capture_output=True, text=True)
            assert dump.returncode != 0 and "label:" not in dump.stdout, dump.stdout   # blank, not half whole
