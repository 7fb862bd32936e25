"""Host groups and Wake-on-LAN settings over the HTTP API of a real server process, and the same through the
CLI. (Packets on the wire: test_wol_netns.py, in namespaces of its own.)"""
import json

import requests

from tests.server_stub.cliproc import cli
from tests.server_stub.test_api import admin

HOSTS = {"52:54:00:00:00:01": "pc1", "52:54:00:00:00:02": "pc2", "52:54:00:00:00:03": "pc3"}


def setup_hosts(server):
    assert admin(server, "POST", "/api/storage", name="main", export="10.0.0.1:/images").status_code == 201
    assert admin(server, "POST", "/api/images", name="win10", storage="main").status_code == 201
    for mac, name in HOSTS.items():
        assert admin(server, "POST", "/api/hosts", mac=mac, name=name).status_code == 201


def test_groups_are_made_filled_shown_renamed_and_removed(server):
    setup_hosts(server)
    r = admin(server, "POST", "/api/host-groups", name="lab3", description="room 3")
    assert r.status_code == 201 and r.json()["hosts"] == 0, r.text
    r = admin(server, "POST", "/api/host-groups/lab3/hosts", hosts=["pc1", "52:54:00:00:00:02"])
    assert r.status_code == 200 and [m["name"] for m in r.json()["members"]] == ["pc1", "pc2"]
    assert admin(server, "POST", "/api/host-groups", name="windows").status_code == 201
    assert admin(server, "POST", "/api/host-groups/windows/hosts", hosts=["pc1"]).status_code == 200
    listed = admin(server, "GET", "/api/host-groups").json()
    assert [(g["name"], g["hosts"], g["idle"]) for g in listed] == [("lab3", 2, 2), ("windows", 1, 1)]
    assert admin(server, "GET", "/api/hosts/pc1").json()["groups"] == ["lab3", "windows"]
    r = admin(server, "POST", "/api/host-groups/lab3", name="lab-3")
    assert r.status_code == 200 and r.json()["name"] == "lab-3"
    r = admin(server, "POST", "/api/host-groups/lab-3/hosts/remove", hosts=["pc2"])
    assert [m["name"] for m in r.json()["members"]] == ["pc1"]
    r = admin(server, "DELETE", "/api/host-groups/lab-3")
    assert r.status_code == 200 and admin(server, "GET", "/api/host-groups/lab-3").status_code == 404
    assert admin(server, "GET", "/api/hosts/pc1").status_code == 200  # hosts stay


def test_bad_group_requests_are_4xx_with_a_clear_message(server):
    setup_hosts(server)
    assert admin(server, "POST", "/api/host-groups", name="lab3").status_code == 201
    cases = [
        (("POST", "/api/host-groups"), {"name": "lab 3"}, 400, "group name"),
        (("POST", "/api/host-groups"), {"name": "lab3"}, 409, "exists already"),
        (("POST", "/api/host-groups"), {"name": "x", "colour": "red"}, 400, "unknown field colour"),
        (("POST", "/api/host-groups/lab3/hosts"), {"hosts": "pc1"}, 400, "hosts"),
        (("POST", "/api/host-groups/lab3/hosts"), {"hosts": ["pc9"]}, 404, "no host 'pc9'"),
        (("POST", "/api/host-groups/nosuch/hosts"), {"hosts": ["pc1"]}, 404, "no host group 'nosuch'"),
        (("POST", "/api/host-groups/lab3/tasks"), {"type": "inventory"}, 400, "has no hosts"),
        (("POST", "/api/host-groups/lab3/tasks"), {"type": "inventory", "wake": "yes"}, 400, "wake must be"),
        (("POST", "/api/host-groups/lab3/tasks"), {"type": "inventory", "rate": "1g"}, 400, "multicast session only"),
        (("POST", "/api/host-groups/lab3/tasks"), {"type": "capture", "multicast": True}, 400, "deploy"),
        (("POST", "/api/hosts/pc1/wake"), {}, 200, ""),
        (("POST", "/api/hosts/pc9/wake"), {}, 404, "no host 'pc9'"),
        (("POST", "/api/host-groups/lab3/wake"), {}, 400, "no hosts to wake"),
        (("POST", "/api/multicast"), {"image": "win10", "hosts": ["pc1"], "wake": "yes"}, 400, "wake must be"),
        (("POST", "/api/tasks"), {"host": "pc1", "type": "inventory", "wake": 1}, 400, "wake must be"),
        (("POST", "/api/wake-targets"), {"broadcast": "10.0.3"}, 400, "IPv4 broadcast address"),
        (("POST", "/api/wake-targets"), {"broadcast": "224.0.0.1"}, 400, "IPv4 broadcast address"),
        (("POST", "/api/wake-targets"), {"broadcast": "ff02::1"}, 400, "IPv4 broadcast address"),
        (("POST", "/api/wake-targets"), {"interface": "eth0/../x"}, 400, "network interface name"),
        (("POST", "/api/wake-targets"), {"storage_group": "nosuch", "broadcast": "10.0.3.255"}, 404, "nosuch"),
    ]
    for (method, path), body, status, words in cases:
        r = admin(server, method, path, **body)
        assert r.status_code == status, (path, body, r.text)
        assert words in r.text, (path, body, r.text)
    r = requests.post(server["url"] + "/api/host-groups/lab3/tasks", data=b"{nope", headers=server["admin"],
                      timeout=10)
    assert r.status_code == 400
    assert requests.get(server["url"] + "/api/host-groups", timeout=10).status_code == 401


