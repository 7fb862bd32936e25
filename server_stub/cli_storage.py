"""``imager-server storage …``, ``image …``, ``replication list``: storage groups and nodes (added, edited,
renamed, removed), images and their old versions (removed; an image is not renamed, see ``IMAGE_RENAME``),
a master's FOG or Clonezilla tree adopted as images, replication jobs. Over the HTTP API (webapp.py, adminapi.py).
"""
from __future__ import annotations

import argparse
import dataclasses
import urllib.parse
from typing import Any

from contract.task import DEFAULT_IMAGE_FORMAT, IMAGE_FORMATS
from contract.vocabulary import IMAGE_TYPES
from server_stub.cli_connection import AdminCallFailed, ApiClient, Call, segment
from server_stub.cli_format import Answer, Column, computed, field, local_time, record, table

RSYNC_HELP = ("where the server's rsync reaches this node's export: a directory on this server (required for a "
              "master whose images replicate), rsync://host/module/path (rsync daemon) or user@host:/path (ssh)")
# Why an image keeps its name (docs/security.md, docs/architecture.md): its versions on the nodes are
# `.images/<name>@<stamp>` with a link `<name>` to the current one, on nodes the server may reach only over
# rsync, and clients read them by that name. A rename in the database alone would lose them.
IMAGE_RENAME = ("an image cannot be renamed: its versions on the storage nodes are named <name>@<stamp> behind "
                "a link <name>, on nodes this server may not reach, and deploys read them by that name. Add an "
                "image with the new name, capture it (or deploy the old one and capture), then 'image remove {name}'")
NODE_COLUMNS: list[Column | str] = ["name", field("group_name", "group"), computed("master", lambda n: "yes" if n.get("master") else ""), "export",
                "options", computed("clients", lambda n: f"{n.get('running', 0)}/{n.get('max_clients')}"),
                "rsync_target", field("http_url", "http")]
HTTP_HELP = ("deploys from this node over HTTP, not NFS (docs/http-transport.md): 'server' (this server serves the "
             "node's local --rsync-target read-only) or http(s)://host/images/ of a web server; set '' for NFS again")

