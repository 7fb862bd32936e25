"""``imager-server multicast …``: the admin commands of multicast sessions (over the HTTP API)."""
from __future__ import annotations

import argparse
from typing import Any

from server_stub.cli_connection import Call
from server_stub.cli_format import Answer, computed, local_time, table


def add_parser(sub: argparse._SubParsersAction) -> None:
    multicast = sub.add_parser("multicast", help="deploy one image to many machines at once (udpcast)")
    actions = multicast.add_subparsers(dest="action", required=True)
    p = actions.add_parser("start", help="a session: one multicast task per host; it sends when min-receivers "
                                         "machines are ready, or max-wait s after the first one, or on 'go'")
    p.add_argument("image")
    p.add_argument("--hosts", required=True, help="names or MACs, comma-separated: pc1,pc2,pc3")
    p.add_argument("--min-receivers", type=int, default=None, help="start when this many are ready (default: all)")
    p.add_argument("--max-wait", type=int, default=300,
                   help="seconds after the first ready machine before starting with those ready (default 300)")
    p.add_argument("--rate", default=None, help="cap on the wire, bits/s: 200m, 1g (default: none, acks pace it)")
    p.add_argument("--interface", default=None, help="the server's interface towards the clients "
                                                      "(default: the one holding --bind, else the default route's)")
    p.add_argument("--disk", default=None, help="the clients' target disk selector, as for task deploy")
    p.add_argument("--after", default="reboot", choices=("reboot", "poweroff"), help="what the machines do after")
    p.add_argument("--no-wake", action="store_true", help="send no Wake-on-LAN packets to the machines")
    actions.add_parser("list", help="sessions: image, state, clients done, what is being sent")
    for action in ("show", "go", "cancel"):
        p = actions.add_parser(action, help={"show": "the session and each client's state",
                                             "go": "start now with the machines that are ready",
                                             "cancel": "stop the sender, cancel the clients' tasks"}[action])
        p.add_argument("id", type=int)


def _when(value: float | None) -> str:
    return local_time(value) or "-"


def _text(session: dict) -> str:
    lines = [f"session {session['id']}: image {session['image']} ({session['version']}) from node "
             f"{session['storage']}, {session['state']}"
             + (f" — {session['error']}" if session.get("error") else ""),
             f"  min receivers {session['min_receivers']}, max wait {session['max_wait']} s, interface "
             f"{session['interface']}, rate {session['rate'] or 'unlimited'}, ports {session['portbase']}…",
             f"  created {_when(session['created'])}, sending since {_when(session['started'])}, "
             f"ended {_when(session['finished'])}",
             f"  files: {', '.join(session['files'])}"]
    if session.get("current"):
        lines.append(f"  now: {session['current']} ({session.get('detail') or ''}), udp-sender PID "
                     f"{session.get('sender_pid')}")
    rows = [{"task": c["task_id"], "host": c["host"], "address": c["address"], "client": c["state"],
             "task_state": c["task_state"], "stage": c["stage"], "reason": c["error"] or c["reason"]}
            for c in session["clients"]]
    return "\n".join(lines) + "\n" + table(rows, ["task", "host", "address", "client", "task_state", "stage",
                                                  "reason"])


def _done(session: dict) -> str:
    return f"{sum(c['task_state'] == 'done' for c in session['clients'])}/{len(session['clients'])} done"


def run(args: argparse.Namespace, call: Call) -> Any:
    def shown(session: dict) -> Answer:
        return Answer(session, lambda: _text(session))

    match args.action:
        case "start":
            hosts = [h for h in args.hosts.split(",") if h]
            return shown(call("POST", "/api/multicast", {
                "image": args.image, "hosts": hosts, "min_receivers": args.min_receivers, "max_wait": args.max_wait,
                "rate": args.rate, "interface": args.interface, "disk": args.disk, "after": args.after,
                "wake": not args.no_wake}))
        case "list":
            sessions = call("GET", "/api/multicast")
            return Answer(sessions, lambda: table(sessions, ["id", "image", "state", computed("clients", _done),
                                                             "current", "created", "error"]))
        case "show":
            return shown(call("GET", f"/api/multicast/{args.id}"))
        case "go" | "cancel":
            return shown(call("POST", f"/api/multicast/{args.id}/{args.action}"))
    raise ValueError(args.action)
