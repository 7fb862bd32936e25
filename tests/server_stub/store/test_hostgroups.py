"""Host groups in the store: memberships (several groups per host, kept in step with hosts.group_name), the
state at a glance, and one task queued for a group with its busy hosts skipped."""
import json
import sqlite3

import pytest

from server_stub.errors import Conflict, Invalid, NotFound
from server_stub.groupqueue import host_groups
from server_stub.store import Store
from server_stub.store import hostgroups as hostgroups_module
from server_stub.store.schema import MIGRATIONS, SCHEMA


@pytest.fixture
def groups(store):
    return host_groups(store)


def test_a_host_is_in_several_groups_and_leaves_one(store, groups):
    groups.add_group("lab3", "the room at the end")
    groups.add_group("windows")
    groups.add_members("lab3", ["pc1", "52:54:00:aa:bb:02"])
    groups.add_members("windows", ["pc1"])
    groups.add_members("windows", ["pc1"])  # again: still once
    assert groups.groups_of_host("pc1") == ["lab3", "windows"]
    assert [m["name"] for m in groups.group_detail("lab3")["members"]] == ["pc1", "pc2"]
    assert groups.group("windows")["hosts"] == 1
    groups.remove_members("lab3", ["pc1"])
    assert groups.groups_of_host("pc1") == ["windows"]
    with pytest.raises(Invalid, match="pc1 is not in group lab3"):
        groups.remove_members("lab3", ["pc1"])
    with pytest.raises(NotFound, match="no host 'pc9'"):
        groups.add_members("lab3", ["pc9"])
    assert [m["name"] for m in groups.group_detail("lab3")["members"]] == ["pc2"]  # the refused call added none


def test_group_names_are_checked_unique_and_bounded(store, groups, monkeypatch):
    groups.add_group("lab3")
    with pytest.raises(Conflict, match="exists already") as exc:
        groups.add_group("lab3")
    assert exc.value.details["field"] == "name"
    with pytest.raises(Invalid, match="group name 'lab 3'"):
        groups.add_group("lab 3")
    with pytest.raises(Invalid, match="description"):
        groups.add_group("lab4", "x" * 501)
    monkeypatch.setattr(hostgroups_module, "MAX_GROUPS", 2)
    groups.add_group("lab4")
    with pytest.raises(Conflict, match="holds 2 host groups already"):
        groups.add_group("lab5")
    monkeypatch.setattr(hostgroups_module, "MAX_HOSTS_PER_CALL", 1)
    with pytest.raises(Invalid, match="at most 1 hosts"):
        groups.add_members("lab3", ["pc1", "pc2"])


def test_registration_group_is_a_membership_and_follows_edits_renames_and_removal(store, groups):
    host = store.register_host("52:54:00:aa:bb:03", {}, name="pc3", group="lab3")
    assert host["group_name"] == "lab3"
    assert groups.groups_of_host("pc3") == ["lab3"]  # the group was created by the registration
    groups.add_group("windows")
    groups.add_members("windows", ["pc3"])
    store.edit_host("pc3", {"group": "lab4"})   # the old registration group is left, others stay
    assert groups.groups_of_host("pc3") == ["lab4", "windows"]
    groups.edit_group("lab4", new_name="lab-4", description="moved")
    assert store.host("pc3")["group_name"] == "lab-4" and groups.groups_of_host("pc3") == ["lab-4", "windows"]
    groups.remove_members("lab-4", ["pc3"])
    assert store.host("pc3")["group_name"] is None and groups.groups_of_host("pc3") == ["windows"]
    groups.remove_group("windows")
    assert groups.groups_of_host("pc3") == [] and store.host("pc3")["name"] == "pc3"
    store.remove_host("pc3")  # memberships go with the host
    assert groups.group("lab-4")["hosts"] == 0


