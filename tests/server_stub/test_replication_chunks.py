"""Replication of a chunked version with real rsync between two local directories: the version directory, then
exactly the chunks its indexes name (none sent twice, no trash, no temporary files, no other garbage), then the
link."""
from __future__ import annotations

import asyncio
import os

import pytest

from server_stub import replication
from server_stub.replication import ReplicationError, replicate
from tests.server_stub.chunkfiles import block_of, chunk_path, store_chunk, write_version

V1, V2 = "win10@20260101T000000-aaaaaa", "win10@20260201T000000-bbbbbb"


def job(source, target):
    return {"id": 1, "image_id": 1, "source_id": 1, "node_id": 2, "state": "running", "version": None,
            "bytes": None, "error": None, "created": 0.0, "started": None, "finished": None, "image": "win10",
            "source": "m", "node": "n1", "source_target": str(source) + "/", "node_target": str(target) + "/"}


def publish(root, version, names):
    write_version(str(root), version, names)
    with open(os.path.join(root, ".images", version, "manifest.json"), "w") as f:
        f.write('{"format": 1}\n')
    link = os.path.join(root, "win10")
    os.symlink(f".images/{version}", link + ".new")
    os.replace(link + ".new", link)


def store_files(root):
    found = set()
    for folder, _dirs, files in os.walk(os.path.join(root, ".chunks")):
        found |= {os.path.relpath(os.path.join(folder, f), root) for f in files}
    return found


@pytest.fixture
def steps(monkeypatch):
    """The rsync runs in order, each a word: version, chunks, link, prune (real rsync still runs)."""
    seen = []
    real = replication.run_rsync

    async def recorded(argv, on_bytes=None):
        word = ("chunks" if any(a.startswith("--files-from") for a in argv) else "prune" if "--delete" in argv
                and "-r" in argv else "version" if "--delete" in argv else "link")
        seen.append(word)
        return await real(argv, on_bytes)

    monkeypatch.setattr(replication, "run_rsync", recorded)
    return seen


def test_a_chunked_version_brings_exactly_its_chunks_before_its_link(tmp_path, steps):
    source, target = tmp_path / "m", tmp_path / "n1"
    target.mkdir()
    shared = [store_chunk(str(source), block_of(f"shared {i}")) for i in range(20)]
    garbage = store_chunk(str(source), block_of("garbage: no index names it"))
    os.makedirs(source / ".chunks" / ".trash")
    (source / ".chunks" / ".trash" / (garbage + ".zst")).write_bytes(b"quarantined")
    (source / ".chunks" / shared[0][:2] / f".{shared[0]}.zst.4242").write_bytes(b"a writer's temporary file")
    publish(source, V1, shared)

    version, copied = asyncio.run(replicate(job(source, target)))
    assert version == V1 and steps == ["version", "chunks", "link", "prune"]
    assert store_files(target) == {os.path.relpath(chunk_path(str(target), n), target) for n in shared}
    assert os.readlink(target / "win10") == f".images/{V1}"
    for name in shared:
        assert open(chunk_path(str(target), name), "rb").read() == open(chunk_path(str(source), name), "rb").read()
    first_bytes = copied

    # v2: two new chunks, the rest shared: only the new ones cross; the old version goes from the node.
    kept = os.stat(chunk_path(str(target), shared[5]))
    new = [store_chunk(str(source), block_of(f"new {i}")) for i in range(2)]
    publish(source, V2, shared[:18] + new)
    steps.clear()
    version, copied = asyncio.run(replicate(job(source, target)))
    assert version == V2 and steps == ["version", "chunks", "link", "prune"]
    new_bytes = sum(os.path.getsize(chunk_path(str(source), n)) for n in new)
    index_bytes = os.path.getsize(source / ".images" / V2 / "d1p1.cidx") + len('{"format": 1}\n')
    assert copied == new_bytes + index_bytes < first_bytes
    assert os.stat(chunk_path(str(target), shared[5])).st_ino == kept.st_ino  # not sent again
    assert os.listdir(target / ".images") == [V2]
    assert os.readlink(target / "win10") == f".images/{V2}"


def test_a_chunk_missing_on_the_source_fails_the_job_before_the_link(tmp_path, steps):
    source, target = tmp_path / "m", tmp_path / "n1"
    target.mkdir()
    names = [store_chunk(str(source), block_of(f"c {i}")) for i in range(3)]
    publish(source, V1, names)
    os.unlink(chunk_path(str(source), names[1]))
    with pytest.raises(ReplicationError, match=f"{V1} needs chunk {names[1]}, which the source's store lacks"):
        asyncio.run(replicate(job(source, target)))
    assert steps == ["version"] and not os.path.lexists(target / "win10")


def test_a_stream_version_has_no_chunk_step(tmp_path, steps):
    source, target = tmp_path / "m", tmp_path / "n1"
    target.mkdir()
    os.makedirs(source / ".images" / V1)
    (source / ".images" / V1 / "d1p1.ext4.zst").write_bytes(b"stream")
    os.symlink(f".images/{V1}", source / "win10")
    asyncio.run(replicate(job(source, target)))
    assert steps == ["version", "link", "prune"] and not (target / ".chunks").exists()
