"""A deploy's three figures (issue 17): reused, fetched and wrote bytes in its progress reports and its result,
checked (whole bytes ≥ 0, else 400 and nothing kept), kept in the task record, shown in the task's record,
the live updates, the reports' rows and CSV. Over the real app and a real Store."""
from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from server_stub.console.live import task_text, task_update
from server_stub.deployfigures import figures_of, figures_text
from server_stub.cli_format import human_size
from tests.server_stub.console.conftest import Browser, ConsoleHarness, console, console_harness  # noqa: F401
from tests.server_stub.test_accounts import call
from tests.server_stub.test_api_imageserve import api

GIB, MIB = 1 << 30, 1 << 20
FIGURES = {"reused_bytes": 3 * GIB, "fetched_bytes": 30 * MIB, "wrote_bytes": 2 * GIB}


def running_deploy(harness: ConsoleHarness) -> tuple[int, dict[str, str]]:
    store = harness.store
    store.add_storage("nas", "10.0.0.1:/images")
    store.add_image("inc", storage="nas", format_="chunked")
    store.db.execute("UPDATE images SET captured = 1")
    store.add_host("52:54:00:00:00:01", "pc1")
    task = store.add_task("pc1", "deploy", "inc")
    token = {"Authorization": f"Bearer {task['token']}"}
    assert api(harness, "POST", f"/api/tasks/{task['id']}/checkin", {}, token)[0] == 200
    return task["id"], token


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True, None, [1], {"n": 1}])
def test_a_figure_that_is_not_whole_bytes_is_refused_and_nothing_kept(console_harness: ConsoleHarness,
                                                                      bad: Any) -> None:
    task_id, token = running_deploy(console_harness)
    good = {"percent": 10.0, **FIGURES}
    assert api(console_harness, "POST", f"/api/tasks/{task_id}/progress", good, token)[0] == 200
    for key in FIGURES:
        status, refused = api(console_harness, "POST", f"/api/tasks/{task_id}/progress",
                              {"percent": 20.0, **FIGURES, key: bad}, token)
        assert status == 400 and refused["details"]["field"] == f"progress.{key}", refused
        status, refused = api(console_harness, "POST", f"/api/tasks/{task_id}/done",
                              {"result": {**FIGURES, key: bad}}, token)
        assert status == 400 and refused["details"]["field"] == f"result.{key}", refused
    task = console_harness.store.task(task_id)
    assert task["state"] == "running" and task["progress"] == good  # neither report was kept


def test_a_figure_past_sqlites_integers_is_refused(console_harness: ConsoleHarness) -> None:
    task_id, token = running_deploy(console_harness)
    status, refused = api(console_harness, "POST", f"/api/tasks/{task_id}/progress", {"wrote_bytes": 2**63}, token)
    assert status == 400 and console_harness.store.task(task_id)["progress"] is None, refused


def test_the_task_record_keeps_them_and_every_face_shows_them(console_harness: ConsoleHarness,
                                                              console: Browser) -> None:  # noqa: F811
    task_id, token = running_deploy(console_harness)
    progress = {"stage": "d1p1", "percent": 50.0, "reused_bytes": GIB, "fetched_bytes": 0, "wrote_bytes": 5 * MIB}
    assert api(console_harness, "POST", f"/api/tasks/{task_id}/progress", progress, token)[0] == 200
    running = console_harness.store.task(task_id)
    assert task_text(running)["figures"] == "reused 1.0 GiB, fetched 0 B, wrote 5.0 MiB"
    update = task_update(running)
    assert (update["reused_bytes"], update["fetched_bytes"], update["wrote_bytes"]) == (GIB, 0, 5 * MIB)
    assert "reused 1.0 GiB" in console.get("/").by_id(f"task-{task_id}").text  # dashboard

    assert api(console_harness, "POST", f"/api/tasks/{task_id}/done",
               {"result": {"raw_bytes": 5 * GIB, **FIGURES}}, token)[0] == 200
    status, shown = api(console_harness, "GET", f"/api/tasks/{task_id}")
    assert status == 200 and {k: shown["result"][k] for k in FIGURES} == FIGURES
    page = console.get(f"/tasks/{task_id}")
    assert page.by_id("task-figures").text == "reused 3.0 GiB, fetched 30.0 MiB, wrote 2.0 GiB"  # the result's

    status, report = api(console_harness, "GET", "/api/reports/tasks")
    [row] = [r for r in report["rows"] if r["id"] == task_id]
    assert {k: row[k] for k in FIGURES} == FIGURES
    status, text, _ = call(console_harness, "GET", "/api/reports/tasks.csv", headers=api_headers())
    header, *rows = list(csv.reader(io.StringIO(text)))
    [line] = [r for r in rows if r[0] == str(task_id)]
    assert [line[header.index(k)] for k in FIGURES] == [str(v) for v in FIGURES.values()]


def test_other_tasks_have_no_figures(console_harness: ConsoleHarness, console: Browser) -> None:  # noqa: F811
    task_id, token = running_deploy(console_harness)
    assert api(console_harness, "POST", f"/api/tasks/{task_id}/done", {"result": {"raw_bytes": 5}}, token)[0] == 200
    task = console_harness.store.task(task_id)
    assert task_text(task)["figures"] == "" and task_update(task)["reused_bytes"] is None
    assert not console.get(f"/tasks/{task_id}").doc.has_id("task-figures")
    status, report = api(console_harness, "GET", "/api/reports/tasks")
    assert [(r["reused_bytes"], r["fetched_bytes"], r["wrote_bytes"]) for r in report["rows"]] == [(None, None, None)]


def test_the_words_and_which_report_wins() -> None:
    assert figures_text(FIGURES, human_size) == "reused 3.0 GiB, fetched 30.0 MiB, wrote 2.0 GiB"
    assert figures_text({"wrote_bytes": 512}, human_size) == "wrote 512 B"
    assert figures_of({"raw_bytes": 1}, {"wrote_bytes": 7}) == {"wrote_bytes": 7}  # a failed deploy: its last report
    assert figures_of({"wrote_bytes": 9}, {"wrote_bytes": 7}) == {"wrote_bytes": 9}  # the result first
    assert figures_of(None, "junk", {"reused_bytes": -5, "fetched_bytes": True}) == {}  # stored junk is not shown


def api_headers() -> dict[str, str]:
    from tests.server_stub.test_accounts import BEARER
    return BEARER