def test_migration_turns_existing_group_names_into_groups(tmp_path):
    path = str(tmp_path / "old.sqlite3")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(SCHEMA)
    for number, script in enumerate(MIGRATIONS[:10], start=1):
        conn.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")
    for i, group in enumerate(("lab3", "lab3", None, "office"), start=1):
        conn.execute("INSERT INTO hosts(mac, name, created, group_name) VALUES (?, ?, ?, ?)",
                     (f"52:54:00:00:00:0{i}", f"pc{i}", float(i), group))
    conn.close()
    store = Store(path)
    try:
        groups = host_groups(store)
        assert [(g["name"], g["hosts"]) for g in groups.groups()] == [("lab3", 2), ("office", 1)]
        assert groups.groups_of_host("pc3") == []
    finally:
        store.close()


def test_state_at_a_glance_counts_hosts_by_their_latest_task(store, groups):
    store.add_host("52:54:00:aa:bb:03", "pc3")
    store.add_host("52:54:00:aa:bb:04", "pc4")
    groups.add_group("lab3")
    groups.add_members("lab3", ["pc1", "pc2", "pc3", "pc4"])
    failed = store.add_task("pc1", "inventory", None)
    store.start_task(failed["id"])
    store.fail_task(failed["id"], {"code": "disk_not_found", "message": "no disk"}, "log")
    running = store.add_task("pc2", "inventory", None)
    store.start_task(running["id"])
    store.add_host("52:54:00:aa:bb:05", "pc5")
    groups.add_members("lab3", ["pc5"])
    store.add_task("pc5", "wipe", None, options={"mode": "fast"})
    queued = store.add_task("pc3", "inventory", None)
    state = groups.group("lab3")
    assert {k: state[k] for k in ("hosts", "idle", "queued", "running", "failed")} == \
        {"hosts": 5, "idle": 2, "queued": 2, "running": 1, "failed": 1}
    assert state["last_task"] is not None and state["last_task"]["id"] == queued["id"]
    assert state["last_task"]["host"] == "pc3" and state["last_task"]["state"] == "queued"
    assert groups.groups() == [state]
    members = {m["name"]: m for m in groups.group_detail("lab3")["members"]}
    assert members["pc1"]["last_state"] == "failed" and members["pc1"]["task_id"] is None
    assert members["pc2"]["task_state"] == "running" and members["pc4"]["last_task_id"] is None


def test_queue_for_group_skips_busy_hosts_and_checks_options_first(store, groups):
    store.add_host("52:54:00:aa:bb:03", "pc3")
    groups.add_group("lab3")
    groups.add_members("lab3", ["pc1", "pc2", "pc3"])
    busy = store.add_task("pc2", "inventory", None)
    done = groups.queue_for_group("lab3", "wipe", None, options={"mode": "fast"}, after="poweroff",
                                  queued_by="alice")
    assert sorted(t["host"] for t in done["queued"]) == ["pc1", "pc3"]
    assert all(t["options"] == {"mode": "fast"} and t["after"] == "poweroff" for t in done["queued"])
    assert done["skipped"] == [{"host": "pc2", "task_id": busy["id"],
                                "reason": f"has a queued inventory task ({busy['id']})"}]
    # Every host busy now: nothing queued, all skipped, no refusal; a bad option is still refused.
    again = groups.queue_for_group("lab3", "inventory", None)
    assert again["queued"] == [] and len(again["skipped"]) == 3
    with pytest.raises(Invalid, match="after must"):
        groups.queue_for_group("lab3", "inventory", None, after="explode")
    with pytest.raises(Invalid, match="wipe task needs options"):
        groups.queue_for_group("lab3", "wipe", None)


def test_queue_for_group_is_all_or_none_and_refuses_an_empty_group(store, groups):
    groups.add_group("empty")
    with pytest.raises(Invalid, match="has no hosts"):
        groups.queue_for_group("empty", "inventory", None)
    groups.add_group("lab3")
    groups.add_members("lab3", ["pc1", "pc2"])
    with pytest.raises(Conflict, match="never been captured"):
        groups.queue_for_group("lab3", "deploy", "win10")
    assert store.tasks() == []  # neither host got a task
    with pytest.raises(NotFound):
        groups.queue_for_group("nosuch", "inventory", None)
    assert json.dumps(groups.groups())  # the answers are plain JSON
