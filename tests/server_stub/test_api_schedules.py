"""Schedules over HTTP and the CLI against a real server (subprocess, loopback, TZ=Europe/Berlin): add, list,
show, edit, pause, resume, delete; refusals with 4xx and one line; who may do what; the audit log; a run missed
while the server was down done at its next start."""
import re
import sqlite3
import time

import pytest
import requests

from tests.server_stub.cliproc import cli
from tests.server_stub.test_api import admin


@pytest.fixture
def server_args(monkeypatch):
    monkeypatch.setenv("TZ", "Europe/Berlin")   # the server's time zone (inherited by the subprocess)
    return []


@pytest.fixture
def fleet(server):
    assert admin(server, "POST", "/api/storage", name="main", export="10.0.0.1:/images").status_code == 201
    assert admin(server, "POST", "/api/images", name="win10", storage="main").status_code == 201
    for n in (1, 2, 3):
        assert admin(server, "POST", "/api/hosts", mac=f"52:54:00:00:00:0{n}", name=f"pc{n}").status_code == 201
    assert admin(server, "POST", "/api/hosts/pc1", group="lab3").status_code == 200
    assert admin(server, "POST", "/api/hosts/pc2", group="lab3").status_code == 200
    return server


def ok(done):
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return done.stdout


def test_cli_add_list_show_edit_pause_resume_delete(fleet):
    added = ok(cli(fleet, "schedule", "add", "lab3-nightly", "deploy", "win10", "--group", "lab3",
                   "--cron", "0 2 * * sun"))
    assert re.search(r"^state:\s+active$", added, re.M) and re.search(r"^targets:\s+group lab3$", added, re.M)
    assert re.search(r"^next_run_local:\s+\d{4}-\d\d-\d\d 02:00 CET$", added, re.M), added
    assert re.search(r"^wake:\s+yes$", added, re.M) and re.search(r"^created_by:\s+admin$", added, re.M)
    ok(cli(fleet, "schedule", "add", "pc3-inventory", "inventory", "--hosts", "pc3", "--at", "2099-01-05 18:30",
           "--no-wake", "--after", "poweroff"))

    listed = ok(cli(fleet, "schedule", "list"))
    assert re.search(r"^\d+\s+lab3-nightly\s+active\s+cron 0 2 \* \* sun\s+\S+ 02:00 CET\s+deploy\s+win10\s+group lab3"
                     r"\s+yes$", listed, re.M), listed
    assert re.search(r"pc3-inventory\s+active\s+once at 2099-01-05 18:30 CET\s+2099-01-05 18:30 CET\s+inventory\s+"
                     r"pc3\s+no$", listed, re.M), listed
    assert listed.rstrip().endswith("(times in the server's time zone, Europe/Berlin)")

    shown = ok(cli(fleet, "schedule", "show", "lab3-nightly"))
    assert "runs:\n  none yet" in shown

    edited = ok(cli(fleet, "schedule", "edit", "lab3-nightly", "--cron", "30 22 * * mon-fri", "--hosts", "pc1,pc3",
                    "--after", "poweroff", "--no-wake"))
    assert re.search(r"^when:\s+cron 30 22 \* \* mon-fri$", edited, re.M)
    assert re.search(r"^targets:\s+pc1,pc3$", edited, re.M) and re.search(r"^wake:\s+no$", edited, re.M)
    assert re.search(r"^next_run_local:\s+\S+ 22:30 CET$", edited, re.M)

    assert re.search(r"^state:\s+paused$", ok(cli(fleet, "schedule", "pause", "lab3-nightly")), re.M)
    refused = cli(fleet, "schedule", "pause", "lab3-nightly")
    assert refused.returncode == 1 and refused.stderr.strip() == \
        "imager-server: HTTP 409: schedule lab3-nightly is paused already"
    assert re.search(r"^state:\s+active$", ok(cli(fleet, "schedule", "resume", "lab3-nightly")), re.M)

    as_json = admin(fleet, "GET", "/api/schedules").json()
    assert as_json["zone"] == "Europe/Berlin"
    [nightly] = [s for s in as_json["schedules"] if s["name"] == "lab3-nightly"]
    assert ok(cli(fleet, "schedule", "delete", str(nightly["id"]))).strip() == "deleted schedule lab3-nightly"
    assert [s["name"] for s in admin(fleet, "GET", "/api/schedules").json()["schedules"]] == ["pc3-inventory"]

    actions = [(e["action"], e["target"], e["outcome"]) for e in admin(fleet, "GET", "/api/audit").json()["rows"]]
    assert ("POST /api/schedules", "lab3-nightly", "201") in actions
    assert ("POST /api/schedules/lab3-nightly/pause", "lab3-nightly", "409 conflict") in actions
    assert ("DELETE /api/schedules/" + str(nightly["id"]), str(nightly["id"]), "200") in actions


