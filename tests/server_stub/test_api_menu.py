"""The technician's menu API against a real server: login, sessions bound to a MAC, tasks, and attempts to abuse it."""
import subprocess
import sys

import pytest
import requests

from imager.errors import LoginRefused
from imager.menuapi import MenuClient, Refused
from tests.server_stub.test_api import admin

MAC = "52:54:00:00:05:01"
OTHER = "52:54:00:00:05:02"
INVENTORY = {"dmi": {}, "cpu": {"model": "x", "sockets": 1, "cores": 1, "threads": 1}, "memory_bytes": 2**30,
             "disks": [], "nics": []}


def admin_token(server) -> str:
    return server["admin"]["Authorization"].removeprefix("Bearer ")


def registered(server, mac=MAC, **fields):
    r = requests.post(server["url"] + "/api/register", json={"mac": mac, "inventory": INVENTORY, **fields}, timeout=10)
    assert r.status_code == 201, r.text
    return r.json()["host"]


def with_image(server, name="win10", captured=False):
    if admin(server, "GET", "/api/storage").json() == []:
        assert admin(server, "POST", "/api/storage", name="main", export="10.0.0.1:/images").status_code == 201
    assert admin(server, "POST", "/api/images", name=name, storage="main").status_code == 201


def test_the_admin_token_or_the_technician_password_opens_a_session(server):
    client = MenuClient(server["url"], MAC, attempts=1)
    with pytest.raises(LoginRefused):
        client.login("guess-this-one")   # no technician password set yet: only the admin token
    assert not client.logged_in
    assert client.login(admin_token(server)) is None  # unknown MAC: no host yet
    r = admin(server, "POST", "/api/technician-password", password="short")
    assert r.status_code == 400
    assert admin(server, "POST", "/api/technician-password", password="fog-like-pass").status_code == 200
    tech = MenuClient(server["url"], MAC, attempts=1)
    with pytest.raises(LoginRefused):
        tech.login("fog-like-pasS")
    tech.login("fog-like-pass")
    assert tech.lists()["images"] == []
    # Setting the password is an admin call: a menu session is not an admin credential.
    r = requests.post(server["url"] + "/api/technician-password", json={"password": "x" * 12},
                      headers={"Authorization": f"Bearer {tech.token}"}, timeout=10)
    assert r.status_code == 401
    assert admin(server, "POST", "/api/technician-password", password=None).status_code == 200
    with pytest.raises(LoginRefused):
        MenuClient(server["url"], MAC, attempts=1).login("fog-like-pass")


def test_every_menu_call_needs_a_live_session(server):
    for method, path in (("GET", "/api/menu/lists"), ("POST", "/api/menu/tasks"), ("POST", "/api/menu/images")):
        for headers in ({}, {"Authorization": "Bearer made-up"}, server["admin"]):
            r = requests.request(method, server["url"] + path, json={"type": "inventory"}, headers=headers, timeout=10)
            assert r.status_code == 401, (method, path, headers, r.text)


