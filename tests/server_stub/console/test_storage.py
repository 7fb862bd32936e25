"""The Storage page: groups, nodes and their free space, replication jobs; adding, editing and removing
them (admin only), refusals shown next to the field or on the page, never a 500."""
import os

from server_stub.console.render import human_bytes


def test_empty_page_says_what_to_do(console):
    page = console.get("/storage")
    assert page.status == 200
    assert "No storage node yet" in page.by_id("main").text
    assert page.doc.has_id("add-node-form") and page.doc.has_id("add-group-form")
    assert "No replication yet" in page.by_id("main").text


def test_nodes_show_clients_master_and_free_space_of_local_targets(console, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    store = console.store
    store.add_storage("local", "10.0.0.1:/images", rsync_target=str(images), max_clients=4)
    store.add_storage("remote", "10.0.0.2:/images", rsync_target="backup@10.0.0.2:/srv/images")
    page = console.get("/storage")
    rows = {row[0]: row for row in page.by_id("storage-nodes").rows()}
    assert rows["local"][4] == "0 / 4" and rows["local"][5] == "master" and rows["remote"][5] == ""
    stats = os.statvfs(images)  # free space moves as others write; the total does not
    assert rows["local"][7].endswith(" of " + human_bytes(stats.f_blocks * stats.f_frsize))
    assert rows["remote"][7] == "unknown"
    assert page.by_id("storage-groups").rows()[0][:3] == ["default", "local", "2"]


def test_add_node_and_group_and_refusals_next_to_the_field(console):
    done = console.post("/storage/groups", {"name": "lab"})
    assert done.status == 303 and done.notice == "Storage group lab added."
    done = console.post("/storage/nodes", {"name": "n1", "export": "10.0.0.9:/img", "options": "vers=4.1",
                                           "group": "lab", "max_clients": "3", "rsync_target": ""})
    assert done.status == 303
    node = console.store.storage("n1")
    assert (node["group_name"], node["max_clients"], node["master"], node["rsync_target"]) == ("lab", 3, 1, None)

    bad = console.post("/storage/nodes", {"name": "n2", "export": "no-path", "group": "lab", "max_clients": "3"})
    assert bad.status == 400
    assert "not an NFS export" in bad.by_id("add-node-form-export-error").text
    assert bad.form("add-node-form").form_values()["name"] == "n2"  # what was typed stays
    bad = console.post("/storage/nodes", {"name": "n2", "export": "10.0.0.9:/img", "max_clients": "many"})
    assert bad.status == 400 and "whole number" in bad.by_id("add-node-form-max_clients-error").text
    bad = console.post("/storage/nodes", {"name": "n2", "export": "10.0.0.9:/img", "max_clients": "9" * 30})
    assert bad.status == 400 and "far too large" in bad.by_id("add-node-form-max_clients-error").text
    bad = console.post("/storage/nodes", {"name": "n1", "export": "10.0.0.9:/img"})
    assert bad.status == 409 and "exists already" in bad.by_id("add-node-form-name-error").text
    bad = console.post("/storage/groups", {"name": "lab"})
    assert bad.status == 409 and "exists already" in bad.by_id("add-group-form-name-error").text
    assert [n["name"] for n in console.store.storage_nodes()] == ["n1"]


def test_edit_node(console, tmp_path):
    console.store.add_storage("n1", "10.0.0.1:/img", rsync_target=str(tmp_path))
    form = console.get("/storage/nodes/n1").form("edit-node-form").form_values()
    assert form["export"] == "10.0.0.1:/img" and form["rsync_target"] == str(tmp_path) + "/"
    done = console.post("/storage/nodes/n1", {**form, "name": "n9", "max_clients": "7", "rsync_target": ""})
    assert done.status == 303
    node = console.store.storage("n9")
    assert node["max_clients"] == 7 and node["rsync_target"] is None and node["export"] == "10.0.0.1:/img"
    bad = console.post("/storage/nodes/n9", {**form, "name": "n9", "rsync_target": "not a target"})
    assert bad.status == 400 and "rsync target" in bad.by_id("edit-node-rsync_target-error").text
    assert console.store.storage("n9")["rsync_target"] is None
    assert console.get("/storage/nodes/nothing").status == 404


def test_removals_refused_while_in_use(console):
    store = console.store
    store.add_storage("n1", "10.0.0.1:/img")
    store.add_image("win", group="default")
    refused = console.post("/storage/nodes/n1/remove")
    assert refused.status == 409 and "home of images win" in refused.doc.text
    refused = console.post("/storage/groups/default/remove")
    assert refused.status == 409 and "remove them first" in refused.doc.text
    store.remove_image("win")
    assert console.post("/storage/nodes/n1/remove").status == 303
    assert console.post("/storage/groups/default/remove").status == 303
    assert store.storage_nodes() == [] and store.groups() == []
    assert console.post("/storage/nodes/n1/remove").status == 404  # a stale page: said, not a 500


def test_rename_group(console):
    console.store.add_group("lab")
    console.store.add_group("room")
    assert console.post("/storage/groups/lab", {"name": "lab2"}).status == 303
    assert [g["name"] for g in console.store.groups()] == ["lab2", "room"]
    bad = console.post("/storage/groups/lab2", {"name": "room"})
    assert bad.status == 409 and "exists already" in bad.by_id("rename-group-lab2-name-error").text


def test_replication_jobs_listed(console, tmp_path):
    store = console.store
    store.add_storage("a", "10.0.0.1:/img")
    store.add_storage("b", "10.0.0.2:/img")
    image = store.add_image("win", group="default")
    store.db.execute("UPDATE images SET captured = 1")
    job = store.queue_replication("win")[0]
    store.claim_replication(set())
    store.end_replication(job["id"], "failed", 1024, "rsync: connection refused")
    row = console.get("/storage").by_id(f"replication-{job['id']}")
    cells = row.rows() or [[c.text for c in row.find_all("td")]]
    assert cells[0][1:5] == ["win", "a → b", "failed", "1.0 KiB"] and cells[0][-1] == "rsync: connection refused"
    assert image["name"] == "win"


def test_technician_sees_but_cannot_change(technician):
    technician.store.add_storage("n1", "10.0.0.1:/img")
    page = technician.get("/storage")
    assert page.status == 200 and page.by_id("storage-nodes") and not page.doc.has_id("add-node-form")
    assert not page.doc.has_id("remove-node-n1")
    assert technician.post("/storage/nodes/n1/remove").status == 403
    assert technician.post("/storage/groups", {"name": "x"}).status == 403
    assert technician.get("/storage/nodes/n1").status == 403
    assert technician.store.storage("n1")
