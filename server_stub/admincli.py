"""``imager-server`` commands for the lists, edits and removals the console has too (issue 12), over the HTTP
API of server_stub/adminapi.py: host set/remove, host list searched and sorted, task list filtered, image
show/versions/remove/remove-version, storage remove, storage group rename/remove, settings show/set.
"""
from __future__ import annotations

import argparse
import datetime
import urllib.parse
from typing import Any, Callable

from server_stub.store.hosts import HOST_SORTS
from server_stub.store.menu import UNKNOWN_HOSTS_POLICIES
from server_stub.store.tasks import TASK_SORTS, TASK_TYPES

Call = Callable[..., Any]
Table = Callable[[list[dict], list[str]], str]
PAGE = 1000  # rows asked per call when the whole list is wanted


def _q(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def _when(value: float | None) -> str:
    return datetime.datetime.fromtimestamp(value).isoformat(" ", "seconds") if value else ""


def add_host_actions(host: argparse._SubParsersAction) -> None:
    p = host.add_parser("set", help="change a host's name, MAC, assigned image or group")
    p.add_argument("key", metavar="NAME", help="name or MAC")
    p.add_argument("--name", default=None)
    p.add_argument("--mac", default=None)
    p.add_argument("--image", default=None, help="the image assigned to it ('' clears it)")
    p.add_argument("--group", default=None, help="its group ('' clears it)")
    host.add_parser("remove", help="forget a host, its inventory and finished tasks (not while it has a task)")\
        .add_argument("key", metavar="NAME", help="name or MAC")


def add_host_list_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--search", default="", help="part of the name, MAC, group or image")
    p.add_argument("--sort", default="name", choices=tuple(HOST_SORTS))
    p.add_argument("--desc", action="store_true", help="sort descending")


def add_image_actions(image: argparse._SubParsersAction) -> None:
    image.add_parser("show", help="an image, its source host and its versions").add_argument("name")
    image.add_parser("versions", help="the image's versions on the nodes this server reaches as directories")\
        .add_argument("name")
    image.add_parser("remove", help="forget an image (not while a task uses it; its files stay)")\
        .add_argument("name")
    p = image.add_parser("remove-version", help="delete an old version's directory (never the current one)")
    p.add_argument("name")
    p.add_argument("version", help="NAME@STAMP (image versions NAME lists them)")


def add_storage_actions(storage: argparse._SubParsersAction, set_parser: argparse.ArgumentParser) -> None:
    storage.add_parser("remove", help="forget a node (not while images, tasks or replications use it)")\
        .add_argument("name")
    set_parser.add_argument("--rename", default=None, help="the node's new name")
    set_parser.add_argument("--export", default=None, help="HOST:/PATH of the NFS export")
    set_parser.add_argument("--options", default=None, help="NFS mount options")


def add_group_actions(group_actions: argparse._SubParsersAction) -> None:
    p = group_actions.add_parser("rename")
    p.add_argument("name")
    p.add_argument("new_name")
    group_actions.add_parser("remove", help="remove an empty group").add_argument("name")


def add_task_list_options(p: argparse.ArgumentParser) -> None:
    which = p.add_mutually_exclusive_group()
    which.add_argument("--active", action="store_true", help="queued and running tasks only")
    which.add_argument("--state", default=None, choices=("active", "queued", "running", "done", "failed", "canceled"))
    p.add_argument("--host", default=None, help="name or MAC")
    p.add_argument("--type", default=None, choices=TASK_TYPES)
    p.add_argument("--image", default=None)
    p.add_argument("--sort", default="id", choices=tuple(TASK_SORTS))
    p.add_argument("--desc", action="store_true", help="sort descending (--sort id --desc: newest first)")


def list_tasks(args: argparse.Namespace, server: str, call: Call) -> list[dict]:
    """The tasks ``task list`` shows, with its filters."""
    return _all_rows(call, server, "/api/pages/tasks",
                     {"state": "active" if args.active else args.state, "type": args.type, "host": args.host,
                      "image": args.image, "sort": args.sort, "desc": int(args.desc)})


def add_settings_parser(sub: argparse._SubParsersAction) -> None:
    actions = sub.add_parser("settings", help="the server's settings").add_subparsers(dest="action", required=True)
    actions.add_parser("show")
    p = actions.add_parser("set", help="unknown-hosts: what a MAC the server does not know boots, from its next "
                                       "boot (menu, register or local; serve --unknown-hosts until set)")
    p.add_argument("key", choices=("unknown-hosts",))
    p.add_argument("value", choices=UNKNOWN_HOSTS_POLICIES)


def _all_rows(call: Call, server: str, path: str, query: dict[str, Any]) -> list[dict]:
    """Every row of a paged list, a page at a time."""
    rows: list[dict] = []
    while True:
        params = urllib.parse.urlencode({k: v for k, v in {**query, "offset": len(rows), "limit": PAGE}.items()
                                         if v is not None})
        page = call(server, "GET", f"{path}?{params}")
        rows += page["rows"]
        if not page["rows"] or len(rows) >= page["total"]:
            return rows


def _versions_table(versions: list[dict], table: Table) -> str:
    for v in versions:
        v["current_"] = "yes" if v["current"] else ""
        v["created_"] = _when(v["created"])
    return table(versions, ["version", "node", "current_", "created_", "raw_bytes", "stored_bytes"])


def run(args: argparse.Namespace, server: str, call: Call, table: Table) -> object:
    """The command's output, or NotImplemented when it is not one of these."""
    match args.command, getattr(args, "action", None), getattr(args, "group_action", None):
        case "host", "set", _:
            changes = {k: getattr(args, k) for k in ("name", "mac", "image", "group") if getattr(args, k) is not None}
            return call(server, "POST", f"/api/hosts/{_q(args.key)}", changes)
        case "host", "remove", _:
            return call(server, "DELETE", f"/api/hosts/{_q(args.key)}")
        case "host", "list", _:
            hosts = _all_rows(call, server, "/api/pages/hosts",
                              {"q": args.search, "sort": args.sort, "desc": int(args.desc)})
            for h in hosts:
                h["task_"] = f"{h['task_type']} {h['task_state']} ({h['task_id']})" if h.get("task_id") else ""
            return table(hosts, ["id", "mac", "name", "registered", "image", "group_name", "task_"])
        case "image", "show", _:
            image = call(server, "GET", f"/api/images/{_q(args.name)}")
            lines = [f"{k + ':':<14}{image.get(k) if image.get(k) is not None else '-'}"
                     for k in ("name", "type", "group_name", "storage", "source_host", "stored_bytes")]
            lines.append(f"{'captured:':<14}{_when(image.get('captured')) or '-'}")
            lines.append(f"{'replicas:':<14}{', '.join(image.get('replicas') or []) or '-'}")
            return "\n".join(lines) + "\n" + _versions_table(image["versions"], table)
        case "image", "versions", _:
            return _versions_table(call(server, "GET", f"/api/images/{_q(args.name)}/versions"), table)
        case "image", "remove", _:
            return call(server, "DELETE", f"/api/images/{_q(args.name)}")
        case "image", "remove-version", _:
            return call(server, "DELETE", f"/api/images/{_q(args.name)}/versions/{_q(args.version)}")
        case "storage", "remove", _:
            return call(server, "DELETE", f"/api/storage/{_q(args.name)}")
        case "storage", "group", "rename":
            return call(server, "POST", f"/api/storage-groups/{_q(args.name)}", {"name": args.new_name})
        case "storage", "group", "remove":
            return call(server, "DELETE", f"/api/storage-groups/{_q(args.name)}")
        case "settings", "show", _:
            return call(server, "GET", "/api/settings")
        case "settings", "set", _:
            return call(server, "POST", "/api/settings", {args.key.replace("-", "_"): args.value})
    return NotImplemented

