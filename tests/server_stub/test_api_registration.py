"""Registration of unknown machines and inventory, against a real server process: and attempts to break it."""
import http.client
import json
import subprocess
import sys
from urllib.parse import urlparse

import pytest
import requests

from tests.server_stub.test_api import admin, token_of

MAC = "52:54:00:00:00:aa"
INVENTORY = {
    "dmi": {"sys_vendor": "QEMU", "product_name": "Standard PC", "product_serial": "SN-1",
            "product_uuid": "0b3c8f2e-1111-2222-3333-444455556666", "bios_version": "1.16.2"},
    "cpu": {"model": "Intel Xeon", "sockets": 1, "cores": 4, "threads": 8},
    "memory_bytes": 8 * 2**30,
    "disks": [{"path": "/dev/sda", "size_bytes": 512 * 10**9, "model": "Samsung SSD", "serial": "S4EWNX0",
               "wwn": "0x5002538e4", "rotational": False, "removable": False, "bus": "ata",
               "logical_sector_size": 512}],
    "nics": [{"name": "eth0", "mac": MAC, "speed_mbps": 1000, "driver": "e1000e"},
             {"name": "eth1", "mac": "52:54:00:00:00:ab", "speed_mbps": None, "driver": "igb"}],
}


def register(server, **body):
    return requests.post(server["url"] + "/api/register", json=body, timeout=10)


def host_count(server):
    return len(admin(server, "GET", "/api/hosts").json())


def test_quick_registration_creates_the_host_with_its_inventory(server):
    r = register(server, mac=MAC.upper().replace(":", "-"), inventory=INVENTORY)
    assert r.status_code == 201, r.text
    assert r.json()["host"] == {"mac": MAC, "name": "mac5254000000aa", "registered": "quick", "image": None,
                                "group": None}
    shown = admin(server, "GET", "/api/hosts/mac5254000000aa").json()
    assert shown["mac"] == MAC and shown["registered"] == "quick"
    assert shown["inventory"]["data"] == INVENTORY and shown["inventory"]["task_id"] is None
    assert admin(server, "GET", f"/api/hosts/{MAC}/inventory").json()["data"]["disks"][0]["serial"] == "S4EWNX0"
    # Known now: no task, so the local disk, without the unknown-host menu.
    script = requests.get(f"{server['url']}/boot/{MAC}.ipxe", timeout=10).text
    assert "sanboot" in script and "menu" not in script


def test_an_unknown_mac_gets_the_menu_by_default(server):
    script = requests.get(f"{server['url']}/boot/52:54:00:00:00:99.ipxe", timeout=10).text
    assert "choose --timeout 3000 --default local target" in script and "imager.mode=register" in script
    assert "menu: unknown host" in admin(server, "GET", "/api/boot-log").json()[0]["decision"]


def test_a_known_mac_cannot_register_again_or_overwrite_anything(server):
    assert admin(server, "POST", "/api/hosts", mac="52:54:00:00:00:01", name="pc1").status_code == 201
    r = register(server, mac="52:54:00:00:00:01", inventory=INVENTORY)
    assert r.status_code == 409 and "registered already" in r.json()["error"]
    assert admin(server, "GET", "/api/hosts/pc1").json()["inventory"] is None
    assert register(server, mac=MAC, inventory=INVENTORY).status_code == 201
    changed = {**INVENTORY, "memory_bytes": 1}
    assert register(server, mac=MAC, inventory=changed, hostname="other").status_code == 409
    assert admin(server, "GET", f"/api/hosts/{MAC}/inventory").json()["data"]["memory_bytes"] == 8 * 2**30
    assert host_count(server) == 2


