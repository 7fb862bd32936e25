"""The issue's test: a capture and a garbage collection at the same time, with the real capture (partclone of an
ext4 on a loop device, chunked) and the real collector, each in its own thread.

v1 is captured chunked, then its version removed: every chunk of the store is unreferenced, and made two hours
old. v2 (v1 with a small change, so it needs most of v1's chunks again) is captured while the collector runs
again and again with the real one-hour grace. Each run quarantines what no index names and is old; the capture
touches each chunk it reuses before it names it, writes again any it finds gone, takes back any still in the
trash before publishing. v2 must publish whole: every chunk its indexes name is in the store and decompresses to
bytes whose SHA-256 is its name, and ``imager verify`` passes."""
from __future__ import annotations

import hashlib
import os
import shutil
import threading
import time

import pytest
import zstandard

from contract import chunkindex
from imager.ops.capture import capture_image
from imager.progress import Progress
from imager.verify import verify_image
from server_stub.chunkgc import GcReport, collect
from tests.disktools import attached, mounted
from tests.imager.ops.test_capture_deploy_on_loop_devices import make_disk

pytestmark = pytest.mark.root
MiB = 1024 * 1024


def all_chunks(store):
    found = []
    for folder, dirs, files in os.walk(store / ".chunks"):
        dirs[:] = [d for d in dirs if not d.startswith(".")]  # not the trash
        found += [os.path.join(folder, f) for f in files if f.endswith(".zst")]
    return found


def test_a_capture_and_a_collection_at_the_same_time(tmp_path):
    make_disk(tmp_path / "source.img", "gpt")
    store = tmp_path / "store"
    store.mkdir()
    with attached(tmp_path / "source.img") as source:
        v1 = capture_image(source, str(store), "img", Progress(), image_type="multipart", image_format="chunked")
        # v1 removed: its version and its link go, its chunks stay, unnamed, and two hours old
        os.unlink(store / "img")
        shutil.rmtree(store / ".images" / v1["version"])
        old = time.time() - 2 * 3600
        v1_chunks = all_chunks(store)
        assert len(v1_chunks) > 50
        for path in v1_chunks:
            os.utime(path, (old, old))
        with mounted(f"{source}p2", readonly=False) as root:  # a small change: most chunks are needed again
            with open(root / "file2.bin", "r+b") as f:
                f.seek(MiB)
                f.write(os.urandom(64 * 1024))

        reports: list[GcReport] = []
        errors: list[BaseException] = []
        capturing = threading.Event()
        capturing.set()

        def in_flight():
            return any(name.endswith(chunkindex.PARTIAL_SUFFIX)
                       for _dir, _dirs, files in os.walk(store / ".images") for name in files)

        def spread(_paths):  # a run's renames spread over the capture's time, not all before its first reuse
            time.sleep(0.002)

        def collector():
            try:
                while capturing.is_set() and not in_flight():  # the capture has named its first chunks
                    time.sleep(0.001)
                while capturing.is_set():
                    reports.append(collect(str(store), now=time.time(), grace=3600, on_candidates=spread))
            except BaseException as exc:  # reported by the test below
                errors.append(exc)

        gc = threading.Thread(target=collector)
        gc.start()
        try:
            v2 = capture_image(source, str(store), "img", Progress(), image_type="multipart", image_format="chunked")
        finally:
            capturing.clear()
            gc.join(60)
    assert not errors, errors
    # The race happened: runs went on during the capture and took v1's unused chunks into the trash.
    assert len(reports) >= 2 and sum(r.quarantined for r in reports) > 0, reports

    version_dir = store / ".images" / v2["version"]
    assert os.readlink(store / "img") == f".images/{v2['version']}"
    indexes = sorted(p for p in os.listdir(version_dir) if p.endswith(chunkindex.INDEX_SUFFIX))
    assert len(indexes) == 2
    named = {n for index in indexes for n in chunkindex.names_in(str(version_dir / index))}
    decompressor = zstandard.ZstdDecompressor()
    for name in named:
        with open(store / chunkindex.chunk_relpath(name), "rb") as f:
            data = decompressor.decompress(f.read(), max_output_size=64 * MiB)
        assert hashlib.sha256(data).hexdigest() == name
    assert all(check.ok for check in verify_image(str(version_dir))), verify_image(str(version_dir))

    # And later runs keep every chunk v2 needs: only what no version names goes.
    for _ in range(2):
        collect(str(store), now=time.time() + 2 * 3600, grace=3600)
    assert all(os.path.exists(store / chunkindex.chunk_relpath(n)) for n in named)
    assert not os.listdir(store / ".chunks" / ".trash")
