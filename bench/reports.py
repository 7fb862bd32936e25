"""The history and its CSV export at a large site's scale: 100,000 finished tasks over 2,000 hosts and 20 images
(a school's nightly lab redeploys for years). Times one history page per host / image / date range, the
largest export (10,000 rows) to CSV, and the refusal past it, over a real Store in a temporary directory.

    .venv/bin/python bench/reports.py [--tasks N]
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server_stub.errors import Invalid  # noqa: E402
from server_stub.reports_csv import history_csv  # noqa: E402
from server_stub.store import Store  # noqa: E402
from server_stub.store.reports import HistoryFilter, Reports  # noqa: E402

HOSTS, IMAGES = 2000, 20


def fill(store: Store, tasks: int) -> None:
    store.add_storage("main", "10.0.0.1:/images")
    rng = random.Random(16)
    now = time.time()
    with store.db.transaction():
        for i in range(IMAGES):
            store.db.execute("INSERT INTO images(name, storage_id, group_id, created, captured) "
                             "VALUES (?, 1, 1, ?, ?)", f"img{i}", now, now)
        for i in range(HOSTS):
            store.db.execute("INSERT INTO hosts(mac, name, created) VALUES (?, ?, ?)",
                             f"52:54:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}", f"pc{i}", now)
        for i in range(tasks):
            created = now - (tasks - i) * 600
            failed = rng.random() < 0.05
            store.db.execute(
                "INSERT INTO tasks(host_id, type, image_id, state, token, created, started, finished, result, error, "
                "queued_by) VALUES (?, 'deploy', ?, ?, 't', ?, ?, ?, ?, ?, ?)", rng.randrange(HOSTS) + 1,
                rng.randrange(IMAGES) + 1, "failed" if failed else "done", created, created + 60, created + 400,
                None if failed else json.dumps({"raw_bytes": rng.randrange(10 << 30)}),
                json.dumps({"code": "disk_too_small", "message": "the disk is too small"}) if failed else None,
                rng.choice(["alice", "bob", "admin", "schedule lab-3"]))


def timed(what: str, run, repeat: int = 5):  # type: ignore[no-untyped-def]
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    print(f"{what:58s} {best * 1000:8.1f} ms")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(str(Path(tmp) / "store.sqlite3"))
        fill(store, args.tasks)
        reports = Reports(store.db, store.hosts_repo, store.versions_repo)
        print(f"{args.tasks} tasks, {HOSTS} hosts, {IMAGES} images")
        timed("a host's history, first page (100 rows)", lambda: reports.task_history(HistoryFilter(host="pc7")))
        timed("an image's history, first page (100 rows)", lambda: reports.task_history(HistoryFilter(image="img3")))
        since = time.time() - 30 * 86400
        timed("every task of the last 30 days, first page", lambda: reports.task_history(HistoryFilter(since=since)))
        timed("every task, page 900 (offset 90,000)", lambda: reports.task_history(HistoryFilter(), 90_000, 100))
        window = HistoryFilter(since=time.time() - 69 * 86400)  # ~9,900 tasks: under the export bound
        rows = timed("export: the rows of ~10,000 tasks", lambda: reports.history_export(window), 3)
        text = timed(f"export: {len(rows)} rows as CSV", lambda: history_csv(rows), 3)
        print(f"{'CSV size':58s} {len(text.encode()) / 2**20:8.1f} MiB")

        def refused() -> str:
            try:
                reports.history_export(HistoryFilter())
            except Invalid as exc:
                return exc.message
            return "not refused"
        print("past the bound:", timed("export of every task, refused (counted only)", refused))
        store.close()


if __name__ == "__main__":
    main()
