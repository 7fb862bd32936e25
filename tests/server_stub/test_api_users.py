"""`imager-server user …` and `audit list` against a real server (subprocess, loopback): the CLI's face of
/api/users and /api/audit; passwords from stdin, never on the command line."""
import re
import subprocess
import sys

import pytest
import requests

from server_stub import cli_users

PASSWORD = "a long enough secret"


def cli(server, *args, stdin=""):
    return subprocess.run([sys.executable, "-m", "server_stub", "--server", server["url"],
                           "--token-file", str(server["data"] / "admin.token"), *args],
                          input=stdin, capture_output=True, text=True, timeout=60)


def signs_in(server, name, password):
    answer = requests.post(f"{server['url']}/signin", data={"name": name, "password": password},
                           allow_redirects=False, timeout=10)
    return answer.status_code == 303


def test_user_add_list_passwd_role_remove(server):
    empty = cli(server, "user", "list")
    assert empty.returncode == 0 and "no accounts yet" in empty.stdout
    added = cli(server, "user", "add", "alice", "--role", "admin", "--password-stdin", stdin=PASSWORD + "\n")
    assert added.returncode == 0 and added.stdout.strip() == "added alice (admin)", added.stderr
    assert cli(server, "user", "add", "bob", stdin=PASSWORD + "\n").returncode == 0  # not a tty: stdin
    listed = cli(server, "user", "list").stdout
    assert re.search(r"^alice\s+admin\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", listed, re.M)
    assert re.search(r"^bob\s+technician\s", listed, re.M) and PASSWORD not in listed
    assert signs_in(server, "bob", PASSWORD)

    assert cli(server, "user", "passwd", "bob", "--password-stdin", stdin="bob's new secret\n").returncode == 0
    assert not signs_in(server, "bob", PASSWORD) and signs_in(server, "bob", "bob's new secret")
    role = cli(server, "user", "role", "bob", "admin")
    assert role.returncode == 0 and role.stdout.strip() == "bob is now an admin"
    assert cli(server, "user", "remove", "bob").returncode == 0
    assert "bob" not in cli(server, "user", "list").stdout


def test_refusals_are_one_line_and_exit_1(server):
    cli(server, "user", "add", "alice", "--role", "admin", stdin=PASSWORD + "\n")
    for args, stdin, message in [
            (("user", "add", "carol"), "short\n", "HTTP 400: a password must be 10 or more"),
            (("user", "add", "carol"), "", "no password on stdin"),
            (("user", "add", "alice"), PASSWORD + "\n", "HTTP 409: user alice exists already"),
            (("user", "remove", "alice"), "", "HTTP 409: the last admin account cannot be removed"),
            (("user", "role", "alice", "technician"), "", "HTTP 409: the last admin account"),
            (("user", "passwd", "nobody"), PASSWORD + "\n", "HTTP 404: no user nobody"),
            (("audit", "list", "--limit", "0"), "", "HTTP 400: limit must be 1-500")]:
        done = cli(server, *args, stdin=stdin)
        assert done.returncode == 1 and done.stderr.startswith(f"imager-server: {message}"), (args, done.stderr)
        assert "Traceback" not in done.stderr
    bad_role = cli(server, "user", "add", "dave", "--role", "root", stdin=PASSWORD + "\n")
    assert bad_role.returncode == 2 and "invalid choice" in bad_role.stderr


def test_audit_list_shows_who_did_what_in_local_time(server):
    cli(server, "user", "add", "alice", "--role", "admin", stdin=PASSWORD + "\n")
    cli(server, "user", "add", "x y", stdin=PASSWORD + "\n")
    shown = cli(server, "audit", "list")
    assert shown.returncode == 0
    lines = shown.stdout.splitlines()
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+admin \(admin, token\)\s+POST /api/users\s+x y\s+400 invalid",
                    lines[1]), shown.stdout
    assert re.search(r"POST /api/users\s+alice\s+201", lines[2]) and lines[-1] == "1-2 of 2, newest first"
    assert "no audit entries by nobody" in cli(server, "audit", "list", "--actor", "nobody").stdout
    assert len(cli(server, "audit", "list", "--limit", "1").stdout.splitlines()) == 3


def test_on_a_terminal_the_password_is_asked_twice_and_must_match(monkeypatch):
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    typed = iter([PASSWORD, PASSWORD, PASSWORD, PASSWORD + "x"])
    prompts = []
    monkeypatch.setattr(cli_users.getpass, "getpass", lambda prompt: prompts.append(prompt) or next(typed))
    assert cli_users.read_password(False, "alice") == PASSWORD
    assert prompts == ["new password for alice: ", "the same again: "]
    with pytest.raises(cli_users.PasswordNotGiven, match="the two passwords differ"):
        cli_users.read_password(False, "alice")
