"""The console's hosts pages: the list (search, sort, pages from SQL at 20,000 hosts), adding, editing and
removing a host (admin only), a host's page, and queueing one task for several hosts (all or none)."""
import time

import pytest

MAC1, MAC2, MAC3 = "52:54:00:aa:bb:01", "52:54:00:aa:bb:02", "52:54:00:aa:bb:03"


@pytest.fixture
def lab(console):
    """pc1-pc3 and an image win10 that has been captured once (so it can be deployed)."""
    store = console.store
    store.add_storage("main", "10.0.0.1:/images", rsync_target="/srv/images")
    store.add_image("win10", "main")
    for mac, name in ((MAC1, "pc1"), (MAC2, "pc2"), (MAC3, "pc3")):
        store.add_host(mac, name)
    capture = store.add_task("pc3", "capture", "win10")
    store.start_task(capture["id"])
    store.finish_task(capture["id"], {"stored_bytes": 5 << 30})
    return console


def names_in(page):
    return [row[1] for row in page.by_id("hosts-table").rows()]


def test_the_list_searches_name_and_mac_and_sorts(lab):
    lab.store.add_host("52:54:00:ff:00:09", "lab-a")
    assert names_in(lab.get("/hosts")) == ["lab-a", "pc1", "pc2", "pc3"]
    assert names_in(lab.get("/hosts", {"q": "PC"})) == ["pc1", "pc2", "pc3"]  # any case
    assert names_in(lab.get("/hosts", {"q": "ff:00"})) == ["lab-a"]             # by MAC
    assert names_in(lab.get("/hosts", {"sort": "mac", "dir": "desc"})) == ["lab-a", "pc3", "pc2", "pc1"]
    found = lab.get("/hosts", {"q": "nothing-like-it"})
    assert found.status == 200 and "No host matches" in found.by_id("hosts-empty").text
    assert found.by_id("hosts-total").text.startswith("0 hosts")


def test_the_list_sorts_by_the_active_task_and_links_it(lab):
    task = lab.store.add_task("pc2", "inventory", None)
    page = lab.get("/hosts", {"sort": "task", "dir": "desc"})
    rows = page.by_id("hosts-table").rows()
    assert rows[0][1] == "pc2" and rows[0][-1] == "inventory queued"
    assert page.by_id(f"host-{task['host_id']}").find("a", href=f"/tasks/{task['id']}") is not None


def test_a_list_parameter_not_offered_is_a_400_page_not_a_500(lab):
    for params in ({"sort": "password"}, {"dir": "sideways"}, {"page": "0"}, {"page": "x"}):
        page = lab.get("/hosts", params)
        assert page.status == 400, params
        assert page.by_id("hosts-error").text


def test_page_three_of_a_search_among_20000_hosts(console):
    store = console.store
    with store.db.transaction():  # one transaction: 20,000 rows in well under a second
        store.db.conn.executemany(
            "INSERT INTO hosts(mac, name, created, registered) VALUES (?, ?, ?, 'admin')",
            [(f"52:54:00:{i >> 16:02x}:{(i >> 8) & 255:02x}:{i & 255:02x}", f"pc{i:05d}", 1.7e9 + i)
             for i in range(20000)])
    def every_host():
        raise AssertionError("the hosts page loaded every host")
    store.hosts = every_host  # the page asks SQL for one page (hosts_page), never for all 20,000
    started = time.monotonic()
    page = console.get("/hosts", {"q": "pc1", "page": "3"})
    took = time.monotonic() - started
    assert page.status == 200
    # pc10000-pc19999 match; page 3 holds the 101st to the 150th of them.
    assert names_in(page) == [f"pc{i}" for i in range(10100, 10150)]
    assert page.by_id("hosts-total").text == "10000 hosts matching “pc1”, page 3 of 200."
    assert page.by_id("hosts-next").get("href") == "/hosts?q=pc1&sort=name&dir=asc&page=4"
    assert page.by_id("hosts-prev").get("href") == "/hosts?q=pc1&sort=name&dir=asc&page=2"
    assert took < 2, f"page took {took:.2f} s"


