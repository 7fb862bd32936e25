"""The Schedules pages: the list with next runs in the server's time zone, adding a schedule (hosts or a group,
cron or once), refusals next to their field, a schedule's page with its runs, edit, pause, resume and delete;
technicians pause and resume only. Runs are driven through the app's own Scheduler with a fake clock."""
import time
from zoneinfo import ZoneInfo

import pytest

from server_stub.cron import parse_local_time
from server_stub.schedulesapi import SCHEDULER

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
def fleet(console):
    store = console.store
    store.add_storage("node", "10.0.0.1:/images")
    store.add_image("win10", group="default")
    store.db.execute("UPDATE images SET captured = ?", time.time())
    for i in range(3):
        store.add_host(f"52:54:00:00:00:0{i}", f"pc{i}")
    store.edit_host("pc0", {"group": "lab3"})
    store.edit_host("pc1", {"group": "lab3"})
    scheduler = console.app[SCHEDULER]
    scheduler.zone = BERLIN
    clock = {"now": parse_local_time("2026-12-02 12:00", BERLIN)}
    scheduler.clock = lambda: clock["now"]
    scheduler.waker = None
    return scheduler, clock


def add(browser, **fields):
    form = {"name": "lab3-nightly", "type": "deploy", "image": "win10", "mode": "fast", "hosts": [],
            "hosts_text": "", "group": "lab3", "rule": "0 2 * * sun", "at": "", "disk": "", "partition": "",
            "after": "reboot", "wake": "on", "catch_up": "60"}
    form.update(fields)
    return browser.post("/schedules", [(k, v) for k, v in form.items() if v is not None])


def test_add_list_run_show_pause_resume_edit_delete(console, fleet):
    scheduler, clock = fleet
    done = add(console)
    assert done.status == 303 and "next run 2026-12-06 02:00 CET" in done.notice
    [schedule] = console.store.schedules_repo.schedules()
    assert done.location.startswith(f"/schedules/{schedule['id']}?")
    assert (schedule["group"], schedule["wake"], schedule["catch_up"]) == ("lab3", True, 3600)

    row = console.get("/schedules").by_id(f"schedule-{schedule['id']}").rows()[0]
    assert row[:6] == ["lab3-nightly", "active", "0 2 * * sun", "2026-12-06 02:00 CET", "deploy win10", "group lab3"]

    clock["now"] = parse_local_time("2026-12-06 02:00", BERLIN)
    [run] = scheduler.tick()
    page = console.get(f"/schedules/{schedule['id']}")
    [shown] = page.by_id("schedule-runs").rows()
    assert shown[1] == "queued" and shown[2] == " ".join(f"#{t}" for t in run["task_ids"])
    assert page.by_id("schedule-next").text == "2026-12-13 02:00 CET"
    assert page.form("edit-schedule").form_values()["group"] == "lab3"

    assert console.post(f"/schedules/{schedule['id']}/pause").status == 303
    assert console.get("/schedules").by_id(f"schedule-{schedule['id']}").rows()[0][1] == "paused"
    stale = console.post(f"/schedules/{schedule['id']}/pause")
    assert stale.status == 409 and "paused already" in stale.by_id("schedule-error").text
    assert console.post(f"/schedules/{schedule['id']}/resume").status == 303

    form = console.get(f"/schedules/{schedule['id']}").form("edit-schedule").form_values()
    form.update({"group": "", "hosts": ["pc2"], "rule": "30 22 * * mon-fri", "after": "poweroff", "wake": None})
    saved = console.post(f"/schedules/{schedule['id']}", [(k, v) for k, v in form.items() if v is not None])
    assert saved.status == 303 and "next run 2026-12-07 22:30 CET" in saved.notice
    edited = console.store.schedules_repo.schedule("lab3-nightly")
    assert (edited["hosts"], edited["group"], edited["after"], edited["wake"]) == (["pc2"], None, "poweroff", False)

    gone = console.post(f"/schedules/{schedule['id']}/delete")
    assert gone.status == 303 and console.store.schedules_repo.schedules() == []
    assert console.post(f"/schedules/{schedule['id']}/delete").status == 404
    assert console.get("/schedules/nothing").status == 404
    actions = [(e["action"], e["target"], e["outcome"]) for e in console.store.accounts.audit_page()[0]]
    assert ("console: add schedule", "lab3-nightly", "303") in actions
    assert ("console: pause schedule", str(schedule["id"]), "409") in actions
    assert ("console: delete schedule", str(schedule["id"]), "303") in actions


