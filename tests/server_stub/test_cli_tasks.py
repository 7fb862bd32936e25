"""``task list --watch`` (redrawn until Ctrl-C, on a terminal and not) and ``task cancel --host``, against a
real server."""
import json
import os
import pty
import queue
import re
import select
import signal
import subprocess
import sys
import threading
import time

from tests.server_stub.cliproc import REPO, clean_env, cli
from tests.server_stub.test_api import admin


def as_from_a_shell() -> None:
    """In the child: Ctrl-C's signal at its default and not blocked, as a shell starts a command. A child inherits an
    ignored or blocked SIGINT; in the whole suite something before these tests leaves pytest's so (seen in CI: every
    watch ignored its SIGINT), and the CLI is not what that tests."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})

MACS = {"pc1": "52:54:00:00:00:01", "pc2": "52:54:00:00:00:02"}


def two_hosts_with_tasks(server):
    tasks = {}
    for name, mac in MACS.items():
        assert admin(server, "POST", "/api/hosts", mac=mac, name=name).status_code == 201
        tasks[name] = admin(server, "POST", "/api/tasks", host=name, type="inventory").json()
    return tasks


def watch_argv(server, *extra):
    return [sys.executable, "-m", "server_stub", "--server", server["url"], "--token-file",
            str(server["data"] / "admin.token"), "task", "list", "--watch", "--interval", "0.3", *extra]


def state_of(line_start, text):
    return re.search(rf"^{line_start}\s+\S+\s+inventory\s+(\w+)", text, re.M).group(1)


def test_watch_redraws_until_ctrl_c_one_table_after_another_when_piped(server):
    tasks = two_hosts_with_tasks(server)
    proc = subprocess.Popen(watch_argv(server), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=REPO, env=clean_env(), preexec_fn=as_from_a_shell)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    try:
        tables, current, canceled = [], [], False
        deadline = time.monotonic() + 30
        while len(tables) < 3 and time.monotonic() < deadline:
            line = lines.get(timeout=30)
            if line == "\n":  # a blank line ends each table when the output is no terminal
                tables.append("".join(current))
                current = []
                if not canceled:  # changed between two redraws: the next table shows it
                    assert admin(server, "POST", f"/api/tasks/{tasks['pc1']['id']}/cancel").status_code == 200
                    canceled = True
            else:
                current.append(line)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert len(tables) == 3
    assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  every 0\.3 s, Ctrl-C stops\nID\s+HOST", t) for t in tables)
    first_id = tasks["pc1"]["id"]
    assert state_of(first_id, tables[0]) == "queued" and state_of(first_id, tables[-1]) == "canceled"
    assert "\x1b" not in "".join(tables)  # no screen control codes into a file or pipe
    assert "Traceback" not in proc.stderr.read()


def test_watch_redraws_in_place_on_a_terminal_and_stops_cleanly_on_ctrl_c(server):
    two_hosts_with_tasks(server)
    main, side = pty.openpty()
    proc = subprocess.Popen(watch_argv(server), stdin=side, stdout=side, stderr=side, cwd=REPO, env=clean_env(),
                            start_new_session=True, preexec_fn=as_from_a_shell)
    os.close(side)
    seen = b""
    try:
        deadline = time.monotonic() + 30
        while seen.count(b"\x1b[H\x1b[2J") < 2 and time.monotonic() < deadline:
            if select.select([main], [], [], 1)[0]:
                seen += os.read(main, 65536)
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert proc.wait(10) == 0
        while select.select([main], [], [], 0.5)[0]:
            try:
                seen += os.read(main, 65536)
            except OSError:  # the terminal's other side closed
                break
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(main)
    text = seen.decode()
    assert text.count("\x1b[H\x1b[2J") >= 2 and text.count("pc2") >= 2
    assert "Traceback" not in text and "KeyboardInterrupt" not in text


def test_watch_json_prints_one_answer_a_line(server):
    two_hosts_with_tasks(server)
    proc = subprocess.Popen(watch_argv(server, "--json"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=REPO, env=clean_env(), preexec_fn=as_from_a_shell)
    try:
        first, second = proc.stdout.readline(), proc.stdout.readline()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    expected = admin(server, "GET", "/api/pages/tasks?limit=1000&sort=id&desc=0").json()["rows"]
    assert json.loads(first) == json.loads(second) == expected


def test_cancel_by_host_cancels_that_hosts_task_only(server):
    tasks = two_hosts_with_tasks(server)
    done = cli(server, "task", "cancel", "--host", "pc1")
    assert done.returncode == 0, done.stderr
    assert re.search(r"^state:\s+canceled$", done.stdout, re.M) and re.search(r"^host:\s+pc1$", done.stdout, re.M)
    assert admin(server, "GET", f"/api/tasks/{tasks['pc1']['id']}").json()["state"] == "canceled"
    assert admin(server, "GET", f"/api/tasks/{tasks['pc2']['id']}").json()["state"] == "queued"
    by_mac = cli(server, "task", "cancel", "--host", MACS["pc2"], "--json")
    assert json.loads(by_mac.stdout) == admin(server, "GET", f"/api/tasks/{tasks['pc2']['id']}").json()
    assert json.loads(by_mac.stdout)["state"] == "canceled"
    nothing = cli(server, "task", "cancel", "--host", "pc1")
    assert (nothing.returncode, nothing.stderr) == (1, "imager-server: pc1 has no queued or running task to cancel\n")
    unknown = cli(server, "task", "cancel", "--host", "pc9")
    assert unknown.returncode == 1 and unknown.stderr.startswith("imager-server: HTTP 404: ")
    for argv in (("task", "cancel"), ("task", "cancel", "3", "--host", "pc1")):
        both = cli(server, *argv)
        assert both.returncode == 2 and "give a task id or --host NAME" in both.stderr


def test_watch_into_a_reader_that_leaves_stops_quietly(server):
    two_hosts_with_tasks(server)
    proc = subprocess.Popen(watch_argv(server), stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
                            env=clean_env())
    try:
        assert proc.stdout.readline()  # like `| head -1`: one line, then the pipe's reader is gone
        proc.stdout.close()
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.stderr.read() == b""