def test_admin_adds_a_host(lab):
    done = lab.post("/hosts", {"mac": "52-54-00-AA-BB-10", "name": "pc10"})
    assert done.status == 303 and done.location.startswith("/hosts/pc10")
    assert lab.store.host("pc10")["mac"] == "52:54:00:aa:bb:10"


def test_a_bad_mac_is_shown_next_to_the_field_and_the_typing_kept(lab):
    refused = lab.post("/hosts", {"mac": "not-a-mac", "name": "pc10"})
    assert refused.status == 400
    assert "is not a MAC address" in refused.by_id("host-add-mac-error").text
    assert refused.by_id("host-add-name").get("value") == "pc10"
    assert refused.by_id("host-add-mac").get("value") == "not-a-mac"
    bad_name = lab.post("/hosts", {"mac": "52:54:00:aa:bb:10", "name": "no spaces"})
    assert bad_name.status == 400 and "host name" in bad_name.by_id("host-add-name-error").text
    taken = lab.post("/hosts", {"mac": MAC1, "name": "pc10"})
    assert taken.status == 409 and "exists already" in taken.by_id("host-add-error").text
    assert [h["name"] for h in lab.store.hosts()] == ["pc1", "pc2", "pc3"]


def test_a_technician_sees_hosts_but_cannot_add_edit_or_remove(lab):
    tech = lab.user("tech", "technician")
    page = tech.get("/hosts")
    assert page.status == 200 and not page.doc.has_id("host-add") and page.doc.has_id("hosts-task")
    host_page = tech.get("/hosts/pc1")
    assert host_page.status == 200 and not host_page.doc.has_id("host-edit") and not host_page.doc.has_id("host-delete")
    assert tech.post("/hosts", {"mac": "52:54:00:aa:bb:10", "name": "pc10"}).status == 403
    assert tech.post("/hosts/pc1/edit", {"name": "renamed", "mac": MAC1, "image": "", "group": ""}).status == 403
    assert tech.post("/hosts/pc1/delete", {"confirm": "yes"}).status == 403
    assert [h["name"] for h in lab.store.hosts()] == ["pc1", "pc2", "pc3"]


def test_a_form_without_its_anti_forgery_token_changes_nothing(lab):
    assert lab.post("/hosts", {"mac": "52:54:00:aa:bb:10", "name": "pc10"}, csrf=False).status == 403
    assert lab.post("/hosts/queue", [("host", "pc1"), ("type", "inventory")], csrf=False).status == 403
    assert len(lab.store.hosts()) == 3 and lab.store.tasks(include_finished=False) == []


def test_admin_edits_name_image_and_group(lab):
    done = lab.post("/hosts/pc1/edit", {"name": "room1-01", "mac": MAC1, "image": "win10", "group": "room1"})
    assert done.status == 303 and done.location.startswith("/hosts/room1-01")
    host = lab.store.host(MAC1)
    assert (host["name"], host["image"], host["group_name"]) == ("room1-01", "win10", "room1")
    cleared = lab.post("/hosts/room1-01/edit", {"name": "room1-01", "mac": MAC1, "image": "", "group": ""})
    assert cleared.status == 303 and lab.store.host(MAC1)["image"] is None


def test_an_edit_refused_names_its_field(lab):
    taken = lab.post("/hosts/pc1/edit", {"name": "pc1", "mac": MAC2, "image": "", "group": ""})
    assert taken.status == 409 and "MAC" in taken.by_id("host-edit-mac-error").text
    assert taken.by_id("host-edit-mac").get("value") == MAC2  # what was typed stays
    bad = lab.post("/hosts/pc1/edit", {"name": "pc1", "mac": MAC1, "image": "nope", "group": ""})
    assert bad.status == 404 and "no image" in bad.by_id("host-edit-image-error").text
    assert lab.store.host("pc1")["mac"] == MAC1


