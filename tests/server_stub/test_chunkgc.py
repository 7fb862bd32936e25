"""The chunk store's collector on real files: what it keeps, what it quarantines, what it deletes and when."""
from __future__ import annotations

import os
import time

import pytest

from server_stub import chunkgc
from server_stub.chunkgc import GcBusy, GcError, collect
from tests.server_stub.chunkfiles import age, block_of, chunk_path, store_chunk, write_version

HOUR = 3600.0


@pytest.fixture
def node(tmp_path):
    root = str(tmp_path / "node")
    os.makedirs(os.path.join(root, ".images"))
    return root


def chunks(root, seeds, old=2 * HOUR, now=None):
    """Stored chunks, their mtime ``old`` seconds before ``now``."""
    now = now if now is not None else time.time()
    names = [store_chunk(root, block_of(s)) for s in seeds]
    for name in names:
        age(chunk_path(root, name), old, now)
    return names


def trashed(root, name):
    return os.path.join(root, ".chunks", ".trash", name + ".zst")


def test_an_unreferenced_old_chunk_is_quarantined_then_deleted_by_the_next_run(node):
    now = time.time()
    kept, dropped = chunks(node, ["kept", "dropped"], now=now)
    write_version(node, "win@1", [kept])
    first = collect(node, now=now)
    assert (first.marked, first.quarantined, first.deleted, first.trash_chunks) == (1, 1, 0, 1)
    assert not os.path.exists(chunk_path(node, dropped)) and os.path.exists(trashed(node, dropped))
    size = os.path.getsize(trashed(node, dropped))
    second = collect(node, now=now + 60)
    assert (second.deleted, second.freed_bytes, second.trash_chunks) == (1, size, 0)
    assert not os.path.exists(trashed(node, dropped))
    assert os.path.exists(chunk_path(node, kept))


def test_a_chunk_named_only_by_a_capture_in_flight_is_kept(node):
    now = time.time()
    in_flight, = chunks(node, ["in flight"], now=now)
    write_version(node, "win@2", [in_flight], suffix=".cidx.partial")
    for _ in range(2):
        report = collect(node, now=now)
        assert (report.marked, report.quarantined, report.deleted) == (1, 0, 0)
    assert os.path.exists(chunk_path(node, in_flight))


def test_an_empty_partial_index_names_nothing_yet(node):
    now = time.time()
    old, = chunks(node, ["old"], now=now)
    folder = os.path.join(node, ".images", "win@2")
    os.makedirs(folder)
    open(os.path.join(folder, "d1p1.cidx.partial"), "wb").close()  # the capture opened it, wrote nothing yet
    assert collect(node, now=now).quarantined == 1


def test_a_recent_unreferenced_chunk_is_kept(node):
    now = time.time()
    recent, = chunks(node, ["recent"], old=HOUR - 60, now=now)
    old, = chunks(node, ["old"], old=HOUR + 60, now=now)
    report = collect(node, now=now)
    assert report.quarantined == 1
    assert os.path.exists(chunk_path(node, recent)) and not os.path.exists(chunk_path(node, old))


def test_a_chunk_touched_between_listing_and_rename_goes_back(node):
    now = time.time()
    reused, unused = chunks(node, ["reused", "unused"], now=now)

    listed = []

    def capture_reuses(paths):  # a capture's os.utime of a chunk it reuses, between the listing and the renames
        listed.extend(paths)
        if chunk_path(node, reused) in paths:
            os.utime(chunk_path(node, reused))

    report = collect(node, now=now, on_candidates=capture_reuses)
    assert chunk_path(node, reused) in listed
    assert (report.quarantined, report.restored, report.trash_chunks) == (2, 1, 1)
    assert os.path.exists(chunk_path(node, reused)) and not os.path.exists(trashed(node, reused))
    assert os.path.exists(trashed(node, unused))


def test_the_trash_is_deleted_only_if_still_unmarked(node):
    now = time.time()
    comes_back, stays_unused = chunks(node, ["comes back", "stays unused"], now=now)
    assert collect(node, now=now).quarantined == 2
    write_version(node, "win@3", [comes_back])  # e.g. a replica copied an index naming it meanwhile
    report = collect(node, now=now + 60)
    assert (report.recovered, report.deleted, report.trash_chunks) == (1, 1, 0)
    assert os.path.exists(chunk_path(node, comes_back))
    assert not os.path.exists(trashed(node, stays_unused)) and not os.path.exists(chunk_path(node, stays_unused))