@pytest.mark.parametrize("body, status, message", [
    ({"mac": "52:54:00:00:00"}, 400, "not a MAC"),
    ({"mac": "ff:ff:ff:ff:ff:ff:ff"}, 400, "not a MAC"),
    ({"mac": ["52:54:00:00:00:aa"]}, 400, "not a MAC"),
    ({"mac": MAC, "hostname": "../etc"}, 400, "host name"),
    ({"mac": MAC, "hostname": "a" * 101}, 400, "host name"),
    ({"mac": MAC, "group": "bad group"}, 400, "group name"),
    ({"mac": MAC, "image": "nothing"}, 404, "no image"),
    ({"mac": MAC, "image": {"$ne": 1}}, 400, "image name"),
    ({"mac": MAC, "admin": True}, 400, "unknown fields: admin"),
    ({"mac": MAC, "inventory": {"cpu": {"model": "x" * 257}}}, 400, "inventory.cpu.model"),
    ({"mac": MAC, "inventory": {"dmi": {"product_name": "evil\x1b[2J"}}}, 400, "inventory.dmi.product_name"),
    ({"mac": MAC, "inventory": {"dmi": {"shell": "x"}}}, 400, "unknown fields: shell"),
    ({"mac": MAC, "inventory": {"memory_bytes": -1}}, 400, "memory_bytes"),
    ({"mac": MAC, "inventory": {"memory_bytes": True}}, 400, "memory_bytes"),
    ({"mac": MAC, "inventory": {"memory_bytes": 2**70}}, 400, "memory_bytes"),
    ({"mac": MAC, "inventory": {"disks": {"path": "/dev/sda"}}}, 400, "inventory.disks must be a list"),
    ({"mac": MAC, "inventory": {"disks": [{"path": "/dev/sda"}] * 65}}, 400, "at most 64"),
    ({"mac": MAC, "inventory": {"disks": [{"removable": "yes"}]}}, 400, "inventory.disks[0].removable"),
    ({"mac": MAC, "inventory": {"nics": [{"mac": "nope"}]}}, 400, "not a MAC"),
    ({"mac": MAC, "inventory": []}, 400, "inventory must be an object"),
])
def test_bad_registrations_are_refused_and_create_nothing(server, body, status, message):
    r = register(server, **body)
    assert r.status_code == status and message in r.json()["error"], r.text
    assert host_count(server) == 0


def test_a_body_that_is_not_an_object_is_refused(server):
    r = requests.post(server["url"] + "/api/register", data="[1, 2]", timeout=10)
    assert r.status_code == 400
    r = requests.post(server["url"] + "/api/register", data="{not json", timeout=10)
    assert r.status_code == 400
    assert host_count(server) == 0


def test_an_oversize_body_is_refused_unread(server):
    big = {"mac": MAC, "inventory": {"dmi": {"product_name": "x" * 200}}, "pad": "y" * 70_000}
    assert register(server, **big).status_code == 413
    # Chunked (no Content-Length): the server stops reading at the limit too.
    url = urlparse(server["url"])
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    conn.request("POST", "/api/register", body=iter([json.dumps(big).encode()[i:i + 8192]
                                                     for i in range(0, 80_000, 8192)]),
                 headers={"Content-Type": "application/json"}, encode_chunked=True)
    assert conn.getresponse().status == 413
    conn.close()
    assert host_count(server) == 0


def test_full_registration_with_name_image_and_group(server):
    admin(server, "POST", "/api/storage", name="main", export="10.0.0.1:/images")
    admin(server, "POST", "/api/images", name="win10", storage="main")
    r = register(server, mac=MAC, inventory=INVENTORY, hostname="room12-pc03", image="win10", group="room12")
    assert r.status_code == 201, r.text
    assert r.json()["host"] == {"mac": MAC, "name": "room12-pc03", "registered": "full", "image": "win10",
                                "group": "room12"}
    # The name is taken now: another machine cannot take it.
    r = register(server, mac="52:54:00:00:00:bb", hostname="room12-pc03")
    assert r.status_code == 409 and "named room12-pc03" in r.json()["error"]
    # Registration never queues a task: deploying stays an admin's decision.
    assert admin(server, "GET", "/api/tasks").json() == []


@pytest.mark.parametrize("server_args", [["--register-rate", "2", "--register-prefix", "pc-"]])
def test_registrations_are_rate_limited(server):
    assert register(server, mac="52:54:00:00:00:01").json()["host"]["name"] == "pc-525400000001"
    assert register(server, mac="52:54:00:00:00:01").status_code == 409  # counts too: every attempt does
    r = register(server, mac="52:54:00:00:00:02")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    assert host_count(server) == 1


@pytest.mark.parametrize("server_args", [["--unknown-hosts", "local"]])
def test_registration_is_off_when_unknown_hosts_boot_locally(server):
    assert register(server, mac=MAC, inventory=INVENTORY).status_code == 403
    script = requests.get(f"{server['url']}/boot/{MAC}.ipxe", timeout=10).text
    assert "sanboot" in script and "kernel" not in script and "menu" not in script
    assert host_count(server) == 0


@pytest.mark.parametrize("server_args", [["--unknown-hosts", "register"]])
def test_register_policy_boots_unknown_macs_into_registration(server):
    script = requests.get(f"{server['url']}/boot/{MAC}.ipxe", timeout=10).text
    assert "imager.mode=register" in script and "imager.token" not in script and "choose" not in script


def inventory_task(server):
    for mac, name in ((MAC, "pc1"), ("52:54:00:00:00:bb", "pc2")):
        assert admin(server, "POST", "/api/hosts", mac=mac, name=name).status_code == 201
    task = admin(server, "POST", "/api/tasks", host="pc1", type="inventory")
    assert task.status_code == 201, task.text
    return task.json()


