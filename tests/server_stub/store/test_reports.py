"""History and reports over a real Store (SQLite in tmp_path) and real directories for the storage report."""
import datetime
import json
import os
import sqlite3

import pytest

from server_stub.errors import Invalid, NotFound
from server_stub.store import Store
from server_stub.store import reports as reports_module
from server_stub.store.reports import HistoryFilter, Reports, moved_bytes, parse_when
from server_stub.store.schema import MIGRATIONS, SCHEMA


def reports(store: Store) -> Reports:
    return Reports(store.db, store.hosts_repo, store.versions_repo)


def finished(store: Store, task_id: int, started: float, finished_at: float) -> None:
    """The task's times set as a run of known length would have left them."""
    with store.db.transaction():
        store.db.execute("UPDATE tasks SET started = ?, finished = ? WHERE id = ?", started, finished_at, task_id)


def run_task(store, host, type_="deploy", image="win10", queued_by="alice", result=None, error=None):
    task = store.add_task(host, type_, image if type_ in ("capture", "deploy") else None, queued_by=queued_by,
                          options={"mode": "fast"} if type_ == "wipe" else None)
    store.start_task(task["id"])
    if error is not None:
        store.record_progress(task["id"], {"bytes_done": 1000})
        store.fail_task(task["id"], error, "log")
    else:
        store.finish_task(task["id"], result or {})
    return task["id"]


@pytest.fixture
def captured(store):
    run_task(store, "pc1", "capture", result={"raw_bytes": 4_000_000, "stored_bytes": 1_000_000})
    return store


def test_a_hosts_history_has_duration_bytes_rate_result_and_who_queued(captured):
    store = captured
    deploy = run_task(store, "pc2", result={"raw_bytes": 3_000_000, "seconds": 9})
    finished(store, deploy, 1000.0, 1010.0)
    failed = run_task(store, "pc2", error={"code": "disk_too_small", "message": "the disk is too small"},
                      queued_by="bob")
    finished(store, failed, 2000.0, 2004.0)
    wipe = run_task(store, "pc2", "wipe", queued_by=None, result={"bytes_written": 500, "seconds": 1})
    rows, total = reports(store).task_history(HistoryFilter(host="pc2"))
    assert total == 3 and [r["id"] for r in rows] == [wipe, failed, deploy]  # newest first
    by_id = {r["id"]: r for r in rows}
    assert {k: by_id[deploy][k] for k in ("host", "type", "image", "state", "queued_by", "duration_s", "bytes",
                                          "rate_bps", "error_code")} == \
        {"host": "pc2", "type": "deploy", "image": "win10", "state": "done", "queued_by": "alice",
         "duration_s": 10.0, "bytes": 3_000_000, "rate_bps": 300_000.0, "error_code": None}
    # A failed task: its error, and the bytes its last progress report had moved.
    assert (by_id[failed]["state"], by_id[failed]["error_code"], by_id[failed]["error"], by_id[failed]["bytes"],
            by_id[failed]["rate_bps"], by_id[failed]["queued_by"]) == \
        ("failed", "disk_too_small", "the disk is too small", 1000, 250.0, "bob")
    assert by_id[wipe]["queued_by"] == "unknown" and by_id[wipe]["bytes"] == 500
    # The same host by MAC; an unknown host is 404.
    assert reports(store).task_history(HistoryFilter(host="52:54:00:aa:bb:02"))[1] == 3
    with pytest.raises(NotFound):
        reports(store).task_history(HistoryFilter(host="nope"))


def test_an_images_history_keeps_a_removed_images_tasks(captured):
    store = captured
    run_task(store, "pc2")
    rows, total = reports(store).task_history(HistoryFilter(image="win10"))
    assert total == 2 and {r["type"] for r in rows} == {"capture", "deploy"}
    store.remove_image("win10")
    rows, total = reports(store).task_history(HistoryFilter(image="win10"))
    assert total == 2 and {r["image"] for r in rows} == {"win10"}
    with pytest.raises(NotFound) as refused:
        reports(store).task_history(HistoryFilter(image="never-was"))
    assert "never-was" in refused.value.message