FORMAT_HELP = ("what the image's captures write: stream (one compressed stream a partition) or chunked "
               "(content-addressed chunks shared by its versions: a redeploy moves and writes only what changed); "
               "both multicast")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    storage = sub.add_parser("storage", help="storage nodes (NFS exports) and their groups")\
        .add_subparsers(dest="action", required=True)
    groups = storage.add_parser("group", help="storage groups: nodes holding the same images, one master")\
        .add_subparsers(dest="group_action", required=True)
    groups.add_parser("add", help="an empty group").add_argument("name")
    groups.add_parser("list", help="groups, their master and how many nodes")
    p = groups.add_parser("rename", help="give a group a new name (its nodes, images and hosts follow)")
    p.add_argument("name")
    p.add_argument("new_name", metavar="NEW")
    groups.add_parser("remove", help="remove an empty group").add_argument("name")
    p = storage.add_parser("add", help="an NFS node in a group (default: group 'default', created on first use); "
                                       "the group's first node is its master")
    p.add_argument("name")
    p.add_argument("export", help="HOST:/PATH of the NFS export")
    p.add_argument("--options", default="vers=4.1", help="NFS mount options (default vers=4.1)")
    p.add_argument("--group", default=None, help="storage group (default: 'default')")
    p.add_argument("--master", action="store_true", help="captures go to this node from now on")
    p.add_argument("--max-clients", type=int, default=None, help="simultaneous clients (default 10)")
    p.add_argument("--rsync-target", default=None, help=RSYNC_HELP)
    p.add_argument("--http-url", default=None, help=HTTP_HELP)
    p = storage.add_parser("set", help="change a node's limit of clients, export, mount options, name or rsync "
                                       "target, or make it its group's master")
    p.add_argument("name")
    p.add_argument("--max-clients", type=int, default=None, help="simultaneous clients")
    p.add_argument("--master", action="store_true", help="captures go to this node from now on")
    p.add_argument("--rsync-target", default=None, help=RSYNC_HELP)
    p.add_argument("--rename", default=None, help="the node's new name")
    p.add_argument("--export", default=None, help="HOST:/PATH of the NFS export")
    p.add_argument("--options", default=None, help="NFS mount options")
    p.add_argument("--http-url", default=None, help=HTTP_HELP)
    p = storage.add_parser("rename", help="give a node a new name")
    p.add_argument("name")
    p.add_argument("new_name", metavar="NEW")
    storage.add_parser("list", help="nodes: group, master, export, clients now/max, rsync target")
    storage.add_parser("remove", help="forget a node (not while images, tasks or replications use it)")\
        .add_argument("name")
    storage.add_parser("gc", help="collect the node's unused chunks now (its --rsync-target a directory on this "
                                  "server; also run after removals and every 6 h: docs/chunking.md)").add_argument("name")

    image = sub.add_parser("image", help="images: add, list, show, versions, remove, replicate")\
        .add_subparsers(dest="action", required=True)
    p = image.add_parser("add", help="a name for captures to fill, in a storage group")
    p.add_argument("name")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--group", help="the storage group holding the image")
    where.add_argument("--storage", help="older form: a storage node, meaning its group")
    p.add_argument("--description", default="", help="free text shown with the image")
    p.add_argument("--type", default="resizable", choices=IMAGE_TYPES,
                   help="resizable: shrink for capture, fit any disk the data fits (FOG type 1); "
                        "multipart: exact layout (FOG type 2); alldisks: every fixed disk, exact layouts (FOG type 3); "
                        "raw: every byte of the disk (FOG type 4)")
    p.add_argument("--format", default=DEFAULT_IMAGE_FORMAT, choices=IMAGE_FORMATS, help=FORMAT_HELP)
    p = image.add_parser("set", help="change an image's description, type or format (what its next capture writes)")
    p.add_argument("name")
    p.add_argument("--description", help="free text shown with the image")
    p.add_argument("--type", choices=IMAGE_TYPES, help="the next capture's type (image add --help says each)")
    p.add_argument("--format", choices=IMAGE_FORMATS, help=FORMAT_HELP)
    image.add_parser("list", help="images: type, format, group, home node, replicas, size, last capture")
    image.add_parser("show", help="an image, its source host and its versions").add_argument("name")
    image.add_parser("versions", help="the image's versions on the nodes this server reaches as directories")\
        .add_argument("name")
    p = image.add_parser("rename", help="refused: an image's files carry its name (says what to do instead)")
    p.add_argument("name")
    p.add_argument("new_name", metavar="NEW")
    image.add_parser("remove", help="forget an image (not while a task uses it; its files stay)")\
        .add_argument("name")
    p = image.add_parser("remove-version", help="delete an old version's directory (never the current one)")
    p.add_argument("name")
    p.add_argument("version", help="NAME@STAMP (image versions NAME lists them)")
    image.add_parser("replicate", help="copy the image from its home node to the group's other nodes "
                                       "(also done after every capture)").add_argument("name")
    image.add_parser("adopt", help="make every FOG or Clonezilla image directory on the group's master (its "
                                   "--rsync-target directory: a FOG /images or Clonezilla /home/partimag tree) an "
                                   "image of the group, deployed as it is; again: adopts only new ones")\
        .add_argument("--group", required=True, help="the storage group whose master holds the tree")

    p = sub.add_parser("replication", help="replication jobs: state, bytes, error")
    p.add_argument("action", choices=("list",))
    p.add_argument("--image", default=None, help="only this image's jobs")


def _versions_table(versions: list[dict]) -> str:
    return table(versions, ["version", "node", computed("current", lambda v: "yes" if v["current"] else ""),
                            "created", field("raw_bytes", "data"), field("stored_bytes", "stored")])


def _image_text(image: dict) -> str:
    lines = record(image, ["name", "type", "format", "group_name", "storage", "source_host", "stored_bytes", "captured"])
    replicas = ", ".join(image.get("replicas") or []) or "-"
    return f"{lines}\nreplicas:     {replicas}\n" + _versions_table(image["versions"])


def _jobs_table(jobs: list[dict]) -> str:
    return table(jobs, ["id", "image", "source", "node", "state", "version", "bytes", "started", "finished", "error"])


def _adopted_text(done: dict) -> str:
    lines = [f"adopted {len(done['adopted'])} image(s)" + (":" if done["adopted"] else "")]
    if done["adopted"]:
        lines.append(table(done["adopted"], ["name", "type", field("stored_bytes", "size"), "captured",
                                             "description"]))
    lines += [f"skipped {s['name']}: {s['reason']}" for s in done["skipped"]]
    return "\n".join(lines)


def _node(node: dict) -> Answer:
    shown = {**node, "master": "yes" if node.get("master") else "no"}  # the view only: --json keeps the API's 1/0
    return Answer(node, lambda: record(shown, ["name", "group_name", "master", "export", "options", "max_clients",
                                               "rsync_target", "http_url", "created"]))


def _image(image: dict) -> Answer:
    return Answer(image, lambda: record(image, ["name", "type", "format", "group_name", "storage", "description", "created",
                                                "captured", "stored_bytes", "replicas"]))