def test_removing_a_host_needs_confirmation_and_no_active_task(lab):
    unconfirmed = lab.post("/hosts/pc1/delete", {})
    assert unconfirmed.status == 400 and unconfirmed.by_id("host-delete-error").text
    task = lab.store.add_task("pc1", "inventory", None)
    busy = lab.post("/hosts/pc1/delete", {"confirm": "yes"})
    assert busy.status == 409
    assert "has a queued inventory task" in busy.by_id("host-delete-error").text
    assert lab.store.host("pc1")
    lab.store.cancel_task(task["id"])
    gone = lab.post("/hosts/pc1/delete", {"confirm": "yes"})
    assert gone.status == 303 and "Removed host pc1" in gone.notice
    assert [h["name"] for h in lab.store.hosts()] == ["pc2", "pc3"]
    assert lab.get("/hosts/pc1").status == 404


def test_one_deploy_for_the_ticked_hosts(lab):
    done = lab.post("/hosts/queue", [("host", "pc1"), ("host", "pc2"), ("type", "deploy"), ("image", "win10"),
                                     ("disk", "serial=ABC123"), ("partition", "2"), ("after", "poweroff"),
                                     ("mode", "")])
    assert done.status == 303 and "Queued 2 deploy tasks" in done.notice
    tasks = lab.store.tasks(include_finished=False)
    assert [(t["host"], t["type"], t["image"], t["disk"], t["partition"], t["after"]) for t in tasks] == [
        ("pc1", "deploy", "win10", "serial=ABC123", 2, "poweroff"), ("pc2", "deploy", "win10", "serial=ABC123", 2,
                                                                      "poweroff")]


def test_queueing_for_several_hosts_is_all_or_none(lab):
    lab.store.add_task("pc2", "inventory", None)
    refused = lab.post("/hosts/queue", [("host", "pc1"), ("host", "pc2"), ("type", "wipe"), ("mode", "fast")])
    assert refused.status == 409
    assert "pc2 has an active task" in refused.by_id("hosts-task-hosts-error").text
    assert [t["host"] for t in lab.store.tasks(include_finished=False)] == ["pc2"]  # pc1 got nothing
    assert refused.by_id("pick-1").get("checked") == "" and "checked" not in refused.by_id("pick-3").attrs
    assert refused.by_id("hosts-task-mode").find("option", value="fast").attrs.get("selected") == ""


@pytest.mark.parametrize("form, field, words", [
    ([("type", "inventory")], "hosts", "choose at least one host"),
    ([("host", "pc1"), ("type", "wipe")], "mode", "wipe task needs options"),
    ([("host", "pc1"), ("type", "capture"), ("disk", "sda; rm -rf /")], "disk", "not a disk selector"),
    ([("host", "pc1"), ("type", "deploy"), ("image", "win10"), ("partition", "two")], "partition", "whole number"),
    ([("host", "pc1"), ("type", "deploy"), ("image", "win10"), ("partition", "300")], "partition", "1-255"),
    ([("host", "pc1"), ("type", "capture"), ("image", "nope")], "image", "no image"),
    ([("host", "pc1"), ("type", "capture")], "image", "no image"),
    ([("host", "pc1"), ("host", "ghost"), ("type", "debug")], "hosts", "no host 'ghost'"),
    ([("host", "pc1"), ("type", "inventory"), ("after", "explode")], "after", "after must be one of"),
    ([("host", "pc1"), ("type", "multicast")], "type", "task type"),
])
def test_a_refused_task_shows_the_error_next_to_its_field(lab, form, field, words):
    refused = lab.post("/hosts/queue", form)
    assert refused.status in (400, 404)
    assert words in refused.by_id(f"hosts-task-{field}-error").text
    assert lab.store.tasks(include_finished=False) == []


def test_deploying_an_image_never_captured_is_refused_on_the_form(lab):
    lab.store.add_image("empty", "main")
    refused = lab.post("/hosts/queue", [("host", "pc1"), ("type", "deploy"), ("image", "empty")])
    assert refused.status == 409 and "never been captured" in refused.by_id("hosts-task-image-error").text


