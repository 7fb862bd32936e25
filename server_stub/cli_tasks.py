"""``imager-server task …`` and ``technician password``: tasks queued (one host or several, all or none),
listed (filtered; ``--watch`` redraws the list until Ctrl-C), shown, canceled by id or by host.
"""
from __future__ import annotations

import argparse
import getpass
import sys
import time
from typing import Any, Callable, TextIO

from contract.vocabulary import AFTER_VALUES
from server_stub.cli_connection import AdminCallFailed, Call, all_rows, segment
from server_stub.cli_format import Answer, Column, computed, human_size, local_time, record, table, to_json
from server_stub.deployfigures import figures_of, figures_text
from server_stub.store.tasks import TASK_SORTS, TASK_TYPES

HOSTS_HELP = "MAC or name; several as pc1,pc2,pc3 (all tasks or none)"
DISK_HELP = "/dev/…, serial=…, wwn=…, model=… or size=… (±1%%); default: the machine's only fixed, non-USB disk"
NO_WAKE_HELP = "send no Wake-on-LAN packets (by default the server wakes the machine, as FOG does)"
CLEAR_SCREEN = "\x1b[H\x1b[2J"  # cursor home, erase the screen: the list redrawn in place
TASK_KEYS = ("id", "host", "mac", "type", "image", "disk", "partition", "after", "options", "origin", "queued_by",
             "state", "storage", "created", "started", "finished")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    task = sub.add_parser("task", help="queue, list, show and cancel tasks").add_subparsers(dest="action",
                                                                                          required=True)
    for kind, text in (("capture", "save the machine's disk as a new version of IMAGE"),
                       ("deploy", "write IMAGE's current version to the machine's disk")):
        p = task.add_parser(kind, help=text)
        p.add_argument("host", help=HOSTS_HELP)
        p.add_argument("image")
        p.add_argument("--disk", default=None, help=DISK_HELP)
        p.add_argument("--after", default="reboot", choices=AFTER_VALUES, help="what the machine does after")
        if kind == "deploy":
            p.add_argument("--partition", type=int, default=None,
                           help="restore only this partition, into the disk's existing table")
        p.add_argument("--no-wake", action="store_true", help=NO_WAKE_HELP)
    for kind, text in (("inventory", "boot the imager, collect CPU, RAM, disks, NICs and DMI, store them"),
                       ("wipe", "erase a disk: fast (signatures, first/last MiB), normal (one zero pass), full "
                                "(NVMe sanitize/format when the drive can, else random + zero passes)"),
                       ("disktest", "SMART health and a read-only surface scan; the result goes on the task"),
                       ("debug", "a root shell on the machine's console with the imaging tools; exit reboots")):
        p = task.add_parser(kind, help=text)
        p.add_argument("host", help=HOSTS_HELP)
        if kind in ("wipe", "disktest"):
            p.add_argument("--disk", default=None, help=DISK_HELP)
        if kind == "wipe":
            p.add_argument("--mode", required=True, choices=("fast", "normal", "full"), help="how thoroughly")
        p.add_argument("--after", default="reboot", choices=AFTER_VALUES, help="what the machine does after")
        p.add_argument("--no-wake", action="store_true", help=NO_WAKE_HELP)
    p = task.add_parser("list", help="tasks, filtered; --watch redraws them until Ctrl-C")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--active", action="store_true", help="queued and running tasks only")
    which.add_argument("--state", default=None, choices=("active", "queued", "running", "done", "failed", "canceled"),
                       help="only tasks in this state (active: queued or running)")
    p.add_argument("--host", default=None, help="name or MAC")
    p.add_argument("--type", default=None, choices=TASK_TYPES, help="only tasks of this type")
    p.add_argument("--image", default=None, help="only tasks of this image (a removed one's too)")
    p.add_argument("--sort", default="id", choices=tuple(TASK_SORTS), help="the column to sort by (default id)")
    p.add_argument("--desc", action="store_true", help="sort descending (--sort id --desc: newest first)")
    p.add_argument("--watch", action="store_true", help="redraw the list every --interval s until Ctrl-C; not on a "
                                                        "terminal, print it again each time (with --json: a line each)")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between redraws (default 2)")
    task.add_parser("show", help="a task: state, progress, error, last log lines, result")\
        .add_argument("id", type=int)
    p = task.add_parser("cancel", help="cancel a queued or running task, by its id or its host's name")
    p.add_argument("id", type=int, nargs="?", help="the task's id")
    p.add_argument("--host", default=None, help="cancel this host's active task (name or MAC)")

    tech = sub.add_parser("technician", help="the password technicians type at the imager menu")
    p = tech.add_subparsers(dest="action", required=True).add_parser(
        "password", help="set it (read from stdin, or asked on the terminal); the admin token also opens the menu")
    p.add_argument("--remove", action="store_true", help="remove it: only the admin token opens the menu")