def test_an_inventory_task_runs_and_stores_the_inventory(server):
    task = inventory_task(server)
    auth = {"Authorization": "Bearer " + token_of(server, MAC)}
    base = f"{server['url']}/api/tasks/{task['id']}"
    checkin = requests.post(base + "/checkin", headers=auth, json={}, timeout=10).json()
    assert checkin["type"] == "inventory" and checkin["image"] is None and checkin["storage"] is None
    r = requests.post(base + "/done", headers=auth, json={"result": {"inventory": INVENTORY, "disks": 1}}, timeout=10)
    assert r.status_code == 200, r.text
    record = admin(server, "GET", f"/api/tasks/{task['id']}").json()
    assert record["state"] == "done" and record["result"] == {"disks": 1}  # the inventory lives with the host
    stored = admin(server, "GET", "/api/hosts/pc1/inventory").json()
    assert stored["data"] == INVENTORY and stored["task_id"] == task["id"]
    assert admin(server, "GET", "/api/hosts/pc2/inventory").status_code == 404


def test_inventory_with_another_tasks_token_or_bad_content_is_refused(server):
    task = inventory_task(server)
    other = admin(server, "POST", "/api/tasks", host="pc2", type="inventory").json()
    auth = {"Authorization": "Bearer " + token_of(server, MAC)}
    other_auth = {"Authorization": "Bearer " + token_of(server, "52:54:00:00:00:bb")}
    base = f"{server['url']}/api/tasks/{task['id']}"
    requests.post(base + "/checkin", headers=auth, json={}, timeout=10)
    # pc2's token on pc1's task: refused, nothing stored for either host.
    r = requests.post(base + "/done", headers=other_auth, json={"result": {"inventory": INVENTORY}}, timeout=10)
    assert r.status_code == 401
    r = requests.post(f"{server['url']}/api/tasks/{other['id']}/done", headers=auth,
                      json={"result": {"inventory": INVENTORY}}, timeout=10)
    assert r.status_code == 401
    # The right token with a bad inventory: 400, and the task is still running (not done without it).
    bad = {"result": {"inventory": {**INVENTORY, "nics": [{"mac": "zz"}]}}}
    assert requests.post(base + "/done", headers=auth, json=bad, timeout=10).status_code == 400
    huge = {"result": {"inventory": INVENTORY, "pad": "x" * 70_000}}
    assert requests.post(base + "/done", headers=auth, json=huge, timeout=10).status_code == 413
    assert admin(server, "GET", f"/api/tasks/{task['id']}").json()["state"] == "running"
    for name in ("pc1", "pc2"):
        assert admin(server, "GET", f"/api/hosts/{name}").json()["inventory"] is None
    # An inventory task names no image.
    assert admin(server, "POST", "/api/tasks", host="pc2", type="inventory", image="x").status_code == 400


def test_the_cli_shows_a_host_and_its_inventory(server):
    assert register(server, mac=MAC, inventory=INVENTORY).status_code == 201
    cli = [sys.executable, "-m", "server_stub", "--server", server["url"],
           "--token-file", str(server["data"] / "admin.token")]
    shown = subprocess.run([*cli, "host", "show", "mac5254000000aa"], capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0, shown.stderr
    for expected in ("registered: quick", "QEMU Standard PC", "serial SN-1", "Intel Xeon (4 cores, 8 threads)",
                     "8.0 GiB", "/dev/sda  512.0 GB  Samsung SSD  serial S4EWNX0", "ssd",
                     "eth0  52:54:00:00:00:aa  1000 Mb/s"):
        assert expected in shown.stdout, shown.stdout
    raw = subprocess.run([*cli, "host", "inventory", MAC], capture_output=True, text=True, timeout=30)
    assert json.loads(raw.stdout)["data"] == INVENTORY
    listed = subprocess.run([*cli, "host", "list"], capture_output=True, text=True, timeout=30).stdout
    assert "mac5254000000aa" in listed and "quick" in listed
    queued = subprocess.run([*cli, "task", "inventory", "mac5254000000aa", "--json"], capture_output=True, text=True,
                            timeout=30)
    assert json.loads(queued.stdout)["type"] == "inventory", queued.stderr


def test_the_client_registers_this_very_machine(server):
    """The client's recipe on real /proc and /sys (this machine's): what it collects passes the server's checks."""
    import os

    from imager.errors import RegistrationRefused
    from imager.ops.register import register as register_this_machine

    host = register_this_machine(server["url"], "52:54:00:00:00:cc")
    assert host["name"] == "mac5254000000cc" and host["registered"] == "quick"
    stored = admin(server, "GET", "/api/hosts/mac5254000000cc/inventory").json()["data"]
    assert stored["cpu"]["threads"] == os.cpu_count() and stored["memory_bytes"] > 2**28
    with pytest.raises(RegistrationRefused, match="409"):
        register_this_machine(server["url"], "52:54:00:00:00:cc")
