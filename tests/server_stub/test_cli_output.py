"""What admin commands print, against a real server: tables with local times and sizes in KiB/MiB/GiB;
``--json`` (before or after the command) the API's answer exactly; hosts and nodes renamed, an image not."""
import datetime
import json
import re

import requests

from server_stub import cli
from tests.server_stub.cliproc import clean_env, cli as run_cli
from tests.server_stub.test_api import admin
from tests.server_stub.test_api_images_storage import NEW, OLD, publish, setup_nodes, version_dir

INDIA = datetime.timezone(datetime.timedelta(hours=5, minutes=30))  # TZ=IST-5:30 in POSIX form: UTC+05:30


def in_india(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, INDIA).strftime("%Y-%m-%d %H:%M:%S")


def test_tables_show_local_times_and_human_sizes(server, tmp_path):
    setup_nodes(server, tmp_path)
    versions = admin(server, "GET", "/api/images/win10/versions").json()
    new_on_a = next(v for v in versions if v["version"] == NEW and v["node"] == "a")
    assert new_on_a["raw_bytes"] == 6005
    india = clean_env(TZ="IST-5:30")
    shown = run_cli(server, "image", "versions", "win10", env=india)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[0].split() == ["VERSION", "NODE", "CURRENT", "CREATED", "DATA", "STORED"]
    row = next(line for line in shown.stdout.splitlines() if line.startswith(NEW) and " a " in line)
    # The server's epoch seconds as the user's local time, bytes as KiB.
    assert re.search(rf"{NEW}\s+a\s+yes\s+{re.escape(in_india(new_on_a['created']))}\s+5\.9 KiB\s+", row), row
    assert "6005" not in shown.stdout
    assert admin(server, "POST", "/api/hosts", mac="52:54:00:00:00:01", name="pc1").status_code == 201
    task = admin(server, "POST", "/api/tasks", host="pc1", type="inventory").json()
    listed = run_cli(server, "task", "list", env=india).stdout
    assert re.search(rf"^{task['id']}\s+pc1\s+inventory\s+queued\s+{re.escape(in_india(task['created']))}$",
                     listed, re.M), listed


def test_json_after_or_before_a_command_prints_the_apis_answer(server, tmp_path):
    setup_nodes(server, tmp_path)
    admin(server, "POST", "/api/hosts", mac="52:54:00:00:00:01", name="pc1")
    task = admin(server, "POST", "/api/tasks", host="pc1", type="inventory").json()
    api = {  # command → the same question asked of the API
        ("host", "list"): ("/api/pages/hosts?limit=1000&sort=name", "rows"),
        ("host", "show", "pc1"): ("/api/hosts/pc1", None),
        ("storage", "list"): ("/api/storage", None),
        ("storage", "group", "list"): ("/api/storage-groups", None),
        ("image", "list"): ("/api/images", None),
        ("image", "show", "win10"): ("/api/images/win10", None),
        ("image", "versions", "win10"): ("/api/images/win10/versions", None),
        ("task", "list"): ("/api/pages/tasks?limit=1000&sort=id&desc=0", "rows"),
        ("task", "show", str(task["id"])): (f"/api/tasks/{task['id']}", None),
        ("replication", "list"): ("/api/replication", None),
        ("boot-log",): ("/api/boot-log", None),
        ("settings", "show"): ("/api/settings", None),
        ("user", "list"): ("/api/users", None),
        ("multicast", "list"): ("/api/multicast", None),
    }
    for command, (path, key) in api.items():
        expected = admin(server, "GET", path).json()
        expected = expected[key] if key else expected
        for argv in ((*command, "--json"), ("--json", *command)):
            done = run_cli(server, *argv)
            assert done.returncode == 0, (argv, done.stderr)
            assert json.loads(done.stdout) == expected, argv
            assert done.stdout == json.dumps(expected, ensure_ascii=False, indent=2) + "\n"  # pretty, nothing added
    # Without --json the same answers are tables, not JSON.
    listed = run_cli(server, "storage", "list").stdout
    assert listed.startswith("NAME") and not listed.lstrip().startswith(("[", "{"))
    # A change answers with what the API answered, too.
    added = run_cli(server, "host", "add", "52:54:00:00:00:09", "pc9", "--json")
    assert added.returncode == 0, added.stderr
    # GET adds what a new host cannot have yet: its inventory and its groups
    assert {**json.loads(added.stdout), "inventory": None, "groups": []} == admin(server, "GET", "/api/hosts/pc9").json()


def test_every_admin_command_takes_json():
    def leaves(parser, path=()):
        commands = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
        if not commands:
            yield path, parser
        for action in commands:
            for name, sub in action.choices.items():
                yield from leaves(sub, (*path, name))

    found = {path: parser for path, parser in leaves(cli._parser()) if path[0] != "serve"}
    assert len(found) > 40 and ("task", "list") in found and ("audit", "list") in found
    missing = [" ".join(path) for path, parser in found.items() if "--json" not in parser._option_string_actions]
    assert missing == []


def test_hosts_and_nodes_are_renamed_an_image_is_refused_with_the_reason(server, tmp_path):
    setup_nodes(server, tmp_path)
    admin(server, "POST", "/api/hosts", mac="52:54:00:00:00:01", name="pc1")
    renamed = run_cli(server, "host", "rename", "pc1", "lab-1")
    assert renamed.returncode == 0, renamed.stderr
    assert re.search(r"^name:\s+lab-1$", renamed.stdout, re.M) and "52:54:00:00:00:01" in renamed.stdout
    assert admin(server, "GET", "/api/hosts/52:54:00:00:00:01").json()["name"] == "lab-1"
    assert run_cli(server, "storage", "rename", "b", "node-b").returncode == 0
    assert sorted(n["name"] for n in admin(server, "GET", "/api/storage").json()) == ["a", "node-b"]
    refused = run_cli(server, "image", "rename", "win10", "win11")
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.startswith("imager-server: an image cannot be renamed: its versions on the storage nodes "
                                     "are named <name>@<stamp>") and "image remove win10" in refused.stderr
    assert [i["name"] for i in admin(server, "GET", "/api/images").json()] == ["win10"]
    version_dir(tmp_path / "node-b", NEW, 6000)
    publish(tmp_path / "node-b", NEW)  # OLD is current nowhere now: it may go
    removed = run_cli(server, "image", "remove-version", "win10", OLD)
    assert removed.returncode == 0, removed.stderr
    assert sorted(re.findall(rf"^removed {OLD} from (\S+) \(\d{{4}}-", removed.stdout, re.M)) == ["a", "node-b"]
    gone = run_cli(server, "host", "remove", "lab-1")
    assert gone.stdout == "removed host lab-1 (52:54:00:00:00:01)\n"
    assert requests.get(server["url"] + "/api/hosts/lab-1", headers=server["admin"], timeout=10).status_code == 404