def test_a_group_task_skips_busy_hosts_and_wake_is_not_sent_without_a_target(server):
    setup_hosts(server)
    admin(server, "POST", "/api/host-groups", name="lab3")
    admin(server, "POST", "/api/host-groups/lab3/hosts", hosts=list(HOSTS.values()))
    busy = admin(server, "POST", "/api/tasks", host="pc2", type="inventory", wake=False).json()
    r = admin(server, "POST", "/api/host-groups/lab3/tasks", type="wipe", options={"mode": "fast"})
    assert r.status_code == 201, r.text
    answer = r.json()
    assert sorted(t["host"] for t in answer["queued"]) == ["pc1", "pc3"]
    assert all("token" not in t and t["queued_by"] == "admin" for t in answer["queued"])
    assert answer["skipped"] == [{"host": "pc2", "task_id": busy["id"],
                                  "reason": f"has a queued inventory task ({busy['id']})"}]
    # No wake target is set: nothing goes on the wire, and the answer says why.
    assert answer["wake"] == {"sent": [], "failed": [], "not_configured": ["pc1", "pc3"]}
    r = admin(server, "POST", "/api/host-groups/lab3/tasks", type="inventory")
    assert r.status_code == 200 and r.json()["queued"] == [] and len(r.json()["skipped"]) == 3
    state = admin(server, "GET", "/api/host-groups/lab3").json()
    assert (state["queued"], state["idle"], state["last_task"]["type"]) == (3, 0, "wipe")


def test_wake_targets_are_set_per_storage_group_and_cleared(server):
    setup_hosts(server)
    r = admin(server, "POST", "/api/wake-targets", broadcast="10.0.3.255")
    assert r.status_code == 200 and r.json()["setting"]["broadcast"] == "10.0.3.255"
    r = admin(server, "POST", "/api/wake-targets", storage_group="default", interface="eth1")
    assert r.status_code == 200, r.text
    settings = admin(server, "GET", "/api/wake-targets").json()
    assert [(s["storage_group"], s["broadcast"], s["interface"]) for s in settings] == \
        [(None, "10.0.3.255", None), ("default", None, "eth1")]
    r = admin(server, "POST", "/api/wake-targets", storage_group="default")
    assert r.json()["removed"] is True
    assert len(admin(server, "GET", "/api/wake-targets").json()) == 1


def test_the_cli_manages_groups_queues_for_them_and_reports_wakes(server):
    setup_hosts(server)
    assert cli(server, "group", "add", "lab3", "--description", "room 3").returncode == 0
    done = cli(server, "group", "add-hosts", "lab3", "pc1,pc2")
    assert done.returncode == 0 and "pc1" in done.stdout and "pc2" in done.stdout, done.stderr
    assert "groups:     lab3\n" in cli(server, "host", "show", "pc1").stdout
    done = cli(server, "group", "task", "lab3", "inventory", "--no-wake", "--after", "poweroff")
    assert done.returncode == 0 and done.stdout.count("inventory") == 2, done.stderr
    listed = cli(server, "group", "list")
    assert "lab3" in listed.stdout and "inventory queued on" in listed.stdout
    shown = json.loads(cli(server, "group", "show", "lab3", "--json").stdout)
    assert (shown["hosts"], shown["queued"]) == (2, 2)
    again = cli(server, "group", "task", "lab3", "inventory")
    assert again.returncode == 0 and "nothing queued" in again.stdout and "skipped pc1" in again.stdout
    refused = cli(server, "host", "wake", "pc3")  # no target set: nothing sent, exit status 1, told why
    assert refused.returncode == 1 and "no Wake-on-LAN target is set" in refused.stderr
    assert cli(server, "wake", "set", "--broadcast", "10.0.3.256").returncode == 1
    assert cli(server, "wake", "set").returncode == 2
    assert cli(server, "host", "wake").returncode == 2
    assert cli(server, "task", "inventory", "pc3", "--no-wake").returncode == 0
    assert cli(server, "group", "set", "lab3", "--name", "lab-3").returncode == 0
    removed = cli(server, "group", "remove", "lab-3")
    assert removed.returncode == 0 and "its 2 hosts stay" in removed.stdout
