"""History and reports over the HTTP API of a real server process, and the same through the CLI: who queued each
task (the admin token, a signed-in technician, a multicast session's tasks are covered in the console tests),
the CSV export (its header, quoting, formula defusing, row bound), the storage report, who may read them."""
import csv
import io
import subprocess
import sys

import requests

from imager.menuapi import MenuClient
from tests.server_stub.test_api import admin, token_of

MAC1, MAC2 = "52:54:00:00:00:01", "52:54:00:00:00:02"
PASSWORD = "a long enough secret"


def cli(server, *args, text=True):
    return subprocess.run([sys.executable, "-m", "server_stub", "--server", server["url"],
                           "--token-file", str(server["data"] / "admin.token"), *args],
                          capture_output=True, text=text, timeout=60)


def technician(server, name="tess"):
    """A requests session signed in to the console as a new technician."""
    assert admin(server, "POST", "/api/users", name=name, role="technician", password=PASSWORD).status_code == 201
    session = requests.Session()
    signed = session.post(f"{server['url']}/signin", data={"name": name, "password": PASSWORD},
                          allow_redirects=False, timeout=10)
    assert signed.status_code == 303
    return session


def run_deploy(server, mac, task_id, raw_bytes):
    auth = {"Authorization": f"Bearer {token_of(server, mac)}"}
    base = f"{server['url']}/api/tasks/{task_id}"
    assert requests.post(base + "/checkin", headers=auth, json={}, timeout=10).status_code == 200
    done = requests.post(base + "/done", headers=auth, json={"result": {"raw_bytes": raw_bytes}}, timeout=10)
    assert done.status_code == 200


def setup(server):
    assert admin(server, "POST", "/api/storage", name="main", export="10.0.0.1:/images").status_code == 201
    assert admin(server, "POST", "/api/images", name="win10", storage="main").status_code == 201
    for mac, name in ((MAC1, "pc1"), (MAC2, "pc2")):
        assert admin(server, "POST", "/api/hosts", mac=mac, name=name).status_code == 201


def test_history_names_who_queued_each_task_and_exports_csv(server):
    setup(server)
    capture = admin(server, "POST", "/api/tasks", host="pc1", type="capture", image="win10").json()
    assert capture["queued_by"] == "admin"  # the admin token (the CLI's credential too)
    run_deploy(server, MAC1, capture["id"], 123_456)
    tess = technician(server)
    queued = tess.post(f"{server['url']}/api/tasks", json={"host": "pc2", "type": "deploy", "image": "win10"},
                       headers={"X-CSRF-Token": tess.get(f"{server['url']}/").text.split('name="csrf" value="')[1]
                                .split('"')[0]}, timeout=10)
    assert queued.status_code == 201, queued.text
    assert queued.json()["queued_by"] == "tess"

    page = tess.get(f"{server['url']}/api/reports/tasks", params={"image": "win10"}, timeout=10).json()
    assert page["total"] == 2 and [(r["host"], r["queued_by"], r["state"]) for r in page["rows"]] == \
        [("pc2", "tess", "queued"), ("pc1", "admin", "done")]
    assert page["rows"][1]["bytes"] == 123_456 and page["rows"][1]["duration_s"] >= 0

    exported = tess.get(f"{server['url']}/api/reports/tasks.csv", params={"host": "pc1"}, timeout=10)
    assert exported.status_code == 200 and exported.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert exported.headers["Content-Disposition"] == 'attachment; filename="tasks-pc1.csv"'
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [(r["id"], r["host"], r["type"], r["image"], r["state"], r["queued_by"], r["bytes"]) for r in rows] == \
        [(str(capture["id"]), "pc1", "capture", "win10", "done", "admin", "123456")]
    assert exported.text.startswith("id,host,mac,type,") and exported.text.endswith("\r\n")

    # The CLI: a table by default, the same CSV with --csv.
    table = cli(server, "report", "tasks", "--image", "win10")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:6] == ["ID", "HOST", "TYPE", "IMAGE", "STATE", "QUEUED_BY"]
    assert lines[1].split()[1:6] == ["pc2", "deploy", "win10", "queued", "tess"]
    assert "120.6 KiB" in lines[2]
    shown = cli(server, "task", "show", str(capture["id"]))
    assert shown.returncode == 0 and "queued_by: admin" in shown.stdout, shown.stdout
    as_csv = cli(server, "report", "tasks", "--host", "pc1", "--csv", text=False)
    assert as_csv.returncode == 0 and as_csv.stdout == exported.content  # the same bytes, CRLF line ends


