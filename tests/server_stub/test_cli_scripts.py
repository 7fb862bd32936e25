"""`imager-server script …` against a real server (subprocess, loopback): upload from a file and stdin, list,
show, attach to an image and a group, detach, delete; bad input is a clear message, never a traceback."""
import hashlib
import json
from pathlib import Path

import requests

from tests.server_stub.cliproc import cli

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "postdeploy" / "linux-machine-id-reset.sh"


def test_script_add_list_show_attach_detach_delete(server):
    headers = server["admin"]
    requests.post(server["url"] + "/api/storage", json={"name": "main", "export": "10.0.0.1:/images"},
                  headers=headers, timeout=10)
    requests.post(server["url"] + "/api/images", json={"name": "deb12", "storage": "main"}, headers=headers, timeout=10)
    added = cli(server, "script", "add", "machine-id-reset", str(EXAMPLE), "--description", "new machine-id")
    digest = hashlib.sha256(EXAMPLE.read_bytes()).hexdigest()
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == f"added script machine-id-reset ({EXAMPLE.stat().st_size} bytes, SHA-256 {digest})"
    piped = cli(server, "script", "add", "hello", "-", stdin="echo hello\n")
    assert piped.returncode == 0, piped.stderr
    attached = cli(server, "script", "attach", "machine-id-reset", "--image", "deb12", "--order", "2",
                   "--timeout", "60", "--policy", "warn")
    assert attached.returncode == 0, attached.stderr
    assert attached.stdout.strip() == ("machine-id-reset runs after deploys of image deb12 (order 2, timeout 60 s, "
                                       "policy warn)")
    assert cli(server, "script", "attach", "hello", "--group", "lab3").returncode == 0
    listed = cli(server, "script", "list").stdout.splitlines()
    assert listed[0].split() == ["NAME", "SIZE", "SHA256", "DESCRIPTION", "ATTACHED"]
    assert listed[1].startswith("hello") and "group lab3 (#0, 300 s, fail)" in listed[1]
    assert "image deb12 (#2, 60 s, warn)" in listed[2] and digest[:16] in listed[2]
    shown = cli(server, "script", "show", "machine-id-reset").stdout
    assert f"sha256:      {digest}" in shown and "attached:    image deb12 (#2, 60 s, warn)" in shown and shown.rstrip().endswith(EXAMPLE.read_text().rstrip())
    as_json = json.loads(cli(server, "script", "show", "hello", "--json").stdout)
    assert as_json["content"] == "echo hello\n" and as_json["attachments"][0]["group"] == "lab3"
    detached = cli(server, "script", "detach", "hello", "--group", "lab3")
    assert detached.stdout.strip() == "hello no longer runs after deploys of group lab3"
    deleted = cli(server, "script", "delete", "machine-id-reset")
    assert deleted.returncode == 0 and "deleted script machine-id-reset" in deleted.stdout
    assert [s["name"] for s in json.loads(cli(server, "script", "list", "--json").stdout)] == ["hello"]


def test_bad_script_commands_say_why(server, tmp_path):
    binary = tmp_path / "tool.bin"
    binary.write_bytes(b"\x7fELF\xff\xfe" + bytes(100))
    big = tmp_path / "big.sh"
    big.write_text("#" * (256 * 1024 + 1))
    cases = [(("script", "add", "x", str(tmp_path / "missing.sh")), "cannot read"),
             (("script", "add", "x", str(binary)), "is not UTF-8 text"),
             (("script", "add", "x", str(big)), "larger than 256 KiB"),
             (("script", "show", "nope"), "HTTP 404"),
             (("script", "attach", "nope", "--image", "x"), "HTTP 404"),
             (("script", "add", "bad name", "-"), "HTTP 400")]
    for args, said in cases:
        done = cli(server, *args, stdin="echo\n")
        assert done.returncode == 1 and said in done.stderr and "Traceback" not in done.stderr, (args, done.stderr)
    both = cli(server, "script", "attach", "x", "--image", "a", "--group", "b")
    assert both.returncode == 2 and "not allowed with argument" in both.stderr
