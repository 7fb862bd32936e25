"""``imager-server group …``, ``host wake``, ``wake …``: host groups (FOG's groups) and Wake-on-LAN, over the
HTTP API (hostgroupsapi.py), the same calls as the console's Groups page.
"""
from __future__ import annotations

import argparse
from typing import Any

from contract.vocabulary import AFTER_VALUES, QUEUEABLE_TASK_TYPES, WIPE_MODES
from server_stub.cli_connection import AdminCallFailed, Call, segment
from server_stub.cli_format import Answer, Column, computed, local_time, record, table
from server_stub.cli_tasks import DISK_HELP, TASK_COLUMNS

HOSTS_HELP = "MACs or names, as pc1,pc2,pc3"


def _host_actions(sub: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """The ``host`` command's subcommands (admincli.py made them): ``host wake`` joins them."""
    host = sub.choices["host"]
    return next(a for a in host._actions if isinstance(a, argparse._SubParsersAction))


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """After admincli.add_parsers (``host`` exists)."""
    p = _host_actions(sub).add_parser("wake", help="send Wake-on-LAN magic packets to hosts or a group's hosts")
    p.add_argument("host", nargs="?", help=HOSTS_HELP)
    p.add_argument("--group", default=None, help="every host of this host group")

    group = sub.add_parser("group", help="host groups: add, list, show, hosts in and out, a task for all, wake")\
        .add_subparsers(dest="action", required=True)
    p = group.add_parser("add", help="a new, empty host group")
    p.add_argument("name")
    p.add_argument("--description", default="")
    group.add_parser("list", help="every group and its state at a glance")
    group.add_parser("show", help="a group, its hosts and their tasks").add_argument("name")
    p = group.add_parser("set", help="rename a group or change its description")
    p.add_argument("name")
    p.add_argument("--name", dest="new_name", default=None, help="its new name (its hosts follow)")
    p.add_argument("--description", default=None)
    group.add_parser("remove", help="forget a group (its hosts stay)").add_argument("name")
    for action, text in (("add-hosts", "hosts join the group (a host may be in several groups)"),
                         ("remove-hosts", "hosts leave the group (they stay hosts)")):
        p = group.add_parser(action, help=text)
        p.add_argument("name")
        p.add_argument("hosts", help=HOSTS_HELP)
    p = group.add_parser("task", help="one task for every host of the group: a task each (busy hosts skipped), "
                                      "or one multicast session (--multicast)")
    p.add_argument("name")
    p.add_argument("type", choices=QUEUEABLE_TASK_TYPES)
    p.add_argument("image", nargs="?", default=None, help="capture and deploy: the image")
    p.add_argument("--disk", default=None, help=DISK_HELP)
    p.add_argument("--partition", type=int, default=None, help="deploy: restore only this partition")
    p.add_argument("--mode", default=None, choices=WIPE_MODES, help="wipe: how thoroughly")
    p.add_argument("--after", default="reboot", choices=AFTER_VALUES, help="what the machines do after")
    p.add_argument("--multicast", action="store_true", help="deploy: one multicast session for the group's hosts")
    p.add_argument("--min-receivers", type=int, default=None, help="multicast: start when this many are ready")
    p.add_argument("--max-wait", type=int, default=None, help="multicast: seconds after the first one is ready")
    p.add_argument("--rate", default=None, help="multicast: cap, bits per second (200m)")
    p.add_argument("--interface", default=None, help="multicast: udp-sender's interface")
    p.add_argument("--no-wake", action="store_true", help="do not send Wake-on-LAN packets to the queued hosts")
    group.add_parser("wake", help="Wake-on-LAN for every host of the group").add_argument("name")

    wake = sub.add_parser("wake", help="where Wake-on-LAN packets go: per storage group, and the server default")\
        .add_subparsers(dest="action", required=True)
    wake.add_parser("show", help="the server default and each storage group's target")
    for action, text in (("set", "set the target: a directed broadcast address and/or an interface"),
                         ("clear", "remove a target (a storage group's hosts then use the server default)")):
        p = wake.add_parser(action, help=text)
        p.add_argument("--storage-group", default=None, help="this storage group's hosts (default: the server "
                                                             "default, for hosts no storage group's target covers)")
        if action == "set":
            p.add_argument("--broadcast", default=None, help="e.g. 10.0.3.255, or 255.255.255.255")
            p.add_argument("--interface", default=None, help="send out of this interface (needs CAP_NET_RAW)")


def check(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """What argparse alone cannot refuse (exit status 2)."""
    if args.command == "host" and args.action == "wake" and (args.host is None) == (args.group is None):
        parser.error("host wake: give HOST[,HOST…] or --group G, one of them")
    if args.command == "wake" and args.action == "set" and not (args.broadcast or args.interface):
        parser.error("wake set: give --broadcast ADDRESS and/or --interface NAME (wake clear removes a target)")


def _last_task(group: dict) -> str:
    last = group.get("last_task")
    return f"{last['type']} {last['state']} on {last['host']} ({last['id']})" if last else ""


GROUP_COLUMNS: list[Column | str] = ["name", "hosts", "idle", "queued", "running", "failed", computed("last task", _last_task),
                 "description"]


def _member_task(row: dict) -> str:
    if row.get("task_id"):
        return f"{row['task_type']} {row['task_state']} ({row['task_id']})"
    if row.get("last_task_id"):
        return f"last: {row['last_type']} {row['last_state']} ({row['last_task_id']})"
    return ""


def group_text(group: dict) -> str:
    head = record(group, ["name", "description", "hosts", "idle", "queued", "running", "failed"])
    head += f"\nlast task:    {_last_task(group) or '-'}"
    members = group.get("members") or []
    if not members:
        return head + "\nno hosts (imager-server group add-hosts " + group["name"] + " pc1,pc2)"
    return head + "\n\n" + table(members, ["name", "mac", "image", computed("task", _member_task)])


def _group(data: dict) -> Answer:
    return Answer(data, lambda: group_text(data))


def wake_text(report: dict) -> str:
    lines = [f"woke {s['host']} ({s['mac']}): magic packets to {s['address']}"
             + (f" via {s['interface']}" if s.get("interface") else "") + f" ({s['target']})" for s in report["sent"]]
    lines += [f"not woken: {f['host']} ({f['mac']}): {f['reason']}" for f in report["failed"]]
    lines += [f"not woken: {h}: no Wake-on-LAN target is set (imager-server wake set --broadcast ADDRESS)"
              for h in report["not_configured"]]
    return "\n".join(lines) or "no hosts"


def _woken(report: dict) -> Answer:
    if not report["sent"]:  # nothing went out: a failure for scripts (exit status 1)
        raise AdminCallFailed(wake_text(report))
    return Answer(report, lambda: wake_text(report))


def queued_text(answer: dict) -> str:
    lines = []
    if answer.get("session"):
        lines.append(f"multicast session {answer['session']['id']} for {len(answer['queued'])} hosts")
    lines.append(table(answer["queued"], TASK_COLUMNS) if answer["queued"] else "nothing queued")
    lines += [f"skipped {s['host']}: {s['reason']}" for s in answer["skipped"]]
    if answer.get("wake"):
        lines.append(wake_text(answer["wake"]))
    return "\n".join(lines)


def _group_task(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {"type": args.type, "image": args.image, "disk": args.disk, "after": args.after,
                            "partition": args.partition, "wake": not args.no_wake, "multicast": args.multicast}
    if args.mode is not None:
        body["options"] = {"mode": args.mode}
    for key in ("min_receivers", "max_wait", "rate", "interface"):
        if getattr(args, key) is not None:
            body[key] = getattr(args, key)
    return body


def _hosts(text: str) -> list[str]:
    return [h for h in text.split(",") if h]


def run(args: argparse.Namespace, call: Call) -> Any:
    """The command's answer, or NotImplemented when it is not one of these."""
    match args.command, getattr(args, "action", None):
        case "host", "wake":
            if args.group is not None:
                return _woken(call("POST", f"/api/host-groups/{segment(args.group)}/wake"))
            report: dict[str, list] = {"sent": [], "failed": [], "not_configured": []}
            for host in _hosts(args.host):
                done = call("POST", f"/api/hosts/{segment(host)}/wake")
                for key in report:
                    report[key] += done[key]
            return _woken(report)
        case "group", "add":
            return _group(call("POST", "/api/host-groups", {"name": args.name, "description": args.description}))
        case "group", "list":
            groups = call("GET", "/api/host-groups")
            return Answer(groups, lambda: table(groups, GROUP_COLUMNS) if groups else "no host groups")
        case "group", "show":
            return _group(call("GET", f"/api/host-groups/{segment(args.name)}"))
        case "group", "set":
            changes = {k: v for k, v in (("name", args.new_name), ("description", args.description)) if v is not None}
            return _group(call("POST", f"/api/host-groups/{segment(args.name)}", changes))
        case "group", "remove":
            removed = call("DELETE", f"/api/host-groups/{segment(args.name)}")
            return Answer(removed, lambda: f"removed host group {removed['name']} (its {removed['hosts']} hosts stay)")
        case "group", "add-hosts":
            return _group(call("POST", f"/api/host-groups/{segment(args.name)}/hosts", {"hosts": _hosts(args.hosts)}))
        case "group", "remove-hosts":
            return _group(call("POST", f"/api/host-groups/{segment(args.name)}/hosts/remove",
                               {"hosts": _hosts(args.hosts)}))
        case "group", "task":
            answer = call("POST", f"/api/host-groups/{segment(args.name)}/tasks", _group_task(args))
            return Answer(answer, lambda: queued_text(answer))
        case "group", "wake":
            return _woken(call("POST", f"/api/host-groups/{segment(args.name)}/wake"))
        case "wake", "show":
            settings = call("GET", "/api/wake-targets")
            return Answer(settings, lambda: table(
                settings, [computed("storage group", lambda s: s["storage_group"] or "(server default)"),
                           "broadcast", "interface", computed("updated", lambda s: local_time(s["updated"]))])
                if settings else "no Wake-on-LAN target: nothing is sent (imager-server wake set --broadcast ADDR)")
        case "wake", "set":
            return call("POST", "/api/wake-targets", {"storage_group": args.storage_group,
                                                      "broadcast": args.broadcast, "interface": args.interface})
        case "wake", "clear":
            return call("POST", "/api/wake-targets", {"storage_group": args.storage_group})
    return NotImplemented
