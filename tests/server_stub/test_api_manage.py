"""Hosts edited and removed, hosts and tasks a page at a time, the unknown-host setting: over the HTTP API of
a real server process, and the same through the CLI (the console and the CLI are two faces of one API)."""
import json
import subprocess
import sys

import requests

from tests.server_stub.test_api import admin

MAC1, MAC2 = "52:54:00:00:00:01", "52:54:00:00:00:02"


def setup_hosts(server):
    assert admin(server, "POST", "/api/storage", name="main", export="10.0.0.1:/images").status_code == 201
    assert admin(server, "POST", "/api/images", name="win10", storage="main").status_code == 201
    assert admin(server, "POST", "/api/images", name="ubuntu", storage="main").status_code == 201
    for mac, name in ((MAC1, "pc1"), (MAC2, "pc2")):
        assert admin(server, "POST", "/api/hosts", mac=mac, name=name).status_code == 201


def cli(server, *args):
    argv = [sys.executable, "-m", "server_stub", "--server", server["url"], "--token-file",
            str(server["data"] / "admin.token"), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


def test_a_host_is_renamed_moved_to_another_mac_given_an_image_and_a_group(server):
    setup_hosts(server)
    r = admin(server, "POST", "/api/hosts/pc1", name="lab-1", mac="52-54-00-00-00-11", image="win10", group="room1")
    assert r.status_code == 200, r.text
    assert {k: r.json()[k] for k in ("name", "mac", "image", "group_name")} == \
        {"name": "lab-1", "mac": "52:54:00:00:00:11", "image": "win10", "group_name": "room1"}
    assert admin(server, "GET", "/api/hosts/pc1").status_code == 404
    # Only what is sent changes; null clears the image.
    r = admin(server, "POST", "/api/hosts/lab-1", image=None)
    assert r.status_code == 200 and r.json()["image"] is None and r.json()["group_name"] == "room1"


def test_a_host_edit_that_clashes_or_is_bad_names_the_field(server):
    setup_hosts(server)
    for body, status, field in (({"name": "pc2"}, 409, "name"), ({"mac": MAC2}, 409, "mac"),
                                ({"mac": "zz"}, 400, "mac"), ({"name": "../x"}, 400, "name"),
                                ({"image": "nope"}, 404, "image"), ({"group": "a b"}, 400, "group")):
        r = admin(server, "POST", "/api/hosts/pc1", **body)
        assert (r.status_code, r.json().get("details", {}).get("field")) == (status, field), (body, r.text)
    r = admin(server, "POST", "/api/hosts/pc1", colour="red")
    assert r.status_code == 400 and "colour" in r.json()["error"]
    r = admin(server, "POST", "/api/hosts/pc1", name=5)
    assert r.status_code == 400 and r.json()["details"]["field"] == "name"
    assert admin(server, "GET", "/api/hosts/pc1").json()["mac"] == MAC1  # nothing changed


def test_a_host_with_a_task_is_not_removed_one_without_goes_with_its_history(server):
    setup_hosts(server)
    task = admin(server, "POST", "/api/tasks", host="pc1", type="inventory").json()
    r = admin(server, "DELETE", "/api/hosts/pc1")
    assert r.status_code == 409 and "cancel it first" in r.json()["error"]
    assert admin(server, "POST", f"/api/tasks/{task['id']}/cancel").status_code == 200
    assert admin(server, "DELETE", "/api/hosts/pc1").status_code == 200
    assert admin(server, "GET", "/api/hosts/pc1").status_code == 404
    assert admin(server, "GET", f"/api/tasks/{task['id']}").status_code == 404
    assert admin(server, "DELETE", "/api/hosts/pc1").status_code == 404
    assert [h["name"] for h in admin(server, "GET", "/api/hosts").json()] == ["pc2"]


def test_hosts_page_searches_sorts_and_counts(server):
    setup_hosts(server)
    for i in range(3, 13):
        admin(server, "POST", "/api/hosts", mac=f"52:54:00:00:01:{i:02x}", name=f"lab{i:02d}")
    admin(server, "POST", "/api/tasks", host="lab05", type="inventory")
    page = admin(server, "GET", "/api/pages/hosts?q=LAB&sort=name&desc=1&offset=2&limit=3").json()
    assert page["total"] == 10 and [h["name"] for h in page["rows"]] == ["lab10", "lab09", "lab08"]
    page = admin(server, "GET", "/api/pages/hosts?q=lab05").json()
    assert page["rows"][0]["task_state"] == "queued" and page["rows"][0]["task_type"] == "inventory"
    for query, field in (("sort=colour", "sort"), ("limit=0", "limit"), ("limit=x", "limit"),
                         ("offset=-1", "offset"), ("offset=99999999999999999999999", "offset"), ("desc=2", "desc")):
        r = admin(server, "GET", f"/api/pages/hosts?{query}")
        assert r.status_code == 400 and r.json()["details"]["field"] == field, (query, r.text)


def test_tasks_page_filters_by_host_state_type_and_image(server):
    setup_hosts(server)
    capture = admin(server, "POST", "/api/tasks", host="pc1", type="capture", image="win10").json()
    admin(server, "POST", f"/api/tasks/{capture['id']}/cancel")
    inventory = admin(server, "POST", "/api/tasks", host="pc1", type="inventory").json()
    other = admin(server, "POST", "/api/tasks", host="pc2", type="capture", image="ubuntu").json()

    def ids(query):
        page = admin(server, "GET", f"/api/pages/tasks?{query}").json()
        assert page["total"] == len(page["rows"])
        return [t["id"] for t in page["rows"]]

    assert ids("host=pc1") == [inventory["id"], capture["id"]]  # newest first
    assert ids(f"host={MAC1}&state=canceled") == [capture["id"]]
    assert ids("state=active") == [other["id"], inventory["id"]]
    assert ids("type=capture&desc=0") == [capture["id"], other["id"]]
    assert ids("image=win10") == [capture["id"]]
    assert "token" not in admin(server, "GET", "/api/pages/tasks").json()["rows"][0]
    assert admin(server, "GET", "/api/pages/tasks?host=nobody").status_code == 404
    assert admin(server, "GET", "/api/pages/tasks?state=lost").json()["details"]["field"] == "state"
    assert admin(server, "GET", "/api/pages/tasks?type=dance").json()["details"]["field"] == "type"


def test_the_unknown_host_policy_is_a_setting_read_at_each_boot(server):
    unknown = "52:54:00:00:00:99"
    assert admin(server, "GET", "/api/settings").json() == {"unknown_hosts": "menu", "technician_password": False}
    assert "imager.mode=menu" in requests.get(f"{server['url']}/boot/{unknown}.ipxe", timeout=10).text
    assert admin(server, "POST", "/api/settings", unknown_hosts="local").json()["unknown_hosts"] == "local"
    script = requests.get(f"{server['url']}/boot/{unknown}.ipxe", timeout=10).text
    assert "sanboot" in script and "imager.mode" not in script
    r = requests.post(f"{server['url']}/api/register", json={"mac": unknown}, timeout=10)
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    assert admin(server, "POST", "/api/settings", unknown_hosts="register").status_code == 200
    server["restart"]()  # kept in the database, over the serve flag's default
    assert admin(server, "GET", "/api/settings").json()["unknown_hosts"] == "register"
    script = requests.get(f"{server['url']}/boot/{unknown}.ipxe", timeout=10).text
    assert "imager.mode=register" in script and "menu" not in script
    for body, field in (({"unknown_hosts": "ask"}, "unknown_hosts"), ({"colour": "red"}, "colour")):
        r = admin(server, "POST", "/api/settings", **body)
        assert r.status_code == 400 and r.json()["details"]["field"] == field


def test_the_cli_edits_lists_and_removes_what_the_console_does(server):
    setup_hosts(server)
    done = cli(server, "host", "set", "pc1", "--name", "lab-1", "--image", "win10", "--group", "room1", "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["name"] == "lab-1", done.stderr
    listed = cli(server, "host", "list", "--search", "LAB").stdout
    assert "lab-1" in listed and "pc2" not in listed and "room1" in listed
    assert cli(server, "task", "inventory", "lab-1").returncode == 0
    tasks = cli(server, "task", "list", "--host", "lab-1", "--state", "queued", "--type", "inventory")
    assert tasks.returncode == 0 and "lab-1" in tasks.stdout and "inventory" in tasks.stdout, tasks.stderr
    assert "lab-1" not in cli(server, "task", "list", "--host", "pc2").stdout
    refused = cli(server, "host", "remove", "lab-1")
    assert refused.returncode == 1 and "cancel it first" in refused.stderr
    assert cli(server, "settings", "set", "unknown-hosts", "local").returncode == 0
    assert json.loads(cli(server, "settings", "show", "--json").stdout)["unknown_hosts"] == "local"
    assert cli(server, "settings", "set", "unknown-hosts", "ask").returncode == 2  # argparse refuses it
    assert cli(server, "host", "remove", "pc2").returncode == 0
    assert "pc2" not in cli(server, "host", "list").stdout
