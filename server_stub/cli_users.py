"""``imager-server user …`` and ``audit list``: console accounts and the audit log, over the HTTP API of
server_stub/usersapi.py (the console's Settings and Audit pages call the same routes' store methods).

A password is asked twice on the terminal (not echoed), or read from the first line of stdin with
``--password-stdin`` (scripts); it never goes on the command line, where ``ps`` would show it.
"""
from __future__ import annotations

import argparse
import getpass
import sys
import urllib.parse
from typing import Any

from server_stub.cli_connection import Call, segment
from server_stub.cli_format import Answer, computed, table
from server_stub.store.accounts import ROLES


class PasswordNotGiven(Exception):
    """The password was not typed the same twice, or stdin had none."""


def add_parsers(sub: argparse._SubParsersAction) -> None:
    user = sub.add_parser("user", help="console accounts: admins and technicians")
    actions = user.add_subparsers(dest="action", required=True)
    p = actions.add_parser("add", help="a new account (password asked twice, or --password-stdin)")
    p.add_argument("name")
    p.add_argument("--role", choices=ROLES, default="technician",
                   help="admin: everything; technician: sees all, queues/starts/cancels tasks (default)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin's first line")
    actions.add_parser("list", help="accounts, their role, when made and when their password changed")
    p = actions.add_parser("passwd", help="set a new password (signs the user out everywhere)")
    p.add_argument("name")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin's first line")
    p = actions.add_parser("role", help="make a user an admin or a technician")
    p.add_argument("name")
    p.add_argument("role", choices=ROLES)
    actions.add_parser("remove", help="remove an account (not the last admin)").add_argument("name")

    audit = sub.add_parser("audit", help="who did what, when (every state-changing call)")
    p = audit.add_subparsers(dest="action", required=True).add_parser("list", help="newest first, local times")
    p.add_argument("--actor", default=None, help="only this user's actions ('admin': the admin token)")
    p.add_argument("--limit", type=int, default=50, help="how many entries (1-500, default 50)")
    p.add_argument("--offset", type=int, default=0, help="skip this many of the newest first")


def read_password(from_stdin: bool, name: str) -> str:
    if from_stdin or not sys.stdin.isatty():
        line = sys.stdin.readline().rstrip("\n")
        if not line:
            raise PasswordNotGiven("no password on stdin")
        return line
    first = getpass.getpass(f"new password for {name}: ")
    if getpass.getpass("the same again: ") != first:
        raise PasswordNotGiven("the two passwords differ; nothing changed")
    return first


def _path(name: str) -> str:
    return f"/api/users/{segment(name)}"


def _audit_text(found: dict, args: argparse.Namespace) -> str:
    rows = found["rows"]
    if not rows:
        return "no audit entries" + (f" by {args.actor}" if args.actor else "")
    shown = table(rows, ["time", computed("who", lambda r: f"{r['actor']} ({r['role']}, {r['via']})"), "action",
                         "target", "outcome", "address"])
    return shown + f"\n{args.offset + 1}-{args.offset + len(rows)} of {found['total']}, newest first"


def run(args: argparse.Namespace, call: Call) -> Any:
    match args.command, args.action:
        case "user", "add":
            password = read_password(args.password_stdin, args.name)
            user = call("POST", "/api/users", {"name": args.name, "role": args.role, "password": password})
            return Answer(user, lambda: f"added {user['name']} ({user['role']})")
        case "user", "list":
            users = call("GET", "/api/users")
            return Answer(users, lambda: table(users, ["name", "role", "created", "password_changed"]) if users else
                          "no accounts yet (the admin token signs in as admin): imager-server user add NAME --role admin")
        case "user", "passwd":
            password = read_password(args.password_stdin, args.name)
            changed = call("POST", _path(args.name), {"password": password})
            return Answer(changed, lambda: f"new password for {args.name}; their sessions are signed out")
        case "user", "role":
            user = call("POST", _path(args.name), {"role": args.role})
            return Answer(user, lambda: f"{user['name']} is now "
                                        f"{'an admin' if user['role'] == 'admin' else 'a technician'}")
        case "user", "remove":
            removed = call("DELETE", _path(args.name))
            return Answer(removed, lambda: f"removed {args.name}")
        case "audit", "list":
            query = {"offset": args.offset, "limit": args.limit, **({"actor": args.actor} if args.actor else {})}
            found = call("GET", "/api/audit?" + urllib.parse.urlencode(query))
            return Answer(found, lambda: _audit_text(found, args))
    raise ValueError(args.action)