def test_once_with_typed_hosts(console, fleet):
    done = add(console, name="inv", type="inventory", image="", group="", hosts_text="pc1, pc2", rule="",
               at="2026-12-24T18:00", wake=None)
    assert done.status == 303
    schedule = console.store.schedules_repo.schedule("inv")
    assert (schedule["hosts"], schedule["run_at"], schedule["wake"]) == \
        (["pc1", "pc2"], parse_local_time("2026-12-24 18:00", BERLIN), False)


@pytest.mark.parametrize("fields, field, words, status", [
    ({"rule": "0 2 * *"}, "rule", "five fields", 400),
    ({"rule": ""}, "rule", "give a cron rule or a time", 400),
    ({"at": "2026-12-24T18:00"}, "rule", "not both", 400),
    ({"rule": "", "at": "2020-01-01T00:00"}, "at", "is past", 400),
    ({"group": "", "hosts": []}, "hosts", "give the hosts or a group", 400),
    ({"hosts": ["pc2"]}, "hosts", "not both", 400),
    ({"group": "", "hosts_text": "nobody"}, "hosts", "no host 'nobody'", 404),
    ({"image": ""}, "image", "no image ''", 404),
    ({"type": "inventory"}, "image", "names no image", 400),
    ({"catch_up": "soon"}, "catch_up", "whole number", 400),
    ({"catch_up": "100000"}, "catch_up", "catch_up is seconds", 400),
    ({"disk": "sda"}, "disk", "not a disk selector", 400),
    ({"partition": "0"}, "partition", "partition is a number", 400),
    ({"name": "a b"}, "name", "schedule name 'a b'", 400),
    ({"type": "wipe", "image": "", "mode": "everything"}, "mode", "a wipe task needs options", 400),
])
def test_refusals_shown_next_to_the_field(console, fleet, fields, field, words, status):
    refused = add(console, **fields)
    assert refused.status == status
    assert words in refused.by_id(f"add-schedule-{field}-error").text
    assert console.store.schedules_repo.schedules() == []
    assert refused.form("add-schedule").form_values()["name"] == fields.get("name", "lab3-nightly")  # typed: kept


def test_a_technician_pauses_and_resumes_only(console, technician, fleet):
    assert add(console).status == 303
    [schedule] = console.store.schedules_repo.schedules()
    page = technician.get("/schedules")
    assert not page.doc.has_id("add-schedule") and not page.doc.has_id(f"delete-schedule-{schedule['id']}")
    assert technician.post(f"/schedules/{schedule['id']}/pause").status == 303
    assert technician.post(f"/schedules/{schedule['id']}/resume").status == 303
    assert technician.post(f"/schedules/{schedule['id']}/delete").status == 403
    assert add(technician, name="mine").status == 403
    assert technician.post(f"/schedules/{schedule['id']}", {"name": "renamed"}).status == 403
    assert technician.post(f"/schedules/{schedule['id']}/pause", csrf=False).status == 403
    assert [s["name"] for s in console.store.schedules_repo.schedules()] == ["lab3-nightly"]


def test_nav_link(console, fleet):
    link = console.get("/schedules").doc.find("a", href="/schedules", **{"aria-current": "page"})
    assert link is not None and link.text == "Schedules"
