"""The Reports page, and the task history on a host's and an image's page: the whole app over a real Store."""
import time
import urllib.parse

import pytest

from tests.server_stub.console.conftest import ADMIN_TOKEN
from tests.server_stub.console.test_multicast import ready, start  # noqa: F401 (ready: a fixture)


def setup(store):
    store.add_storage("main", "10.0.0.1:/images")
    store.add_image("win10", "main")
    store.add_host("52:54:00:00:00:01", "pc1")
    store.add_host("52:54:00:00:00:02", "pc2")
    capture = store.add_task("pc1", "capture", "win10", queued_by="alice")
    store.start_task(capture["id"])
    store.finish_task(capture["id"], {"raw_bytes": 3 * 1024 ** 3})
    with store.db.transaction():
        store.db.execute("UPDATE tasks SET started = finished - 100 WHERE id = ?", capture["id"])
    wipe = store.add_task("pc2", "wipe", None, options={"mode": "fast"})  # queued_by unknown (as before issue 16)
    store.start_task(wipe["id"])
    store.fail_task(wipe["id"], {"code": "disk_not_found", "message": "no disk matches"}, "log")
    return capture["id"], wipe["id"]


def test_the_reports_page_filters_the_history_and_links_its_csv(technician):
    capture, wipe = setup(technician.store)
    page = technician.get("/reports")
    assert page.status == 200
    rows = page.by_id("history").rows()
    assert [(r[0], r[1], r[2], r[3], r[5]) for r in rows] == [(str(wipe), "wipe", "failed", "pc2", "unknown"),
                                                              (str(capture), "capture", "done", "pc1", "alice")]
    assert rows[1][7:10] == ["1 min 40 s", "3.0 GiB", "30.7 MiB/s"] and rows[0][-1] == "disk_not_found no disk matches"
    assert page.by_id("history-csv").get("href") == "/api/reports/tasks.csv"
    narrowed = technician.get("/reports", {"image": "win10", "since": "2000-01-01"})
    assert [r[0] for r in narrowed.by_id("history").rows()] == [str(capture)]
    link = narrowed.by_id("history-csv").get("href")
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(link).query) == {"image": ["win10"], "since": ["2000-01-01"]}
    exported = technician.get(link)  # the link works in the signed-in browser
    assert exported.status == 200 and exported.headers["Content-Type"].startswith("text/csv")
    assert exported.text.count("\r\n") == 2 and ",alice," in exported.text
    empty = technician.get("/reports", {"until": "2000-01-01"})
    assert empty.by_id("history-empty").text == "No tasks match."


@pytest.mark.parametrize("query, field, status", [({"since": "soon"}, "since", 400), ({"until": "2026-02-31"}, "until", 400),
                                                  ({"host": "nope"}, "host", 404), ({"image": "nope"}, "image", 404),
                                                  ({"offset": "-5"}, "offset", 400)])
def test_a_bad_filter_is_said_next_to_its_field(technician, query, field, status):
    setup(technician.store)
    page = technician.get("/reports", query)
    assert page.status == status
    assert page.by_id("history-error").get("role") == "alert"
    if field != "offset":
        assert page.by_id(f"history-{field}").get("aria-invalid") == "true"
    assert page.by_id("storage-images").rows()  # the storage report still shown


def test_the_history_pages(technician, monkeypatch):
    from server_stub.console import reports
    monkeypatch.setattr(reports, "PAGE_SIZE", 1)
    capture, wipe = setup(technician.store)
    first = technician.get("/reports")
    assert [r[0] for r in first.by_id("history").rows()] == [str(wipe)]
    second = technician.get(first.by_id("history-older").get("href"))
    assert [r[0] for r in second.by_id("history").rows()] == [str(capture)]
    assert second.by_id("history-newer").get("href") == "/reports"


def test_the_storage_report_says_unknown_for_a_node_it_cannot_see(technician, tmp_path):
    store = technician.store
    store.add_storage("main", "10.0.0.1:/images", rsync_target=str(tmp_path))
    store.add_storage("far", "10.0.0.2:/images", rsync_target="rsync://10.0.0.2/images/")
    (tmp_path / ".chunks" / "ab").mkdir(parents=True)
    (tmp_path / ".chunks" / "ab" / ("ab" + "0" * 62 + ".zst")).write_bytes(b"c" * 3000)
    nodes = {r[0]: r for r in technician.get("/reports").by_id("storage-nodes").rows()}
    assert nodes["far"][3:] == ["–", "unknown", "unknown"]   # chunk store, free, size
    assert nodes["main (master)"][3] == "2.9 KiB"
    assert nodes["main (master)"][4].endswith("B") and nodes["main (master)"][4] != "unknown"


def test_host_and_image_pages_show_their_history_with_who_queued(console):
    capture, wipe = setup(console.store)
    host = console.get("/hosts/pc1").by_id("host-tasks").rows()
    assert [(r[0], r[5], r[8]) for r in host] == [(str(capture), "alice", "3.0 GiB")]
    assert console.get("/hosts/pc1").by_id("host-tasks-csv").get("href") == "/api/reports/tasks.csv?host=pc1"
    image = console.get("/images/win10").by_id("image-tasks").rows()
    assert [(r[0], r[3]) for r in image] == [(str(capture), "pc1")]


@pytest.mark.parametrize("path, form", [("/tasks", {"hosts": "pc3"}), ("/hosts/queue", {"host": "pc3"}),
                                        ("/hosts/pc3/tasks", {})])
def test_a_task_queued_in_the_console_names_the_signed_in_user(technician, path, form):
    """The three places the console queues a task: the tasks page, ticked hosts, a host's own page."""
    setup(technician.store)
    technician.store.add_host("52:54:00:00:00:03", "pc3")
    done = technician.post(path, {"type": "inventory", "after": "reboot", **form})
    assert done.status == 303, done.text[:500]
    active = technician.store.active_task_for_mac("52:54:00:00:00:03")
    assert active is not None and active["queued_by"] == "tech"
    page = technician.get("/hosts/pc3")
    assert page.by_id("host-tasks").rows()[0][5] == "tech"


def test_the_reports_page_needs_a_sign_in(anonymous):
    page = anonymous.get("/reports")
    assert page.status == 302 and page.location.startswith("/signin")


def test_a_multicast_session_names_who_started_it_in_the_console_and_the_api(technician, ready):  # noqa: F811
    assert start(technician, hosts=["pc0"]).status == 303
    assert technician.store.active_task_for_mac("52:54:00:00:00:00")["queued_by"] == "tech"
    made = technician.request("POST", "/api/multicast", json={"image": "img", "hosts": ["pc1"], "interface": "lo"},
                              headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert made.status == 201, made.text
    assert technician.store.active_task_for_mac("52:54:00:00:00:01")["queued_by"] == "admin"


def test_a_tasks_page_says_who_queued_it(technician):
    capture, wipe = setup(technician.store)
    assert technician.get(f"/tasks/{capture}").by_id("task-queued-by").text == "by alice"
    assert technician.get(f"/tasks/{wipe}").by_id("task-queued-by").text == "by an admin"  # before issue 16