def test_a_technician_queues_from_the_list_and_the_host_page(lab):
    tech = lab.user("tech", "technician")
    assert tech.post("/hosts/queue", [("host", "pc1"), ("type", "disktest")]).status == 303
    done = tech.post("/hosts/pc2/tasks", {"type": "wipe", "mode": "normal", "disk": "/dev/sda"})
    assert done.status == 303 and done.location.startswith("/hosts/pc2")
    tasks = {t["host"]: t for t in lab.store.tasks(include_finished=False)}
    assert tasks["pc1"]["type"] == "disktest" and tasks["pc2"]["options"] == {"mode": "normal"}


def test_a_host_page_refusal_is_shown_on_the_host_page(lab):
    lab.store.add_task("pc1", "inventory", None)
    refused = lab.post("/hosts/pc1/tasks", {"type": "debug"})
    assert refused.status == 409 and "active task" in refused.by_id("host-task-hosts-error").text


def test_the_host_page_shows_registration_inventory_tasks_and_boot_log(lab):
    store = lab.store
    inventory = {"cpu": {"model": "Xeon E-2236", "cores": 6, "threads": 12, "sockets": 1},
                 "memory_bytes": 8 << 30,
                 "disks": [{"path": "/dev/nvme0n1", "model": "Samsung 980", "serial": "S64DNX0R",
                            "size_bytes": 500107862016, "removable": False, "rotational": False, "bus": "nvme"}],
                 "nics": [{"name": "eno1", "mac": MAC1, "speed_mbps": 1000, "driver": "e1000e"}],
                 "dmi": {"sys_vendor": "Dell Inc.", "product_serial": "7XK2Q53"}}
    inv = store.add_task("pc1", "inventory", None)
    store.start_task(inv["id"])
    store.finish_task(inv["id"], {}, inventory=inventory)
    failed = store.add_task("pc1", "wipe", None, options={"mode": "fast"})
    store.start_task(failed["id"])
    store.fail_task(failed["id"], {"code": "disk_not_found", "message": "no disk matches", "hint": "check"}, "log")
    active = store.add_task("pc1", "deploy", "win10")
    for i in range(60):
        store.log_boot(MAC1, f"decision {i}", None)
    page = lab.get("/hosts/pc1")
    assert page.status == 200
    assert "added by an admin" in page.by_id("host-details").text
    assert page.by_id("host-ram").text == "8.0 GiB"
    assert "Xeon E-2236, 6 cores, 12 threads" in page.by_id("host-cpu").text
    assert page.by_id("host-disks").rows() == [["/dev/nvme0n1", "Samsung 980", "S64DNX0R", "465.8 GiB", "nvme", "SSD"]]
    assert page.by_id("host-nics").rows()[0][:3] == ["eno1", MAC1, "1000 Mb/s"]
    assert "Dell Inc." in page.by_id("host-dmi").text
    history = page.by_id("host-tasks").rows()
    assert [(r[0], r[1], r[2]) for r in history] == [(str(active["id"]), "deploy", "queued"),
                                                     (str(failed["id"]), "wipe", "failed"),
                                                     (str(inv["id"]), "inventory", "done")]
    assert history[1][-1] == "disk_not_found no disk matches"
    boots = page.by_id("host-bootlog").rows()
    assert len(boots) == 50 and boots[0][1] == "decision 59" and boots[-1][1] == "decision 10"
    cancel = page.form(f"cancel-{active['id']}")
    assert cancel.get("action") == f"/tasks/{active['id']}/cancel"
    assert cancel.form_values()["next"] == "/hosts/pc1"


def test_an_empty_host_page_says_what_to_do(lab):
    page = lab.get("/hosts/pc2")
    assert "queue an inventory task" in page.by_id("host-inventory").text
    assert "Nothing to do" in page.by_id("host-active-task").text
    assert lab.get("/hosts/nobody").status == 404


def test_host_changes_are_audited_with_who_and_what(lab):
    lab.post("/hosts/pc1/edit", {"name": "pc1", "mac": MAC1, "image": "", "group": "room2"})
    lab.post("/hosts/pc2/delete", {"confirm": "yes"})
    entries, _ = lab.store.accounts.audit_page(actor="admin")
    done = [(e["action"], e["target"], e["outcome"]) for e in entries if e["action"].startswith("console:")]
    assert done[:2] == [("console: remove host", "pc2", "303"), ("console: edit host", "pc1", "303")]