def test_since_and_until_select_by_queue_time_in_the_servers_time_zone(store):
    ids = [store.add_task(h, "inventory", None)["id"] for h in ("pc1", "pc2")]
    day = datetime.datetime(2026, 3, 10, 12, 0).astimezone().timestamp()
    with store.db.transaction():
        store.db.execute("UPDATE tasks SET created = ? WHERE id = ?", day, ids[0])
        store.db.execute("UPDATE tasks SET created = ? WHERE id = ?", day + 86400, ids[1])
    since = parse_when("2026-03-11", "since")
    assert [r["id"] for r in reports(store).task_history(HistoryFilter(since=since))[0]] == [ids[1]]
    until = parse_when("2026-03-10", "until", end_of_day=True)  # a bare date includes its day
    assert [r["id"] for r in reports(store).task_history(HistoryFilter(until=until))[0]] == [ids[0]]
    at = parse_when("2026-03-10T12:00:01", "since")
    assert [r["id"] for r in reports(store).task_history(HistoryFilter(since=at))[0]] == [ids[1]]


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01", "2026-03-10T25:00", "x" * 41, "2026-03-10 12:00 junk"])
def test_a_bad_date_is_refused_naming_the_field(text):
    with pytest.raises(Invalid) as refused:
        parse_when(text, "since")
    assert refused.value.details["field"] == "since" and "2026-12-01" in refused.value.message


def test_an_offset_in_the_time_is_honoured():
    assert parse_when("2026-03-10T12:00+02:00", "since") == datetime.datetime(
        2026, 3, 10, 10, 0, tzinfo=datetime.timezone.utc).timestamp()


def test_pages_are_bounded_and_an_export_past_its_limit_is_refused(store, monkeypatch):
    for _ in range(3):
        task = store.add_task("pc1", "inventory", None)
        store.cancel_task(task["id"])
    with pytest.raises(Invalid) as refused:
        reports(store).task_history(HistoryFilter(), 0, 1001)
    assert refused.value.details["field"] == "limit"
    rows, total = reports(store).task_history(HistoryFilter(), 1, 1)
    assert total == 3 and len(rows) == 1
    monkeypatch.setattr(reports_module, "MAX_EXPORT_ROWS", 2)
    with pytest.raises(Invalid) as refused:
        reports(store).history_export(HistoryFilter(host="pc1"))
    assert refused.value.details["reason"] == "too_many_rows" and refused.value.details["matched"] == 3
    assert "3 tasks match" in refused.value.message and "since" in refused.value.message
    monkeypatch.setattr(reports_module, "MAX_EXPORT_ROWS", 3)
    assert len(reports(store).history_export(HistoryFilter(host="pc1"))) == 3


def test_bytes_come_only_from_counts_a_client_reported():
    assert moved_bytes({"raw_bytes": 7}, None) == 7
    assert moved_bytes({"surface": {"bytes_read": 9}}, None) == 9
    assert moved_bytes({"raw_bytes": "7", "bytes_written": True}, {"bytes_done": -1}) is None
    assert moved_bytes({}, {"bytes_done": 5}) == 5


def test_tasks_from_before_the_migration_read_unknown(tmp_path):
    path = str(tmp_path / "old.sqlite3")
    old = sqlite3.connect(path)
    old.executescript(SCHEMA)
    for number, script in enumerate(MIGRATIONS[:8], start=1):
        old.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")
    old.execute("INSERT INTO hosts(mac, name, created) VALUES ('52:54:00:aa:bb:09', 'old', 1)")
    old.execute("INSERT INTO tasks(host_id, type, state, token, created) VALUES (1, 'inventory', 'done', 't', 5)")
    old.commit()
    old.close()
    store = Store(path)
    try:
        rows, _ = reports(store).task_history(HistoryFilter(host="old"))
        assert rows[0]["queued_by"] == "unknown"
    finally:
        store.close()


