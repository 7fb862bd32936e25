"""Every route of a real server, fed garbage: each answer is a 4xx in the one error shape, never a 5xx.
And the failure report: its error code must be one contract.errorcodes knows."""
import re
import subprocess
import sys
from pathlib import Path

import requests
import yaml

from contract.errorcodes import ERROR_CODES
from tests.server_stub.test_api import admin, setup_task, token_of

SPEC = yaml.safe_load((Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml").read_text())
MAC = "52:54:00:00:00:01"
# Every field some route reads, and values of the wrong type or size for most of them.
FIELDS = ("name", "mac", "export", "options", "group", "master", "max_clients", "rsync_target", "storage",
          "description", "type", "image", "host", "hosts", "disk", "after", "partition", "result", "error", "log",
          "password", "hostname", "inventory", "min_receivers", "max_wait", "rate", "interface",
          "content", "order", "timeout", "policy", "http_url")
ODD = (5, -1, 2**70, 1.5, True, None, [], {}, ["x", 1], {"$ne": 1}, "", "x" * 300, "../etc", "\x00\x1b[2J")
RAW = (b"[]", b'"x"', b"5", b"null", b"{", b"\xff\xfe", b"[" * 100_000, b"{" + b" " * (2 * 1024 * 1024) + b"}")


def bodies():
    for raw in RAW:
        yield {"data": raw}
    for value in ODD:
        yield {"json": {field: value for field in FIELDS}}
    for i, field in enumerate(FIELDS):  # one field wrong at a time, the others absent
        yield {"json": {field: ODD[i % len(ODD)]}}
        yield {"json": {field: ODD[(i + 7) % len(ODD)]}}


def concrete_paths(path, task_id):
    """The route with real names and ids, and with odd ones."""
    real = {"id": str(task_id), "key": "pc1", "name": "main" if "storage" in path else "win10", "mac": MAC,
            "script": "1", "version": "win10", "file": "manifest.json", "prefix": "ab"}
    odd = {"id": str(2**64), "key": "x" * 500, "name": "..", "mac": "::::::::::::::::", "script": str(2**64),
           "version": "win10@..", "file": "x" * 500, "prefix": ".."}
    for values in (real, odd):
        yield re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


def auth_for(path, server, task_token, session):
    if re.fullmatch(r"/api/tasks/\{id\}/(checkin|progress|done|failed|ready|scripts/\{script\}|"
                    r"image/\{version\}/\{file\}|chunks/\{prefix\}/\{file\})", path):
        return {"Authorization": f"Bearer {task_token}"}
    if path.startswith("/api/menu/") and path != "/api/menu/login":
        return {"Authorization": f"Bearer {session}"}
    return server["admin"]


def assert_refusal_shape(answer, what):
    assert answer.status_code < 500, f"{what}: {answer.status_code} {answer.text[:300]}"
    if answer.status_code >= 400 and answer.headers.get("Content-Type", "").startswith("application/json"):
        body = answer.json()
        assert isinstance(body.get("error"), str) and isinstance(body.get("code"), str), f"{what}: {body}"


def test_no_request_makes_the_server_answer_5xx(server):
    task = setup_task(server)
    task_token = token_of(server, MAC)
    session = requests.post(server["url"] + "/api/menu/login", json={"mac": MAC, "password": server["admin"][
        "Authorization"].removeprefix("Bearer ")}, timeout=10).json()["session"]
    tried = 0
    with requests.Session() as http:
        for path, item in SPEC["paths"].items():
            for method in (m for m in item if m in ("get", "post")):
                headers = auth_for(path, server, task_token, session)
                for concrete in concrete_paths(path, task["id"]):
                    url = server["url"] + concrete
                    if method == "get":
                        for query in ({}, {"mac": "zz", "image": "\x00", "all": "x"}):
                            assert_refusal_shape(http.get(url, params=query, headers=headers, timeout=30),
                                                 f"GET {concrete} {query}")
                            tried += 1
                        continue
                    for body in bodies():
                        answer = http.post(url, headers=headers, timeout=30, **body)
                        assert_refusal_shape(answer, f"POST {concrete} {str(body)[:120]}")
                        tried += 1
    assert tried > 1000
    assert requests.get(server["url"] + "/boot.ipxe", timeout=10).status_code == 200, "still serving"
    assert "Traceback" not in (server["data"].parent / "server.log").read_text(), "no exception, even a handled one"


def running_task(server):
    task = setup_task(server)
    auth = {"Authorization": "Bearer " + token_of(server, MAC)}
    base = f"{server['url']}/api/tasks/{task['id']}"
    assert requests.post(base + "/checkin", headers=auth, json={}, timeout=10).status_code == 200
    return task, base, auth


def test_a_failure_report_with_an_unknown_or_missing_code_is_refused(server):
    task, base, auth = running_task(server)
    for error, message in (({"code": "disk_on_fire", "message": "m", "hint": "", "details": {}},
                            "'disk_on_fire' is not a known error code"),
                           ({"message": "m", "hint": "", "details": {}}, "error.code is missing"),
                           ("something broke", "error must be an object"),
                           ({"code": "network", "message": 5}, "error.message and error.hint must be strings")):
        answer = requests.post(base + "/failed", headers=auth, json={"error": error, "log": "tail"}, timeout=10)
        assert answer.status_code == 400 and message in answer.json()["error"], answer.text
        assert answer.json()["code"] == "invalid"
    assert sorted(answer.json().get("details", {}).get("known", ERROR_CODES)) == sorted(ERROR_CODES)
    assert admin(server, "GET", f"/api/tasks/{task['id']}").json()["state"] == "running"


def test_a_failure_report_with_a_known_code_is_stored(server):
    task, base, auth = running_task(server)
    report = {"code": "disk_not_found", "message": "no disk matches serial=X", "hint": "check --disk",
              "details": {"selector": "serial=X"}}
    answer = requests.post(base + "/failed", headers=auth, json={"error": report, "log": "last lines"}, timeout=10)
    assert answer.status_code == 200
    record = admin(server, "GET", f"/api/tasks/{task['id']}").json()
    assert record["state"] == "failed" and record["error"] == report


def test_refusals_carry_a_code(server):
    answer = requests.get(server["url"] + "/api/hosts", timeout=10)
    assert answer.status_code == 401 and answer.json() == {
        "error": "admin credential missing or wrong (see <data-dir>/admin.token, or sign in)", "code": "unauthorized"}
    answer = admin(server, "GET", "/api/tasks/12345")
    assert answer.status_code == 404 and answer.json() == {"error": "no task 12345", "code": "not_found"}
    answer = admin(server, "POST", "/api/hosts", mac="zz", name="x")
    assert answer.status_code == 400 and answer.json()["code"] == "invalid" and "not a MAC" in answer.json()["error"]


def test_the_cli_prints_the_servers_message(server):
    done = subprocess.run([sys.executable, "-m", "server_stub", "--server", server["url"], "--token-file",
                           str(server["data"] / "admin.token"), "host", "add", "zz", "pc9"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == "imager-server: HTTP 400: 'zz' is not a MAC address (aa:bb:cc:dd:ee:ff)\n"
