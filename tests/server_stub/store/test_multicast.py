import time

import pytest

from server_stub.errors import Conflict, Invalid
from server_stub.store.multicast import portbase_for


@pytest.fixture
def session(store):
    store.db.execute("UPDATE images SET captured = ?", time.time())
    image = store.image("win10")
    return store.add_session(image, ["pc1", "pc2"], min_receivers=None, max_wait=60, rate=None, interface=None,
                             image_dir="/srv/images/win10", version="win10@1", files=["d1p1.img"],
                             storage_id=image["storage_id"])


def test_a_session_creates_one_queued_multicast_task_per_host(store, session):
    assert session["portbase"] == portbase_for(session["id"]) and session["min_receivers"] == 2
    assert [(c["host"], c["state"], c["task_state"]) for c in session["clients"]] == [
        ("pc1", "queued", "queued"), ("pc2", "queued", "queued")]
    assert {t["type"] for t in store.tasks()} == {"multicast"}


def test_a_busy_host_leaves_no_session_and_no_task(store):
    store.db.execute("UPDATE images SET captured = ?", time.time())
    store.add_task("pc2", "inventory", None)
    image = store.image("win10")
    with pytest.raises(Conflict, match="pc2"):
        store.add_session(image, ["pc1", "pc2"], min_receivers=None, max_wait=60, rate=None, interface=None,
                          image_dir="/x", version="v", files=["f"], storage_id=image["storage_id"])
    assert store.sessions() == [] and [t["type"] for t in store.tasks()] == ["inventory"]


def test_bad_session_settings_are_refused(store):
    image = store.image("win10")
    with pytest.raises(Invalid, match="min_receivers"):
        store.add_session(image, ["pc1"], min_receivers=2, max_wait=60, rate=None, interface=None,
                          image_dir="/x", version="v", files=["f"], storage_id=image["storage_id"])


def test_checkin_joins_a_waiting_session_and_runs_the_task_through_the_transition(store, session):
    task = store.active_task_for_mac("52:54:00:aa:bb:01")
    running, answer = store.multicast_checkin(task, "10.0.0.5")
    assert running["state"] == "running" and running["started"] and running["storage"] is None
    assert answer["client"] == "joined" and answer["files"] == [{"file": "d1p1.img", "portbase": session["portbase"]}]
    assert store.multicast_ready(task["id"])["client"] == "ready"


def test_a_client_after_the_sending_began_falls_back_to_unicast_from_the_session_node(store, session):
    first = store.active_task_for_mac("52:54:00:aa:bb:01")
    store.multicast_checkin(first, "10.0.0.5")
    store.multicast_ready(first["id"])
    assert [c["host"] for c in store.multicast_sending(session["id"])] == ["pc1"]
    late = store.active_task_for_mac("52:54:00:aa:bb:02")
    task, answer = store.multicast_checkin(late, "10.0.0.6")
    assert answer["fallback"] is True and "deploying by unicast" in answer["reason"]
    assert task["storage"] == "main"


def test_cancel_ends_the_clients_tasks_but_not_a_fallback_one_nor_a_finished_one(store, session):
    pc1 = store.active_task_for_mac("52:54:00:aa:bb:01")
    pc2 = store.active_task_for_mac("52:54:00:aa:bb:02")
    store.multicast_checkin(pc1, "10.0.0.5")
    store.multicast_ready(pc1["id"])
    store.multicast_sending(session["id"])
    store.multicast_checkin(pc2, "10.0.0.6")  # falls back: its unicast deploy goes on
    ended = store.multicast_end(session["id"], "canceled")
    assert ended["state"] == "canceled"
    canceled = store.task(pc1["id"])
    assert canceled["state"] == "canceled" and canceled["finished"]
    assert canceled["error"] == {"code": "multicast_canceled", "message": f"multicast session {session['id']} canceled"}
    assert store.task(pc2["id"])["state"] == "running"
    with pytest.raises(Conflict, match="canceled already"):
        store.multicast_end(session["id"], "canceled")


def test_a_restart_fails_the_sending_sessions_receivers(store, session):
    pc1 = store.active_task_for_mac("52:54:00:aa:bb:01")
    store.multicast_checkin(pc1, "10.0.0.5")
    store.multicast_ready(pc1["id"])
    store.multicast_sending(session["id"])
    assert [r["id"] for r in store.multicast_interrupted()] == [session["id"]]
    failed = store.task(pc1["id"])
    assert failed["state"] == "failed" and failed["error"]["code"] == "multicast_interrupted"
    assert store.session(session["id"])["state"] == "failed"
    assert store.task(store.active_task_for_mac("52:54:00:aa:bb:02")["id"])["state"] == "queued"