def _removed(what: str, data: dict) -> Answer:
    return Answer(data, lambda: f"removed {what} {data['name']}")


def _collected(report: dict) -> Answer:
    """A chunk collection's report (server_stub/chunkgc.py): quarantined chunks go at the next run."""
    return Answer(report, lambda: record(report, ["node", "indexes", "marked", "quarantined", "restored",
                                                  "recovered", "deleted", "freed_bytes", "temp_removed",
                                                  "trash_chunks", "trash_bytes", "seconds"]))


def _group_command(args: argparse.Namespace, call: Call) -> Any:
    match args.group_action:
        case "add":
            return call("POST", "/api/storage-groups", {"name": args.name})
        case "list":
            groups = call("GET", "/api/storage-groups")
            return Answer(groups, lambda: table(groups, ["id", "name", "master", "nodes"]))
        case "rename":
            return call("POST", f"/api/storage-groups/{segment(args.name)}", {"name": args.new_name})
        case "remove":
            return _removed("storage group", call("DELETE", f"/api/storage-groups/{segment(args.name)}"))
    return NotImplemented


def run(args: argparse.Namespace, call: Call) -> Any:
    """The command's answer, or NotImplemented when it is not one of these."""
    match args.command, getattr(args, "action", None):
        case "storage", "group":
            return _group_command(args, call)
        case "storage", "add":
            return _node(call("POST", "/api/storage", {
                "name": args.name, "export": args.export, "options": args.options, "group": args.group,
                "master": args.master, "max_clients": args.max_clients, "rsync_target": args.rsync_target,
                "http_url": args.http_url}))
        case "storage", "set":
            return _node(call("POST", f"/api/storage/{segment(args.name)}",
                              {"max_clients": args.max_clients, "master": args.master, "name": args.rename,
                               "rsync_target": args.rsync_target, "export": args.export, "options": args.options,
                               "http_url": args.http_url}))
        case "storage", "rename":
            return _node(call("POST", f"/api/storage/{segment(args.name)}", {"name": args.new_name}))
        case "storage", "list":
            nodes = call("GET", "/api/storage")
            return Answer(nodes, lambda: table(nodes, NODE_COLUMNS))
        case "storage", "remove":
            return _removed("storage node", call("DELETE", f"/api/storage/{segment(args.name)}"))
        case "storage", "gc":  # a big store takes minutes: wait for the report
            slow = dataclasses.replace(call, timeout=3600) if isinstance(call, ApiClient) else call
            return _collected(slow("POST", f"/api/storage/nodes/{segment(args.name)}/gc"))
        case "image", "add":
            return _image(call("POST", "/api/images", {"name": args.name, "group": args.group, "storage": args.storage,
                                                       "description": args.description, "type": args.type,
                                                       "format": args.format}))
        case "image", "set":
            return _image(call("POST", f"/api/images/{segment(args.name)}", {
                key: value for key, value in (("description", args.description), ("type", args.type),
                                              ("format", args.format)) if value is not None}))
        case "image", "list":
            images = call("GET", "/api/images")
            return Answer(images, lambda: table(images, [
                "id", "name", "type", "format", field("group_name", "group"), "storage", computed("replicas", lambda i: ",".join(
                    i.get("replicas") or [])), field("stored_bytes", "size"), "captured"]))
        case "image", "show":
            image = call("GET", f"/api/images/{segment(args.name)}")
            return Answer(image, lambda: _image_text(image))
        case "image", "versions":
            versions = call("GET", f"/api/images/{segment(args.name)}/versions")
            return Answer(versions, lambda: _versions_table(versions))
        case "image", "rename":
            raise AdminCallFailed(IMAGE_RENAME.format(name=args.name))
        case "image", "remove":
            return _removed("image", call("DELETE", f"/api/images/{segment(args.name)}"))
        case "image", "remove-version":
            removed = call("DELETE", f"/api/images/{segment(args.name)}/versions/{segment(args.version)}")
            return Answer(removed, lambda: "\n".join(
                f"removed {v['version']} from {v['node']} ({local_time(v['created'])})" for v in removed["removed"])
                or "nothing removed")
        case "image", "adopt":
            done = call("POST", "/api/images/adopt", {"group": args.group})
            return Answer(done, lambda: _adopted_text(done))
        case "image", "replicate":
            jobs = call("POST", f"/api/images/{segment(args.name)}/replicate")
            return Answer(jobs, lambda: _jobs_table(jobs))
        case "replication", _:
            query = f"?{urllib.parse.urlencode({'image': args.image})}" if args.image else ""
            jobs = call("GET", f"/api/replication{query}")
            return Answer(jobs, lambda: _jobs_table(jobs))
    return NotImplemented
