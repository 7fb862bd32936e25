"""The Groups pages: groups with their state at a glance, a group's hosts in and out, one task for the group
(unicast with busy hosts skipped, or one multicast session), Wake-on-LAN buttons and targets; who may do what.
No packet leaves this machine here: no target is set, or its interface does not exist (the wire:
tests/server_stub/test_wol_netns.py)."""
import time

import pytest

from server_stub.groupqueue import host_groups
from server_stub.store.wake import WakeTargets
from tests.server_stub.test_multicast import published


@pytest.fixture
def lab(console):
    store = console.store
    store.add_storage("main", "10.0.0.1:/images")
    store.add_image("win10", "main")
    for i in range(1, 4):
        store.add_host(f"52:54:00:00:00:0{i}", f"pc{i}")
    return store


def test_groups_are_added_filled_and_shown_with_their_state(console, lab):
    assert "No host group yet" in console.get("/groups").by_id("main").text
    done = console.post("/groups", {"name": "lab3", "description": "room 3"})
    assert done.status == 303 and done.location.startswith("/groups/lab3?")
    done = console.post("/groups/lab3/hosts", {"hosts": "pc1, 52:54:00:00:00:02"})
    assert done.status == 303 and done.notice == "Group lab3 has 2 hosts."
    lab.add_task("pc2", "inventory", None)
    page = console.get("/groups")
    assert page.by_id("group-lab3").rows()[0][:6] == ["lab3", "2", "1", "1", "0", "0"]
    page = console.get("/groups/lab3")
    assert [r[1] for r in page.by_id("members").rows()] == ["pc1", "pc2"]
    assert console.get("/hosts/pc1").by_id("host-groups").text == "lab3"
    assert page.by_id("group-queued").text == "1" and "inventory" in page.by_id("member-pc2").text
    refused = console.post("/groups/lab3/hosts", {"hosts": "pc9"})
    assert refused.status == 404 and "no host 'pc9'" in refused.by_id("members-add-hosts-error").text
    refused = console.post("/groups", {"name": "lab 3"})
    assert refused.status == 400 and "group name" in refused.by_id("add-group-form-name-error").text
    done = console.post("/groups/lab3/hosts/remove", [("host", "pc1")])
    assert done.status == 303 and host_groups(lab).groups_of_host("pc1") == []
    done = console.post("/groups/lab3/edit", {"name": "lab-3", "description": "moved"})
    assert done.status == 303 and lab.host("pc2")["group_name"] is None  # membership, not a registration group
    refused = console.post("/groups/lab-3/delete", {})
    assert refused.status == 400 and "Tick the box" in refused.by_id("group-delete-error").text
    assert console.post("/groups/lab-3/delete", {"confirm": "yes"}).status == 303
    assert host_groups(lab).groups() == [] and lab.host("pc2")


def test_a_task_for_the_group_skips_busy_hosts_and_says_so(console, lab):
    host_groups(lab).add_group("lab3")
    host_groups(lab).add_members("lab3", ["pc1", "pc2", "pc3"])
    busy = lab.add_task("pc3", "inventory", None)
    form = {"type": "wipe", "mode": "fast", "image": "", "disk": "", "partition": "", "after": "poweroff",
            "wake": ["0", "1"]}
    done = console.post("/groups/lab3/tasks", form)
    assert done.status == 303, done.text[:500]
    assert done.notice.startswith("Queued 2 wipe task(s). Skipped pc3: has a queued inventory task")
    assert "No Wake-on-LAN target covers pc1, pc2" in done.notice
    tasks = {t["host"]: t for t in lab.tasks() if t["id"] != busy["id"]}
    assert sorted(tasks) == ["pc1", "pc2"] and tasks["pc1"]["options"] == {"mode": "fast"}
    assert tasks["pc1"]["queued_by"] == "admin"
    refused = console.post("/groups/lab3/tasks", {**form, "after": "explode", "wake": "0"})
    assert refused.status == 400 and "after must" in refused.by_id("group-task-after-error").text
    refused = console.post("/groups/lab3/tasks", {"type": "deploy", "image": "win10", "wake": "0"})
    assert refused.status == 409 and "never been captured" in refused.by_id("group-task-image-error").text


