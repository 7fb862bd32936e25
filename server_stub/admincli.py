"""``imager-server host …``, ``boot-log``, ``settings …``: hosts added, listed (searched, sorted), shown with
their inventory, edited, renamed and removed; the boot log; the server's settings. Over the HTTP API
(webapp.py, adminapi.py), the same calls as the console's.
"""
from __future__ import annotations

import argparse
import urllib.parse
from typing import Any

from server_stub.cli_connection import Call, all_rows, segment
from server_stub.cli_format import Answer, computed, field, human_size, local_time, record, table, to_json
from server_stub.store.hosts import HOST_SORTS
from server_stub.store.menu import UNKNOWN_HOSTS_POLICIES

HOST_FIELDS = ("id", "mac", "name", "registered", "image", "group_name", "created")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    host = sub.add_parser("host", help="machines: add, list, show, edit, rename, remove")\
        .add_subparsers(dest="action", required=True)
    p = host.add_parser("add", help="a machine by its MAC and a name")
    p.add_argument("mac")
    p.add_argument("name")
    p = host.add_parser("list", help="hosts and their active task")
    p.add_argument("--search", default="", help="part of the name, MAC, group or image")
    p.add_argument("--sort", default="name", choices=tuple(HOST_SORTS), help="the column to sort by (default name)")
    p.add_argument("--desc", action="store_true", help="sort descending")
    host.add_parser("show", help="a host and its latest inventory").add_argument("name", help="name or MAC")
    host.add_parser("inventory", help="the latest inventory, always as JSON").add_argument("name", help="name or MAC")
    p = host.add_parser("set", help="change a host's name, MAC, assigned image or group")
    p.add_argument("key", metavar="NAME", help="name or MAC")
    p.add_argument("--name", default=None, help="its new name")
    p.add_argument("--mac", default=None, help="its new MAC (a replaced network card)")
    p.add_argument("--image", default=None, help="the image assigned to it ('' clears it)")
    p.add_argument("--group", default=None, help="its group ('' clears it)")
    p = host.add_parser("rename", help="give a host a new name (its tasks and inventory follow)")
    p.add_argument("key", metavar="NAME", help="name or MAC")
    p.add_argument("new_name", metavar="NEW")
    host.add_parser("remove", help="forget a host, its inventory and finished tasks (not while it has a task)")\
        .add_argument("key", metavar="NAME", help="name or MAC")

    p = sub.add_parser("boot-log", help="what each machine was told to boot, newest last")
    p.add_argument("--mac", default=None, help="only this MAC")

    actions = sub.add_parser("settings", help="the server's settings").add_subparsers(dest="action", required=True)
    actions.add_parser("show", help="every setting and its value")
    p = actions.add_parser("set", help="unknown-hosts: what a MAC the server does not know boots, from its next "
                                       "boot (menu, register or local; serve --unknown-hosts until set)")
    p.add_argument("key", choices=("unknown-hosts",))
    p.add_argument("value", choices=UNKNOWN_HOSTS_POLICIES)