@pytest.mark.parametrize("args, words", [
    (("deploy", "win10", "--hosts", "pc1", "--cron", "0 25 * * *"), "HTTP 400: cron rule: hour: 25 is outside 0-23"),
    (("deploy", "win10", "--hosts", "pc1", "--at", "2001-01-01 00:00"), "HTTP 400: 2001-01-01 00:00 CET is past"),
    (("deploy", "win10", "--hosts", "pc1", "--at", "soon"), "HTTP 400: 'soon' is not a time"),
    (("deploy", "nothing", "--hosts", "pc1", "--cron", "@daily"), "HTTP 404: no image 'nothing'"),
    (("deploy", "win10", "--hosts", "nobody", "--cron", "@daily"), "HTTP 404: no host 'nobody'"),
    (("deploy", "win10", "--group", "nogroup", "--cron", "@daily"), "HTTP 404: no host group 'nogroup'"),
    (("capture", "win10", "--hosts", "pc1,pc2", "--cron", "@daily"), "HTTP 400: a capture schedule names one host"),
    (("wipe", "--hosts", "pc1", "--cron", "@daily"), "HTTP 400: a wipe task needs options"),
])
def test_cli_refusals_are_one_line(fleet, args, words):
    refused = cli(fleet, "schedule", "add", "s1", *args)
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.startswith("imager-server: " + words), refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def test_cli_argument_refusals(fleet):
    both = cli(fleet, "schedule", "add", "s1", "deploy", "win10", "--hosts", "pc1", "--group", "lab3",
               "--cron", "@daily")
    assert both.returncode == 2 and "not allowed with argument" in both.stderr
    neither = cli(fleet, "schedule", "add", "s1", "deploy", "win10", "--hosts", "pc1")
    assert neither.returncode == 2 and "one of the arguments --cron --at is required" in neither.stderr


@pytest.mark.parametrize("body, status, words", [
    ({"name": "s", "type": "deploy", "image": "win10", "hosts": "pc1", "rule": "@daily"}, 400, "hosts must be a list"),
    ({"name": "s", "type": "deploy", "image": "win10", "hosts": ["pc1"], "rule": 5}, 400, "rule must be a string"),
    ({"name": "s", "type": "deploy", "image": "win10", "hosts": ["pc1"], "rule": "@daily", "wake": "yes"}, 400,
     "wake must be true or false"),
    ({"name": "s", "type": "deploy", "image": "win10", "hosts": ["pc1"], "rule": "@daily", "catch_up": 1.5}, 400,
     "catch_up must be a whole number"),
    ({"name": "s", "type": "deploy", "image": "win10", "hosts": ["pc1"], "rule": "@daily", "when": "now"}, 400,
     "unknown field when"),
    ({"name": "s", "type": "debug", "hosts": ["pc1"], "rule": "@daily"}, 400, "a schedule queues one of"),
    ({"name": "s", "type": "deploy", "image": "win10", "hosts": ["pc1"] * 2, "rule": "@daily"}, 400,
     "give each host once"),
    ({"name": "s", "type": "deploy", "image": "win10", "hosts": [f"h{n}" for n in range(1001)], "rule": "@daily"},
     400, "at most 1000 hosts"),
    ({"name": "../x", "type": "inventory", "hosts": ["pc1"], "rule": "@daily"}, 400, "schedule name '../x'"),
])
def test_api_refusals_are_4xx(fleet, body, status, words):
    answer = admin(fleet, "POST", "/api/schedules", **body)
    assert answer.status_code == status and words in answer.json()["error"], answer.text
    assert admin(fleet, "GET", "/api/schedules").json()["schedules"] == []