def test_bad_filters_are_refused_with_a_clear_4xx(server):
    setup(server)
    for params, status, field in (({"since": "last week"}, 400, "since"), ({"until": "2026-02-30"}, 400, "until"),
                                  ({"limit": "5000"}, 400, "limit"), ({"limit": "-1"}, 400, "limit"),
                                  ({"offset": "1e3"}, 400, "offset"), ({"host": "nope"}, 404, None),
                                  ({"since": "\x00"}, 400, "since"), ({"limit": "１２"}, 400, "limit"),
                                  ({"offset": "9" * 30}, 400, "offset"), ({"until": "2026-01-01T10:00+99:00"}, 400, "until"),
                                  ({"image": "nope"}, 404, None)):
        for path in ("/api/reports/tasks", "/api/reports/tasks.csv"):
            if path.endswith(".csv") and field in ("limit", "offset"):
                continue
            r = requests.get(server["url"] + path, params=params, headers=server["admin"], timeout=10)
            assert r.status_code == status, (path, params, r.text)
            assert r.json().get("details", {}).get("field") == field
    refused = cli(server, "report", "tasks", "--since", "last week")
    assert refused.returncode == 1 and "since must be a date" in refused.stderr and "Traceback" not in refused.stderr


def test_reports_need_a_signed_in_caller(server):
    for path in ("/api/reports/tasks", "/api/reports/tasks.csv", "/api/reports/storage"):
        assert requests.get(server["url"] + path, timeout=10).status_code == 401
        assert requests.get(server["url"] + path, headers={"Authorization": "Bearer guess"},
                            timeout=10).status_code == 401


def test_storage_report_over_the_api_and_the_cli(server, tmp_path):
    root = tmp_path / "node"
    (root / ".images" / "win10@20260101-000000").mkdir(parents=True)
    (root / ".images" / "win10@20260101-000000" / "disk.zst").write_bytes(b"x" * 2048)
    (root / "win10").symlink_to(".images/win10@20260101-000000")
    assert admin(server, "POST", "/api/storage", name="main", export="10.0.0.1:/images",
                 rsync_target=str(root)).status_code == 201
    assert admin(server, "POST", "/api/storage", name="far", export="10.0.0.2:/images",
                 rsync_target="rsync://10.0.0.2/images/").status_code == 201
    assert admin(server, "POST", "/api/images", name="win10", storage="main").status_code == 201
    tess = technician(server)
    report = tess.get(f"{server['url']}/api/reports/storage", timeout=10).json()
    assert report["stored_bytes"] == 2048
    assert [(v["version"], v["node"], v["current"]) for v in report["images"][0]["versions"]] == \
        [("win10@20260101-000000", "main", True)]
    nodes = {n["name"]: n for n in report["nodes"]}
    assert nodes["main"]["free_bytes"] > 0 and nodes["far"]["free_bytes"] is None
    shown = cli(server, "report", "storage")
    assert shown.returncode == 0, shown.stderr
    assert any(line.split()[:5] == ["win10", "default", "resizable", "1", "win10@20260101-000000"]
               for line in shown.stdout.splitlines()), shown.stdout
    far = next(line for line in shown.stdout.splitlines() if line.startswith("far "))
    assert far.split()[-2:] == ["unknown", "unknown"]
    assert "stored in all: 2.0 KiB" in shown.stdout


def test_a_menu_task_names_the_menu_and_its_credential(server):
    setup(server)
    assert admin(server, "POST", "/api/technician-password", password="fog-like-pass").status_code == 200
    client = MenuClient(server["url"], MAC2, attempts=1)
    client.login("fog-like-pass")
    task_id, _token = client.create_task("inventory")
    assert admin(server, "GET", f"/api/tasks/{task_id}").json()["queued_by"] == "menu (technician password)"
    row = admin(server, "GET", "/api/reports/tasks?host=pc2").json()["rows"][0]
    assert (row["id"], row["origin"], row["queued_by"]) == (task_id, "menu", "menu (technician password)")
