"""``imager-server schedule …``: tasks queued once at a time or on a cron rule, over /api/schedules
(schedulesapi.py), the same calls as the console's Schedules page. Times are the server's time zone's.

    imager-server schedule add lab3-nightly deploy win10 --group lab3 --cron "0 2 * * sun"
"""
from __future__ import annotations

import argparse
from typing import Any

from contract.vocabulary import AFTER_VALUES, WIPE_MODES
from server_stub.cli_connection import Call, segment
from server_stub.cli_format import Answer, Column, computed, local_time, record, table
from server_stub.cli_tasks import DISK_HELP
from server_stub.store.schedules import DEFAULT_CATCH_UP, SCHEDULED_TYPES

CRON_HELP = ('five fields "minute hour day-of-month month day-of-week" in the server\'s time zone: *, lists 1,15, '
             'ranges mon-fri, steps */15; names jan…dec, sun…sat; or @daily, @weekly… (e.g. "0 2 * * sun")')
AT_HELP = "run once at YYYY-MM-DD HH:MM (the server's time zone), or ISO 8601 with an offset"
SHOW_KEYS = ("id", "name", "state", "when", "next_run_local", "type", "image", "targets", "disk", "partition",
             "options", "after", "wake", "catch_up", "last_run", "created", "created_by", "zone")


def _when(schedule: dict) -> str:
    return f"cron {schedule['rule']}" if schedule.get("rule") else f"once at {schedule.get('run_at_local') or ''}"


def _targets(schedule: dict) -> str:
    if schedule.get("group"):
        return f"group {schedule['group']}"
    if schedule.get("group_removed"):
        return f"group {schedule['group_removed']} (removed)"
    return ",".join(schedule.get("hosts") or []) or "(none)"


COLUMNS: list[Column | str] = [
    "id", "name", "state", computed("when", _when), computed("next run", lambda s: s.get("next_run_local") or "-"),
    "type", "image", computed("targets", _targets), computed("wake", lambda s: "yes" if s.get("wake") else "no")]
RUN_COLUMNS: list[Column | str] = [computed("due", lambda r: local_time(r["due"])), "outcome",
                                   computed("tasks", lambda r: ",".join(str(t) for t in r["task_ids"])), "detail"]


def _task_options(p: argparse.ArgumentParser, editing: bool) -> None:
    p.add_argument("--disk", default=None, help=DISK_HELP)
    p.add_argument("--partition", type=int, default=None, help="deploy: restore only this partition")
    p.add_argument("--mode", default=None, choices=WIPE_MODES, help="wipe: how thoroughly")
    p.add_argument("--after", default=None if editing else "reboot", choices=AFTER_VALUES,
                   help="what the machines do after (default reboot)")
    targets = p.add_mutually_exclusive_group(required=not editing)
    targets.add_argument("--hosts", default=None, help="MACs or names, as pc1,pc2,pc3")
    targets.add_argument("--group", default=None, help="the hosts of this host group at each run")
    when = p.add_mutually_exclusive_group(required=not editing)
    when.add_argument("--cron", default=None, help=CRON_HELP)
    when.add_argument("--at", default=None, help=AT_HELP)
    p.add_argument("--catch-up", type=int, default=None,
                   help=f"seconds a run missed while the server was down may still run at its start (default "
                        f"{DEFAULT_CATCH_UP}); older: recorded as missed")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    schedule = sub.add_parser("schedule", help="tasks queued once at a time or on a cron rule (hosts woken first)")\
        .add_subparsers(dest="action", required=True)
    p = schedule.add_parser("add", help="a new schedule: NAME TYPE [IMAGE] --hosts H|--group G --cron R|--at T")
    p.add_argument("name")
    p.add_argument("type", choices=SCHEDULED_TYPES)
    p.add_argument("image", nargs="?", default=None, help="capture and deploy: the image")
    _task_options(p, editing=False)
    p.add_argument("--no-wake", dest="wake", action="store_false", help="do not send Wake-on-LAN before queuing")
    schedule.add_parser("list", help="every schedule, its next run and state")
    schedule.add_parser("show", help="a schedule and its last runs (time, outcome, tasks)").add_argument("key")
    for action, text in (("pause", "stop running it until resumed"), ("resume", "run it again from its next time"),
                         ("delete", "forget it and its run records (its tasks stay)")):
        schedule.add_parser(action, help=text).add_argument("key", help="the schedule's id or name")
    p = schedule.add_parser("edit", help="change what is given; the rest stays")
    p.add_argument("key", help="the schedule's id or name")
    p.add_argument("--name", dest="new_name", default=None, help="its new name")
    p.add_argument("--type", default=None, choices=SCHEDULED_TYPES)
    p.add_argument("--image", default=None)
    _task_options(p, editing=True)
    wake = p.add_mutually_exclusive_group()
    wake.add_argument("--wake", dest="wake", action="store_true", default=None, help="wake the hosts first")
    wake.add_argument("--no-wake", dest="wake", action="store_false", help="do not wake them")


def _body(args: argparse.Namespace, editing: bool) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if args.hosts is not None:
        body["hosts"] = [h for h in args.hosts.split(",") if h]
    if args.group is not None:
        body["group"] = args.group
    if args.cron is not None:
        body["rule"] = args.cron
    if args.at is not None:
        body["at"] = args.at
    for key in ("disk", "partition", "after", "catch_up"):
        if getattr(args, key) is not None:
            body[key] = getattr(args, key)
    if args.mode is not None:
        body["options"] = {"mode": args.mode}
    if args.wake is not None:
        body["wake"] = args.wake
    if editing:
        for option, key in (("new_name", "name"), ("type", "type"), ("image", "image")):
            if getattr(args, option) is not None:
                body[key] = getattr(args, option)
    else:
        body.update({"name": args.name, "type": args.type, "image": args.image})
    return body


def _one(data: dict) -> Answer:
    def view() -> str:
        shown = {**data, "when": _when(data), "targets": _targets(data), "wake": "yes" if data.get("wake") else "no"}
        text = record(shown, [k for k in SHOW_KEYS if k in shown])
        if "runs" in data:
            text += "\nruns:\n" + (table(data["runs"], RUN_COLUMNS) if data["runs"] else "  none yet")
        return text
    return Answer(data, view)


def run(args: argparse.Namespace, call: Call) -> Any:
    """The command's answer, or NotImplemented when it is not one of these."""
    if args.command != "schedule":
        return NotImplemented
    match args.action:
        case "add":
            return _one(call("POST", "/api/schedules", _body(args, editing=False)))
        case "list":
            listed = call("GET", "/api/schedules")
            rows = listed["schedules"]
            return Answer(listed, lambda: (table(rows, COLUMNS) if rows else "no schedules")
                          + f"\n(times in the server's time zone, {listed['zone']})")
        case "show":
            return _one(call("GET", f"/api/schedules/{segment(args.key)}"))
        case "edit":
            return _one(call("POST", f"/api/schedules/{segment(args.key)}", _body(args, editing=True)))
        case "pause" | "resume":
            return _one(call("POST", f"/api/schedules/{segment(args.key)}/{args.action}"))
        case "delete":
            gone = call("DELETE", f"/api/schedules/{segment(args.key)}")
            return Answer(gone, lambda: f"deleted schedule {gone['name']}")
    return NotImplemented
