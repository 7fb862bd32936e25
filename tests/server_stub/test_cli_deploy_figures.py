"""``imager-server task show`` and ``report tasks --csv`` against a real server (issue 17): a deploy whose client
reported reused, fetched and wrote bytes (through the real client API, with the token its boot script's claim
gets) shows "moved: reused …, fetched …, wrote …" and the CSV has the three columns."""
from __future__ import annotations

import csv
import io
from typing import Any

import requests

from tests.server_stub.cliproc import cli
from tests.server_stub.conftest import server, server_args  # noqa: F401

GIB, MIB = 1 << 30, 1 << 20


def client_token(server: dict[str, Any], mac: str) -> tuple[int, dict[str, str]]:  # noqa: F811
    """What a booting machine does: the boot script's claim exchanged for the task token."""
    script = requests.get(f"{server['url']}/boot/{mac}.ipxe", timeout=10).text
    words = dict(w.split("=", 1) for w in script.split() if w.startswith(("imager.task=", "imager.claim=")))
    task_id = int(words["imager.task"])
    answer = requests.post(f"{server['url']}/api/tasks/{task_id}/claim", json={"claim": words["imager.claim"]},
                           timeout=10)
    assert answer.status_code == 200, answer.text
    return task_id, {"Authorization": f"Bearer {answer.json()['token']}"}


def report(server: dict[str, Any], task_id: int, what: str, body: dict[str, Any],  # noqa: F811
           token: dict[str, str]) -> requests.Response:
    return requests.post(f"{server['url']}/api/tasks/{task_id}/{what}", json=body, headers=token, timeout=10)


def test_task_show_and_the_csv_carry_the_figures(server: dict[str, Any]) -> None:  # noqa: F811
    for argv in (("storage", "add", "nas", "10.0.0.1:/images"), ("image", "add", "inc", "--storage", "nas"),
                 ("host", "add", "52:54:00:00:00:01", "pc1"), ("host", "add", "52:54:00:00:00:02", "pc2"),
                 ("task", "capture", "pc1", "inc")):
        assert cli(server, *argv).returncode == 0, argv
    capture, token = client_token(server, "52:54:00:00:00:01")
    assert report(server, capture, "checkin", {}, token).status_code == 200
    assert report(server, capture, "done", {"result": {"stored_bytes": 1, "raw_bytes": 1}}, token).status_code == 200
    assert cli(server, "task", "deploy", "pc2", "inc").returncode == 0
    deploy, token = client_token(server, "52:54:00:00:00:02")
    assert report(server, deploy, "checkin", {}, token).status_code == 200
    refused = report(server, deploy, "progress", {"percent": 5.0, "wrote_bytes": -1}, token)
    assert refused.status_code == 400 and "wrote_bytes" in refused.json()["error"]
    assert report(server, deploy, "progress", {"percent": 50.0, "stage": "d1p1", "reused_bytes": GIB,
                                              "fetched_bytes": 10 * MIB, "wrote_bytes": 12 * MIB}, token).ok
    shown = cli(server, "task", "show", str(deploy))
    assert shown.returncode == 0 and "moved:     reused 1.0 GiB, fetched 10.0 MiB, wrote 12.0 MiB" in shown.stdout
    assert report(server, deploy, "done", {"result": {"raw_bytes": 3 * GIB, "reused_bytes": 3 * GIB - 40 * MIB,
                                                      "fetched_bytes": 30 * MIB, "wrote_bytes": 40 * MIB}}, token).ok
    shown = cli(server, "task", "show", str(deploy))
    assert "moved:     reused 3.0 GiB, fetched 30.0 MiB, wrote 40.0 MiB" in shown.stdout, shown.stdout
    exported = cli(server, "report", "tasks", "--csv")
    header, *rows = list(csv.reader(io.StringIO(exported.stdout)))
    line = {r[0]: r for r in rows}[str(deploy)]
    assert [line[header.index(k)] for k in ("reused_bytes", "fetched_bytes", "wrote_bytes")] == [
        str(3 * GIB - 40 * MIB), str(30 * MIB), str(40 * MIB)]
    assert [line[header.index("wrote_bytes")] for line in rows if line[0] == str(capture)] == [""]
