"""The Multicast pages: starting a session with the CLI's fields and checks, the sessions list, one session's
clients and why, "start now" and cancel; technicians may do all of it. No receiver ever joins here, so a
session stays waiting (the sending itself is tests/server_stub/test_multicast.py's)."""
import time

import pytest

from tests.server_stub.test_multicast import published


@pytest.fixture
def ready(console, tmp_path):
    """Image img published on node "node" (a local directory), hosts pc0…pc2."""
    store = console.store
    images = tmp_path / "images"
    images.mkdir()
    store.add_storage("node", "10.0.0.1:/images", rsync_target=str(images))
    store.add_image("img", group="default")
    store.db.execute("UPDATE images SET captured = ?", time.time())
    published(images, "img", {"d1p1.pcl.zst": b"one", "d1p2.pcl.zst": b"two"})
    for i in range(3):
        store.add_host(f"52:54:00:00:00:0{i}", f"pc{i}")
    return store


def start(browser, **fields):
    form = {"image": "img", "hosts": ["pc0", "pc1"], "hosts_text": "", "min_receivers": "", "max_wait": "300",
            "rate": "", "interface": "lo", "disk": "", "after": "reboot"}
    form.update(fields)
    return browser.post("/multicast", form)


def test_start_list_show_go_cancel(console, ready):
    done = start(console, hosts=["pc0"], hosts_text="pc2", min_receivers="1", rate="200m")
    assert done.status == 303
    [session] = ready.sessions()
    assert done.location.startswith(f"/multicast/{session['id']}?")
    assert ([c["host"] for c in session["clients"]], session["min_receivers"], session["rate"],
            session["interface"], session["max_wait"]) == (["pc0", "pc2"], 1, 200_000_000, "lo", 300)

    row = console.get("/multicast").by_id(f"session-{session['id']}").rows()[0]
    assert row[1].startswith("img") and row[2] == "waiting" and row[3] == "0 / 2"
    page = console.get(f"/multicast/{session['id']}")
    clients = page.by_id("session-clients").rows()
    assert [(c[0], c[1]) for c in clients] == [("pc0", "queued"), ("pc2", "queued")]

    assert console.post(f"/multicast/{session['id']}/go").status == 303
    assert ready.session(session["id"])["go"] == 1
    page = console.get(f"/multicast/{session['id']}")
    assert not page.doc.has_id(f"go-session-{session['id']}") and page.doc.has_id(f"cancel-session-{session['id']}")

    assert console.post(f"/multicast/{session['id']}/cancel").status == 303
    after = ready.session(session["id"])
    assert after["state"] == "canceled" and {ready.task(c["task_id"])["state"] for c in after["clients"]} == {"canceled"}
    # a stale page: the session ended already; said on the session's page, never a 500
    stale = console.post(f"/multicast/{session['id']}/go")
    assert stale.status == 409 and "canceled, not waiting" in stale.by_id("session-error").text
    stale = console.post(f"/multicast/{session['id']}/cancel")
    assert stale.status == 409 and "canceled already" in stale.by_id("session-error").text
    assert console.post("/multicast/999/cancel").status == 404
    assert console.get("/multicast/99999999999999999999999").status == 404


@pytest.mark.parametrize("fields, field, words, status", [
    ({"hosts": [], "hosts_text": ""}, "hosts", "pick the hosts", 400),
    ({"hosts": ["pc0"], "hosts_text": "pc0"}, "hosts", "give each host once", 400),
    ({"hosts": [], "hosts_text": "pc0, nobody"}, "hosts", "no host 'nobody'", 404),
    ({"min_receivers": "3"}, "min_receivers", "min_receivers must be 1…2", 400),
    ({"min_receivers": "two"}, "min_receivers", "whole number", 400),
    ({"max_wait": "-1"}, "max_wait", "max_wait is whole seconds", 400),
    ({"max_wait": "9" * 30}, "max_wait", "far too large", 400),
    ({"rate": "fast"}, "rate", "rate 'fast'", 400),
    ({"interface": "eth0;reboot"}, "interface", "not a network interface name", 400),
    ({"disk": "sda"}, "disk", "not a disk selector", 400),
    ({"image": "nothing"}, "image", "no image 'nothing'", 404),
])
def test_start_refusals_shown_next_to_the_field(console, ready, fields, field, words, status):
    refused = start(console, **fields)
    assert refused.status == status
    assert words in refused.by_id(f"start-session-{field}-error").text
    assert ready.sessions() == [] and ready.tasks() == []  # all or nothing
    typed = refused.form("start-session-form").form_values()
    assert typed["interface"] == fields.get("interface", "lo")  # what was typed stays


def test_a_busy_host_refuses_the_whole_session(console, ready):
    ready.add_task("pc1", "inventory", None)
    refused = start(console)
    assert refused.status == 409 and "pc1" in refused.by_id("start-session-hosts-error").text
    assert ready.sessions() == []


def test_technician_runs_sessions(technician, ready):
    assert start(technician, hosts=["pc1"]).status == 303
    [session] = ready.sessions()
    assert technician.post(f"/multicast/{session['id']}/cancel").status == 303
    assert ready.session(session["id"])["state"] == "canceled"


def test_empty_states(console):
    page = console.get("/multicast")
    assert "No multicast session yet" in page.by_id("main").text
    assert "No captured image yet" in page.by_id("main").text and not page.doc.has_id("start-session-form")


def test_client_states_and_reasons_shown(console, ready):
    start(console, hosts=["pc0", "pc1"], min_receivers="1")
    [session] = ready.sessions()
    t0, t1 = (c["task_id"] for c in session["clients"])
    ready.multicast_checkin(ready.task(t0), "10.0.0.10")
    ready.multicast_ready(t0)
    ready.multicast_checkin(ready.task(t1), "10.0.0.11")
    ready.db.execute("UPDATE multicast_clients SET state = 'dropped', reason = 'dropped by udp-sender' "
                     "WHERE task_id = ?", t1)
    rows = {r[0]: r for r in console.get(f"/multicast/{session['id']}").by_id("session-clients").rows()}
    assert rows["pc0"][1] == "ready" and rows["pc0"][3] == "10.0.0.10"
    assert rows["pc1"][1] == "dropped" and rows["pc1"][5] == "dropped by udp-sender"