def test_the_storage_report_lists_versions_and_free_space_of_local_nodes(tmp_path):
    root = tmp_path / "node"
    (root / ".images" / "win10@20260101-000000").mkdir(parents=True)
    (root / ".images" / "win10@20260101-000000" / "disk.zst").write_bytes(b"x" * 3000)
    (root / ".images" / "win10@20260201-000000").mkdir()
    (root / ".images" / "win10@20260201-000000" / "disk.zst").write_bytes(b"y" * 5000)
    os.symlink(".images/win10@20260201-000000", root / "win10")
    store = Store(str(tmp_path / "store.sqlite3"))
    try:
        store.add_storage("main", "10.0.0.1:/images", rsync_target=str(root))
        store.add_storage("far", "10.0.0.2:/images", rsync_target="rsync://10.0.0.2/images/")
        store.add_image("win10", "main")
        store.add_image("empty", "main")
        report = reports(store).storage_report()
    finally:
        store.close()
    images = {i["name"]: i for i in report["images"]}
    assert [(v["version"], v["current"], v["stored_bytes"]) for v in images["win10"]["versions"]] == \
        [("win10@20260201-000000", True, 5000), ("win10@20260101-000000", False, 3000)]
    assert images["win10"]["versions_bytes"] == 8000 and images["empty"]["versions"] == []
    assert report["stored_bytes"] == 8000
    nodes = {n["name"]: n for n in report["nodes"]}
    stats = os.statvfs(root)
    assert nodes["main"]["total_bytes"] == stats.f_blocks * stats.f_frsize and nodes["main"]["master"] is True
    assert abs(nodes["main"]["free_bytes"] - stats.f_bavail * stats.f_frsize) < 64 * 1024 * 1024
    assert (nodes["far"]["free_bytes"], nodes["far"]["total_bytes"]) == (None, None)
    assert json.dumps(report)  # the API answers it as JSON


def test_a_multicast_sessions_tasks_name_who_started_it(store):
    store.db.execute("UPDATE images SET captured = 1")
    image = store.image("win10")
    session = store.add_session(image, ["pc1", "pc2"], min_receivers=None, max_wait=60, rate=None, interface=None,
                                image_dir="/srv/images/win10", version="win10@1", files=["d1p1.img"],
                                storage_id=image["storage_id"], queued_by="carol")
    rows, total = reports(store).task_history(HistoryFilter(image="win10"))
    assert total == 2 and {(r["type"], r["queued_by"]) for r in rows} == {("multicast", "carol")}
    assert len(session["clients"]) == 2


def test_a_chunked_version_counts_the_chunks_it_names_and_the_total_counts_the_store_once(tmp_path):
    """Two chunked versions naming 600 and 650 bytes of chunks in a store of 700: each version shows what it
    needs, the node its chunk store, and the total each byte on the disk once."""
    root = tmp_path / "node"
    for version, chunk_bytes in (("lab@20260101-000000", 600), ("lab@20260201-000000", 650)):
        folder = root / ".images" / version
        folder.mkdir(parents=True)
        manifest = {"disks": [{"partitions": [{"raw_bytes": 4000, "stored_bytes": chunk_bytes,
                                               "chunks": {"count": 3, "new_bytes": 100}}]}]}
        (folder / "manifest.json").write_text(json.dumps(manifest))
        (folder / "d1p1.cidx").write_bytes(b"i" * 100)
    os.symlink(".images/lab@20260201-000000", root / "lab")
    (root / ".chunks" / "ab").mkdir(parents=True)
    (root / ".chunks" / "ab" / ("ab" + "0" * 62 + ".zst")).write_bytes(b"c" * 700)
    store = Store(str(tmp_path / "store.sqlite3"))
    try:
        store.add_storage("main", "10.0.0.1:/images", rsync_target=str(root))
        store.add_image("lab", "main")
        report = reports(store).storage_report()
    finally:
        store.close()
    manifests = [len((root / ".images" / v / "manifest.json").read_bytes())
                 for v in ("lab@20260201-000000", "lab@20260101-000000")]
    versions = report["images"][0]["versions"]
    assert [(v["stored_bytes"], v["chunk_bytes"], v["raw_bytes"]) for v in versions] == \
        [(manifests[0] + 100 + 650, 650, 4000), (manifests[1] + 100 + 600, 600, 4000)]
    assert report["nodes"][0]["chunk_store_bytes"] == 700
    assert report["stored_bytes"] == sum(manifests) + 200 + 700