def test_a_menu_task_is_an_ordinary_task_of_the_sessions_own_host(server):
    with_image(server)
    client = MenuClient(server["url"], MAC, attempts=1)
    client.login(admin_token(server))
    with pytest.raises(Refused, match="register this machine first"):
        client.create_task("inventory")
    registered(server, hostname="lab-pc", image="win10", group="room-1")
    assert client.lists()["host"]["name"] == "lab-pc" and client.lists()["host_groups"] == ["room-1"]
    with pytest.raises(Refused, match="never been captured"):
        client.create_task("deploy", image="win10")
    with pytest.raises(Refused, match="unknown fields: host"):
        client._call("POST", "/api/menu/tasks", {"type": "inventory", "host": "someone-else"})
    with pytest.raises(Refused, match="wipe task needs options"):
        client.create_task("wipe", options={"mode": "quick"})
    task_id, token = client.create_task("wipe", disk="/dev/vda", options={"mode": "fast"})
    task = admin(server, "GET", f"/api/tasks/{task_id}").json()
    assert (task["host"], task["type"], task["origin"], task["options"], task["disk"], task["state"]) == \
        ("lab-pc", "wipe", "menu", {"mode": "fast"}, "/dev/vda", "queued")
    assert "token" not in task
    # The machine runs it with the task's own token, as an unattended boot does.
    r = requests.post(f"{server['url']}/api/tasks/{task_id}/checkin", json={},
                      headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 200 and r.json()["options"] == {"mode": "fast"} and r.json()["type"] == "wipe"
    with pytest.raises(Refused, match="active task already"):
        client.create_task("disktest")


def test_capture_to_a_new_image_from_the_menu(server):
    with_image(server, "existing")
    registered(server)
    client = MenuClient(server["url"], MAC, attempts=1)
    client.login(admin_token(server))
    assert client.add_image("made-at-the-machine", "multipart") == \
        {"name": "made-at-the-machine", "type": "multipart", "group": "default"}
    with pytest.raises(Refused, match="exists already"):
        client.add_image("made-at-the-machine", "resizable")
    with pytest.raises(Refused):
        client.add_image("../etc", "resizable")
    task_id, _ = client.create_task("capture", image="made-at-the-machine")
    assert admin(server, "GET", f"/api/tasks/{task_id}").json()["image"] == "made-at-the-machine"


def test_a_session_is_bound_to_the_mac_that_logged_in(server):
    registered(server, MAC, hostname="pc-one")
    registered(server, OTHER, hostname="pc-two")
    client = MenuClient(server["url"], OTHER, attempts=1)
    assert client.login(admin_token(server))["name"] == "pc-two"
    task_id, _ = client.create_task("inventory")
    assert admin(server, "GET", f"/api/tasks/{task_id}").json()["host"] == "pc-two"


def test_failed_logins_are_rate_limited(server):
    for _ in range(10):
        r = requests.post(server["url"] + "/api/menu/login", json={"mac": MAC, "password": "nope"}, timeout=10)
        assert r.status_code == 401
    r = requests.post(server["url"] + "/api/menu/login", json={"mac": MAC, "password": admin_token(server)},
                      timeout=10)
    assert r.status_code == 429 and r.headers["Retry-After"] == "60"
    r = requests.post(server["url"] + "/api/menu/login", json={"mac": "not-a-mac", "password": "x"}, timeout=10)
    assert r.status_code == 400


def cli(server, *args, stdin=""):
    return subprocess.run([sys.executable, "-m", "server_stub", "--server", server["url"],
                           "--token-file", str(server["data"] / "admin.token"), *args],
                          input=stdin, capture_output=True, text=True, timeout=60)


def test_cli_service_tasks_and_the_technician_password(server):
    registered(server, hostname="pc-cli")
    done = cli(server, "task", "wipe", "pc-cli", "--mode", "full", "--disk", "serial=ABC")
    assert done.returncode == 0, done.stderr
    task = admin(server, "GET", "/api/tasks").json()[-1]
    assert (task["type"], task["options"], task["disk"], task["origin"]) == ("wipe", {"mode": "full"}, "serial=ABC",
                                                                             "admin")
    assert cli(server, "task", "wipe", "pc-cli").returncode != 0  # --mode is required: no default erasure
    admin(server, "POST", f"/api/tasks/{task['id']}/cancel")
    assert cli(server, "task", "disktest", "pc-cli").returncode == 0
    assert admin(server, "GET", "/api/tasks").json()[-1]["type"] == "disktest"
    admin(server, "POST", f"/api/tasks/{admin(server, 'GET', '/api/tasks').json()[-1]['id']}/cancel")
    assert cli(server, "task", "debug", "pc-cli").returncode == 0
    assert admin(server, "GET", "/api/tasks").json()[-1]["type"] == "debug"
    assert cli(server, "technician", "password", stdin="typed-at-the-pc\n").returncode == 0
    MenuClient(server["url"], MAC, attempts=1).login("typed-at-the-pc")
    assert cli(server, "technician", "password", "--remove").returncode == 0
    with pytest.raises(LoginRefused):
        MenuClient(server["url"], MAC, attempts=1).login("typed-at-the-pc")