def test_api_unknown_keys_and_malformed_bodies(fleet):
    for method, path in (("GET", "/api/schedules/nothing"), ("POST", "/api/schedules/nothing/pause"),
                         ("DELETE", "/api/schedules/99999999999999999999999"), ("GET", "/api/schedules/%C3%A9")):
        assert admin(fleet, method, path).status_code == 404, path
    broken = requests.post(fleet["url"] + "/api/schedules", data=b"{nope", headers=fleet["admin"], timeout=10)
    assert broken.status_code == 400
    assert requests.get(fleet["url"] + "/api/schedules", timeout=10).status_code == 401


def technician_session(server):
    """A console user with the technician role, signed in: (session, headers with its anti-forgery token)."""
    password = "a long enough secret"
    done = cli(server, "user", "add", "tech", "--role", "technician", "--password-stdin", stdin=password + "\n")
    assert done.returncode == 0, done.stderr
    session = requests.Session()
    assert session.post(server["url"] + "/signin", data={"name": "tech", "password": password},
                        allow_redirects=False, timeout=10).status_code == 303
    csrf = re.search(r'name="csrf" value="([^"]+)"', session.get(server["url"] + "/", timeout=10).text).group(1)
    return session, {"X-CSRF-Token": csrf}


def test_a_technician_sees_pauses_and_resumes_but_does_not_add_edit_or_delete(fleet):
    ok(cli(fleet, "schedule", "add", "nightly", "inventory", "--hosts", "pc1", "--cron", "@daily"))
    session, headers = technician_session(fleet)
    url = fleet["url"] + "/api/schedules"
    assert session.get(url, timeout=10).json()["schedules"][0]["name"] == "nightly"
    assert session.post(url + "/nightly/pause", headers=headers, timeout=10).json()["state"] == "paused"
    assert session.post(url + "/nightly/resume", headers=headers, timeout=10).json()["state"] == "active"
    body = {"name": "other", "type": "inventory", "hosts": ["pc2"], "rule": "@daily"}
    for method, path, data in (("POST", "", body), ("POST", "/nightly", {"wake": False}), ("DELETE", "/nightly", None)):
        refused = session.request(method, url + path, json=data, headers=headers, timeout=10)
        assert refused.status_code == 403 and "needs the admin role" in refused.json()["error"], (method, path)
    assert session.post(url + "/nightly/pause", timeout=10).status_code == 403  # no anti-forgery token


def test_a_run_missed_while_the_server_was_down_runs_at_start(fleet):
    ok(cli(fleet, "schedule", "add", "inv", "inventory", "--hosts", "pc3", "--cron", "*/5 * * * *"))
    fleet["proc"].terminate()
    fleet["proc"].wait(10)
    # as if the server had stopped just before a run 10 minutes ago, then restarted now
    with sqlite3.connect(fleet["data"] / "imager.sqlite3") as db:
        db.execute("UPDATE schedules SET next_run = ?", (time.time() - 600,))
    fleet["restart"]()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not admin(fleet, "GET", "/api/tasks").json():
        time.sleep(0.1)
    [task] = admin(fleet, "GET", "/api/tasks").json()
    assert (task["host"], task["type"], task["queued_by"]) == ("pc3", "inventory", "schedule inv")
    [run] = admin(fleet, "GET", "/api/schedules/inv").json()["runs"]
    assert (run["outcome"], run["task_ids"]) == ("queued", [task["id"]])