def check(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """What argparse alone cannot refuse (exit status 2, like its own refusals)."""
    if args.command == "task" and args.action == "cancel" and (args.id is None) == (args.host is None):
        parser.error("task cancel: give a task id or --host NAME, one of them")
    if args.command == "task" and args.action == "list" and not 0.1 <= args.interval <= 86400:
        parser.error("task list: --interval is seconds between 0.1 and 86400")


def _progress(task: dict) -> str:
    progress = task.get("progress") or {}
    return f"{progress.get('percent', 0)}% {progress.get('stage', '')}".strip() if progress else ""


TASK_COLUMNS: list[Column | str] = ["id", "host", "type", "image", "storage", "state", computed("progress", _progress),
                computed("error", lambda t: (t.get("error") or {}).get("message", "")), "created"]


def task_text(task: dict) -> str:
    lines = [record(task, [k for k in TASK_KEYS if k in task])]
    if task.get("progress"):
        lines.append(f"progress:  {_progress(task)}")
    figures = figures_of(task.get("result"), task.get("progress"))  # a deploy's (issue 17)
    if figures:
        lines.append(f"moved:     {figures_text(figures, human_size)}")
    if task.get("error"):
        error = task["error"]
        lines.append(f"error:     {error.get('code', '')}: {error.get('message', '')}")
        if error.get("hint"):
            lines.append(f"hint:      {error['hint']}")
    if task.get("result"):
        lines.append("result:    " + to_json(task["result"], compact=True))
    if task.get("log"):
        lines.append("last log lines:\n  " + "\n  ".join(str(task["log"]).splitlines()[-10:]))
    return "\n".join(lines)


def _tasks(data: Any) -> Answer:
    """One task (a record) or several (a table), as POST /api/tasks answers."""
    return Answer(data, lambda: table(data, TASK_COLUMNS) if isinstance(data, list) else task_text(data))


def _queue(args: argparse.Namespace, call: Call, body: dict[str, Any]) -> Answer:
    hosts = [h for h in args.host.split(",") if h]
    body.update({"hosts": hosts} if len(hosts) > 1 else {"host": args.host})
    if args.no_wake:
        body["wake"] = False
    return _tasks(call("POST", "/api/tasks", body))


def list_tasks(args: argparse.Namespace, call: Call) -> list[dict]:
    """The tasks ``task list`` shows, with its filters."""
    return all_rows(call, "/api/pages/tasks",
                    {"state": "active" if args.active else args.state, "type": args.type, "host": args.host,
                     "image": args.image, "sort": args.sort, "desc": int(args.desc)})


def cancel_host_task(host: str, call: Call) -> dict:
    """The host's active task, canceled (a host has at most one)."""
    active = call("GET", f"/api/pages/tasks?state=active&limit=1&host={segment(host)}")["rows"]
    if not active:
        raise AdminCallFailed(f"{host} has no queued or running task to cancel")
    return dict(call("POST", f"/api/tasks/{active[0]['id']}/cancel"))


def watch(load: Callable[[], Answer], as_json: bool, interval: float, out: TextIO) -> None:
    """Print ``load()``'s answer again every ``interval`` s until Ctrl-C: in place on a terminal, one after
    another otherwise (``--json``: one line each). A failure after the first is told on stderr and tried again."""
    on_terminal = out.isatty() and not as_json
    first = True
    try:
        while True:
            try:
                answer = load()
            except AdminCallFailed as exc:
                if first:
                    raise
                print(f"imager-server: {exc} (trying again in {interval:g} s)", file=sys.stderr, flush=True)
            else:
                if as_json:
                    out.write(to_json(answer.data, compact=True) + "\n")
                else:
                    heading = f"{local_time(time.time())}  every {interval:g} s, Ctrl-C stops"
                    out.write((CLEAR_SCREEN if on_terminal else "") + heading + "\n" + answer.text() + "\n"
                              + ("" if on_terminal else "\n"))
                out.flush()
            first = False
            time.sleep(interval)
    except KeyboardInterrupt:  # the way to stop watching: no traceback, exit status 0
        if on_terminal:
            out.write("\n")


def run(args: argparse.Namespace, call: Call) -> Any:
    """The command's answer, or NotImplemented when it is not one of these."""
    match args.command, getattr(args, "action", None):
        case "task", ("capture" | "deploy") as kind:
            return _queue(args, call, {"type": kind, "image": args.image, "disk": args.disk, "after": args.after,
                                       "partition": getattr(args, "partition", None)})
        case "task", "inventory":
            return _queue(args, call, {"type": "inventory", "after": args.after})
        case "task", ("wipe" | "disktest" | "debug") as kind:  # the service ops (issue 5)
            body = {"type": kind, "after": args.after, "disk": getattr(args, "disk", None)}
            if kind == "wipe":
                body["options"] = {"mode": args.mode}
            return _queue(args, call, body)
        case "task", "list":
            if args.watch:
                return watch(lambda: _listed(args, call), args.json, args.interval, sys.stdout)
            return _listed(args, call)
        case "task", "show":
            return _tasks(call("GET", f"/api/tasks/{args.id}"))
        case "task", "cancel":
            if args.host is not None:
                return _tasks(cancel_host_task(args.host, call))
            return _tasks(call("POST", f"/api/tasks/{args.id}/cancel"))
        case "technician", "password":
            if args.remove:
                return call("POST", "/api/technician-password", {"password": None})
            password = sys.stdin.readline().rstrip("\n") if not sys.stdin.isatty() else getpass.getpass(
                "technician password (typed at the imager menu): ")
            return call("POST", "/api/technician-password", {"password": password})
    return NotImplemented


def _listed(args: argparse.Namespace, call: Call) -> Answer:
    tasks = list_tasks(args, call)
    return Answer(tasks, lambda: table(tasks, TASK_COLUMNS) if tasks else "no tasks")