def host_text(host: dict) -> str:
    """A host record and its latest inventory, for a technician."""
    lines = [f"{k + ':':<12}{host.get(k) if host.get(k) is not None else '-'}"
             for k in ("name", "mac", "registered", "image", "group_name")]
    if "groups" in host:  # every host group it is in (docs/fleet.md#host-groups)
        lines.append(f"{'groups:':<12}{', '.join(host['groups']) or '-'}")
    found = host.get("inventory")
    if not found:
        return "\n".join(lines + ["inventory:  none yet (imager-server task inventory " + host["name"] + ")"])
    inv = found["data"]
    cpu, dmi = inv.get("cpu", {}), inv.get("dmi", {})
    lines += [f"inventory:  {local_time(found['collected'])}"
              + (f" (task {found['task_id']})" if found.get("task_id") else " (registration)"),
              f"  system:   {dmi.get('sys_vendor', '')} {dmi.get('product_name', '')}  serial "
              f"{dmi.get('product_serial', '-')}  uuid {dmi.get('product_uuid', '-')}",
              f"  bios:     {dmi.get('bios_vendor', '')} {dmi.get('bios_version', '')} {dmi.get('bios_date', '')}",
              f"  board:    {dmi.get('board_vendor', '')} {dmi.get('board_name', '')}",
              f"  cpu:      {cpu.get('model', '?')} ({cpu.get('cores', '?')} cores, {cpu.get('threads', '?')} threads)",
              f"  memory:   {human_size(inv.get('memory_bytes', 0))}"]
    for d in inv.get("disks", []):
        kind = "ssd" if d.get("rotational") is False else "hdd" if d.get("rotational") else "?"
        # Disks in decimal GB, as their makers label them.
        lines.append(f"  disk:     {d.get('path')}  {d.get('size_bytes', 0) / 1e9:.1f} GB  {d.get('model', '')}  "
                     f"serial {d.get('serial') or '-'}  wwn {d.get('wwn') or '-'}  {kind}"
                     + ("  removable" if d.get("removable") else ""))
    for n in inv.get("nics", []):
        speed = f"{n['speed_mbps']} Mb/s" if n.get("speed_mbps") is not None else "no link"
        lines.append(f"  nic:      {n.get('name')}  {n.get('mac')}  {speed}  {n.get('driver', '')}")
    for m in inv.get("firmware_missing", []):  # the agent found it in the kernel log (imager/missingfirmware.py)
        lines.append(f"  firmware: {m.get('interface') or '-'} ({m.get('driver')} {m.get('device')}) is missing "
                     f"{m.get('file')}")
    return "\n".join(lines)


def _host(data: dict) -> Answer:
    return Answer(data, lambda: record(data, [k for k in HOST_FIELDS if k in data]))


def _active_task(row: dict) -> str:
    return f"{row['task_type']} {row['task_state']} ({row['task_id']})" if row.get("task_id") else ""


def run(args: argparse.Namespace, call: Call) -> Any:
    """The command's answer, or NotImplemented when it is not one of these."""
    match args.command, getattr(args, "action", None):
        case "host", "add":
            return _host(call("POST", "/api/hosts", {"mac": args.mac, "name": args.name}))
        case "host", "list":
            hosts = all_rows(call, "/api/pages/hosts", {"q": args.search, "sort": args.sort, "desc": int(args.desc)})
            return Answer(hosts, lambda: table(hosts, ["id", "mac", "name", "registered", "image",
                                                       field("group_name", "group"),
                                                       computed("task", _active_task)]))
        case "host", "show":
            shown = call("GET", f"/api/hosts/{segment(args.name)}")
            return Answer(shown, lambda: host_text(shown))
        case "host", "inventory":  # JSON for people too: `host show` is their view of it
            inventory = call("GET", f"/api/hosts/{segment(args.name)}/inventory")
            return Answer(inventory, lambda: to_json(inventory))
        case "host", "set":
            changes = {k: getattr(args, k) for k in ("name", "mac", "image", "group") if getattr(args, k) is not None}
            return _host(call("POST", f"/api/hosts/{segment(args.key)}", changes))
        case "host", "rename":
            return _host(call("POST", f"/api/hosts/{segment(args.key)}", {"name": args.new_name}))
        case "host", "remove":
            removed = call("DELETE", f"/api/hosts/{segment(args.key)}")
            return Answer(removed, lambda: f"removed host {removed['name']} ({removed['mac']})")
        case "boot-log", _:
            query = f"?{urllib.parse.urlencode({'mac': args.mac})}" if args.mac else ""
            entries = call("GET", f"/api/boot-log{query}")
            return Answer(entries, lambda: table(entries, ["time", "mac", "decision", "task_id"]))
        case "settings", "show":
            return call("GET", "/api/settings")
        case "settings", "set":
            return call("POST", "/api/settings", {args.key.replace("-", "_"): args.value})
    return NotImplemented