def test_a_chunk_quarantined_again_waits_for_the_next_run(node):
    """Written again after its first quarantine (a capture found it gone) and unused again: this run moves it to
    the trash; only the next one may delete it."""
    now = time.time()
    name, = chunks(node, ["again"], now=now)
    collect(node, now=now)
    chunks(node, ["again"], now=now)
    report = collect(node, now=now + 60)
    assert (report.quarantined, report.deleted, report.trash_chunks) == (1, 0, 1)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_corrupt_index_stops_the_run_and_nothing_is_removed(node, damage):
    now = time.time()
    unused, named = chunks(node, ["unused", "named"], now=now)
    path = write_version(node, "win@4", [named])
    collect(node, now=now)  # unused is in the trash: a second run would delete it
    data = open(path, "rb").read()
    open(path, "wb").write(b"not an index at all" * 20 if damage == "garbage" else data[:-10])
    with pytest.raises(GcError, match="win@4/d1p1.cidx is not a readable chunk index"):
        collect(node, now=now + 60)
    assert os.path.exists(trashed(node, unused)) and os.path.exists(chunk_path(node, named))


def test_a_corrupt_partial_index_stops_the_run_after_reading_it_again(node, monkeypatch):
    monkeypatch.setattr(chunkgc, "READ_RETRY_WAIT", 0)
    now = time.time()
    unused, = chunks(node, ["unused"], now=now)
    folder = os.path.join(node, ".images", "win@5")
    os.makedirs(folder)
    open(os.path.join(folder, "d1p1.cidx.partial"), "wb").write(b"X" * 300)
    with pytest.raises(GcError, match="d1p1.cidx.partial is not a readable chunk index"):
        collect(node, now=now)
    assert os.path.exists(chunk_path(node, unused))


def test_no_images_directory_means_no_collection(tmp_path):
    root = str(tmp_path / "elsewhere")
    name = store_chunk(root, block_of("x"))
    age(chunk_path(root, name), 2 * HOUR, time.time())
    with pytest.raises(GcError, match="no .images/ directory"):
        collect(root, now=time.time())
    assert os.path.exists(chunk_path(root, name))


def test_no_store_nothing_to_do(node):
    assert collect(node, now=time.time()) == chunkgc.GcReport(seconds=0.0)


def test_stray_temporary_files_older_than_a_day_go_unknown_files_stay(node):
    now = time.time()
    name, = chunks(node, ["x"], old=60, now=now)
    folder = os.path.dirname(chunk_path(node, name))
    stale, fresh, unknown = (os.path.join(folder, n) for n in (f".{name}.zst.123", f".{name}.zst.456", "README"))
    for path in (stale, fresh, unknown):
        open(path, "w").close()
    age(stale, 25 * HOUR, now)
    age(unknown, 25 * HOUR, now)
    report = collect(node, now=now)
    assert report.temp_removed == 1
    assert not os.path.exists(stale) and os.path.exists(fresh) and os.path.exists(unknown)


def test_one_run_at_a_time_per_node(node):
    import fcntl
    chunks(node, ["x"])
    with open(os.path.join(node, ".chunks", ".gc.lock"), "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(GcBusy, match="another garbage collection is running"):
            collect(node, now=time.time())


def test_an_index_being_published_is_covered_by_its_partial(node):
    """A capture writes the whole .cidx, then unlinks its partial: a run that finds the .cidx half written reads
    the partial instead."""
    now = time.time()
    named, unused = chunks(node, ["named", "unused"], now=now)
    whole = write_version(node, "win@6", [named])
    write_version(node, "win@6", [named], suffix=".cidx.partial")
    with open(whole, "r+b") as f:
        f.truncate(40)  # the capture is writing it
    report = collect(node, now=now)
    assert (report.indexes, report.marked, report.quarantined) == (1, 1, 1)
    assert os.path.exists(chunk_path(node, named))


def test_an_index_finished_while_the_run_waits_is_read_again(node, monkeypatch):
    now = time.time()
    named, = chunks(node, ["named"], now=now)
    whole = write_version(node, "win@7", [named])
    data = open(whole, "rb").read()
    open(whole, "wb").write(data[:50])  # caught half written, its partial already gone
    waits = []

    def capture_finishes(seconds):
        waits.append(seconds)
        open(whole, "wb").write(data)

    monkeypatch.setattr(chunkgc.time, "sleep", capture_finishes)
    report = collect(node, now=now)
    assert waits == [chunkgc.READ_RETRY_WAIT] and (report.marked, report.quarantined) == (1, 0)
    assert os.path.exists(chunk_path(node, named))
