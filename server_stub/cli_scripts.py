"""``imager-server script add|list|show|delete|attach|detach``: post-deploy scripts over the HTTP API of
server_stub/scriptsapi.py (docs/fleet.md#post-deploy-scripts)."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from server_stub.cli_connection import AdminCallFailed, Call, segment
from server_stub.cli_format import Answer, computed, record, table
from server_stub.store.scripts import MAX_SCRIPT_BYTES, POLICIES, TIMEOUT_DEFAULT_S


def add_parsers(sub: argparse._SubParsersAction) -> None:
    script = sub.add_parser("script", help="post-deploy scripts: run by the imaging environment after a deploy")
    actions = script.add_subparsers(dest="action", required=True)
    p = actions.add_parser("add", help="upload a script (text, at most 256 KiB; the server computes its SHA-256)")
    p.add_argument("name")
    p.add_argument("file", help="the script's file ('-': stdin); a first line #!… names its interpreter, else sh")
    p.add_argument("--description", default="", help="what it does, shown in lists")
    actions.add_parser("list", help="scripts, their SHA-256 and where they are attached")
    p = actions.add_parser("show", help="a script's record, attachments and text")
    p.add_argument("name")
    actions.add_parser("delete", help="delete a script and its attachments").add_argument("name")
    for verb, what in (("attach", "attach to an image or a host group (again: change order, timeout, policy)"),
                       ("detach", "detach from an image or a host group")):
        p = actions.add_parser(verb, help=what)
        p.add_argument("name")
        target = p.add_mutually_exclusive_group(required=True)
        target.add_argument("--image", help="every deploy of this image runs it")
        target.add_argument("--group", help="every deploy onto a host of this host group runs it")
        if verb == "attach":
            p.add_argument("--order", type=int, default=0, help="lower runs first (default 0; then image before "
                                                                  "group, then name)")
            p.add_argument("--timeout", type=int, default=TIMEOUT_DEFAULT_S,
                           help=f"seconds before it is killed (default {TIMEOUT_DEFAULT_S}, at most 3600)")
            p.add_argument("--policy", choices=POLICIES, default="fail",
                           help="when it fails, times out or does not match its SHA-256: fail the task (default) "
                                "or warn and go on")


def read_script(path: str) -> str:
    """The file's text, or a clear refusal (not there, too large, not UTF-8)."""
    try:
        if path == "-":
            data = sys.stdin.buffer.read(MAX_SCRIPT_BYTES + 1)
        else:
            with open(path, "rb") as f:
                data = f.read(MAX_SCRIPT_BYTES + 1)
    except OSError as exc:
        raise AdminCallFailed(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) > MAX_SCRIPT_BYTES:
        raise AdminCallFailed(f"{path} is larger than {MAX_SCRIPT_BYTES // 1024} KiB: the server keeps no larger script")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AdminCallFailed(f"{path} is not UTF-8 text (byte {exc.start}): scripts are text") from exc


def _where(attachment: dict[str, Any]) -> str:
    return f"image {attachment['image']}" if attachment.get("image") else f"group {attachment['group']}"


def _attached(script: dict[str, Any]) -> str:
    return ", ".join(f"{_where(a)} (#{a['position']}, {a['timeout']} s, {a['policy']})"
                     for a in script.get("attachments", [])) or "-"


def _show(script: dict[str, Any]) -> str:
    text = record({**script, "attached": _attached(script)},
                  ["name", "description", "sha256", "size", "created", "created_by", "attached"])
    return f"{text}\n\n{script['content'].rstrip()}"


def run(args: argparse.Namespace, call: Call) -> Any:
    """The command's answer, or NotImplemented when it is not a script command."""
    if args.command != "script":
        return NotImplemented
    path = f"/api/scripts/{segment(getattr(args, 'name', '') or '')}"
    match args.action:
        case "add":
            added = call("POST", "/api/scripts", {"name": args.name, "description": args.description,
                                                  "content": read_script(args.file)})
            return Answer(added, lambda: f"added script {added['name']} ({added['size']} bytes, "
                                         f"SHA-256 {added['sha256']})")
        case "list":
            found = call("GET", "/api/scripts")
            return Answer(found, lambda: table(found, ["name", "size", computed("sha256", lambda s: s["sha256"][:16]),
                                                       "description", computed("attached", _attached)])
                          if found else "no scripts: imager-server script add NAME FILE")
        case "show":
            shown = call("GET", path)
            return Answer(shown, lambda: _show(shown))
        case "delete":
            removed = call("DELETE", path)
            return Answer(removed, lambda: f"deleted script {removed['name']} and its attachments")
        case "attach":
            body = {"order": args.order, "timeout": args.timeout, "policy": args.policy,
                    **({"image": args.image} if args.image else {"group": args.group})}
            done = call("POST", path + "/attach", body)
            return Answer(done, lambda: f"{done['script']} runs after deploys of {_where(done)} "
                                        f"(order {done['position']}, timeout {done['timeout']} s, "
                                        f"policy {done['policy']})")
        case "detach":
            gone = call("POST", path + "/detach", {"image": args.image} if args.image else {"group": args.group})
            return Answer(gone, lambda: f"{gone['script']} no longer runs after deploys of {_where(gone)}")
    raise ValueError(args.action)