def test_a_multicast_session_for_the_groups_idle_hosts(console, lab, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    lab.set_storage("main", rsync_target=str(images))
    lab.add_image("img", "main")
    lab.db.execute("UPDATE images SET captured = ? WHERE name = 'img'", time.time())
    published(images, "img", {"d1p1.pcl.zst": b"one"})
    host_groups(lab).add_group("lab3")
    host_groups(lab).add_members("lab3", ["pc1", "pc2", "pc3"])
    lab.add_task("pc2", "inventory", None)
    done = console.post("/groups/lab3/tasks", {"type": "deploy", "image": "img", "multicast": "1",
                                               "interface": "lo", "max_wait": "60", "wake": "0"})
    assert done.status == 303, [e.text for e in done.doc.find_all(role="alert")]
    [session] = lab.sessions()
    assert [c["host"] for c in session["clients"]] == ["pc1", "pc3"] and session["max_wait"] == 60
    assert f"in multicast session {session['id']}" in done.notice and "Skipped pc2" in done.notice
    assert "Woke" not in done.notice and "Wake-on-LAN" not in done.notice  # wake unticked


def test_wake_buttons_and_targets(console, lab):
    host_groups(lab).add_group("lab3")
    host_groups(lab).add_members("lab3", ["pc1"])
    assert console.get("/groups").doc.has_id("wake-none")
    done = console.post("/hosts/pc1/wake")
    assert done.status == 303 and done.location.startswith("/hosts/pc1?")
    assert "No Wake-on-LAN target covers pc1" in done.notice
    refused = console.post("/groups/wake-targets", {"storage_group": "", "broadcast": "10.0.3", "interface": ""})
    assert refused.status == 400 and "IPv4 broadcast" in refused.by_id("wake-form-broadcast-error").text
    # An interface this machine does not have: the wake fails with the reason, nothing is sent.
    done = console.post("/groups/wake-targets", {"storage_group": "default", "broadcast": "", "interface": "nosuch0"})
    assert done.status == 303 and done.notice == "Saved the Wake-on-LAN target of storage group default."
    lab.edit_host("pc1", {"image": "win10"})
    done = console.post("/groups/lab3/wake")
    assert done.status == 303 and "Wake failed for pc1: this server has no network interface nosuch0" in done.notice
    rows = console.get("/groups").by_id("wake-targets").rows()
    assert rows[0][:3] == ["storage group default", "255.255.255.255", "nosuch0"]
    assert lab.boot_log("52:54:00:00:00:01")[0]["decision"].startswith("wake-on-lan failed")
    done = console.post("/groups/wake-targets", {"storage_group": "default", "broadcast": "", "interface": ""})
    assert done.notice == "Removed the Wake-on-LAN target of storage group default."
    assert console.get("/hosts/pc1").doc.has_id("host-wake")


def test_technicians_queue_and_wake_but_do_not_change_groups(console, lab, technician):
    host_groups(lab).add_group("lab3")
    host_groups(lab).add_members("lab3", ["pc1"])
    page = technician.get("/groups/lab3")
    assert page.status == 200 and not page.doc.has_id("group-edit") and not page.doc.has_id("members-add")
    assert not technician.get("/groups").doc.has_id("wake-form")
    assert technician.post("/groups", {"name": "x"}).status == 403
    assert technician.post("/groups/lab3/hosts", {"hosts": "pc2"}).status == 403
    assert technician.post("/groups/wake-targets", {"broadcast": "10.0.3.255"}).status == 403
    assert technician.post("/groups/lab3/delete", {"confirm": "yes"}).status == 403
    done = technician.post("/groups/lab3/tasks", {"type": "inventory", "wake": "0"})
    assert done.status == 303 and lab.tasks()[0]["queued_by"] == "tech"
    assert technician.post("/groups/lab3/wake").status == 303
    entries, _ = lab.accounts.audit_page(actor="tech")
    assert {(e["action"], e["target"], e["outcome"]) for e in entries} >= {
        ("console: queue task for group", "lab3", "303"), ("console: wake host group", "lab3", "303")}


def test_a_multicast_session_started_on_its_page_wakes_its_machines(console, lab, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    lab.set_storage("main", rsync_target=str(images))
    lab.add_image("img", "main")
    lab.db.execute("UPDATE images SET captured = ? WHERE name = 'img'", time.time())
    published(images, "img", {"d1p1.pcl.zst": b"one"})
    WakeTargets(lab.db).set_target(None, None, "nosuch0")  # an interface this machine lacks: nothing is sent
    form = {"image": "img", "hosts": ["pc1"], "hosts_text": "pc2", "min_receivers": "", "max_wait": "60",
            "rate": "", "interface": "lo", "disk": "", "after": "reboot"}
    assert console.post("/multicast", form).status == 303  # no wake field (an older page): woken
    assert console.post("/multicast", {**form, "hosts": ["pc3"], "hosts_text": "", "wake": ["0"]}).status == 303
    tried = {mac: [e["decision"] for e in lab.boot_log(mac)] for mac in
             ("52:54:00:00:00:01", "52:54:00:00:00:02", "52:54:00:00:00:03")}
    assert all(any(d.startswith("wake-on-lan failed") for d in tried[m])
               for m in ("52:54:00:00:00:01", "52:54:00:00:00:02"))
    assert not any(d.startswith("wake-on-lan") for d in tried["52:54:00:00:00:03"])
