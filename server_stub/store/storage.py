"""Storage groups and their NFS nodes.

A group holds nodes; one of them is the master, where captures go. A node serves at most ``max_clients``
running tasks at once (the count is the tasks recorded on it, so it survives restarts).
"""
from __future__ import annotations

import sqlite3
import time
from typing import Any, Callable, cast
from urllib.parse import urlsplit

from server_stub.errors import Conflict, Invalid, NotFound
from server_stub.store.database import Database
from server_stub.store.models import StorageGroup, StorageNode
from server_stub.store.validate import (check_export, check_max_clients, check_mount_options, check_name,
                                        check_rsync_target)

DEFAULT_GROUP = "default"
SERVER_HTTP = "server"  # http_url: this server's read-only image route serves the node's local directory
MAX_URL = 500
DEFAULT_MAX_CLIENTS = 10

NODES = ("SELECT s.*, g.name AS group_name, "
         "(SELECT COUNT(*) FROM tasks t WHERE t.storage_id = s.id AND t.state = 'running') AS running "
         "FROM storage_nodes s LEFT JOIN storage_groups g ON g.id = s.group_id ")


class Storage:
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- groups ------------------------------------------------------------
    def add_group(self, name: str) -> StorageGroup:
        check_name(name, "storage group")
        try:
            with self.db.transaction():
                self.db.execute("INSERT INTO storage_groups(name, created) VALUES (?, ?)", name, time.time())
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"storage group {name} exists already") from exc
        return self.group(name)

    def group(self, name: str) -> StorageGroup:
        row = self.db.one("SELECT g.*, "
                          "(SELECT name FROM storage_nodes WHERE group_id = g.id AND master = 1) AS master, "
                          "(SELECT COUNT(*) FROM storage_nodes WHERE group_id = g.id) AS nodes "
                          "FROM storage_groups g WHERE g.name = ?", name)
        if not row:
            raise NotFound(f"no storage group {name!r}")
        return cast(StorageGroup, row)

    def rename_group(self, name: str, new_name: str) -> StorageGroup:
        _checked_name(new_name, "storage group")
        with self.db.transaction():
            group = self.group(name)
            if new_name != name and self.db.one("SELECT id FROM storage_groups WHERE name = ?", new_name):
                raise Conflict(f"storage group {new_name} exists already", field="name")
            self.db.execute("UPDATE storage_groups SET name = ? WHERE id = ?", new_name, group["id"])
        return self.group(new_name)

    def remove_group(self, name: str) -> StorageGroup:
        """Only an empty group goes: its nodes and images would lose their place."""
        with self.db.transaction():
            group = self.group(name)
            if group["nodes"]:
                raise Conflict(f"storage group {name} still has {group['nodes']} node(s); remove them first")
            images = [r["name"] for r in self.db.all("SELECT name FROM images WHERE group_id = ? ORDER BY name",
                                                     group["id"])]
            if images:
                raise Conflict(f"storage group {name} still holds images {', '.join(images[:5])}; remove them first")
            self.db.execute("DELETE FROM storage_groups WHERE id = ?", group["id"])
        return group

    def groups(self) -> list[StorageGroup]:
        return [self.group(r["name"]) for r in self.db.all("SELECT name FROM storage_groups ORDER BY name")]

    # --- nodes -------------------------------------------------------------
    def add_storage(self, name: str, export: str, options: str = "vers=4.1", group: str | None = None,
                    master: bool = False, max_clients: int | None = None,
                    rsync_target: str | None = None, http_url: str | None = None) -> StorageNode:
        """A node joins a group (``default`` when none is named; only that one is created on the fly, so a
        mistyped group is an error). The first node of a group is its master; ``master`` makes this one it."""
        check_name(name, "storage node")
        check_export(export)
        check_mount_options(options)
        limit = check_max_clients(DEFAULT_MAX_CLIENTS if max_clients is None else max_clients)
        target = check_rsync_target(rsync_target) if rsync_target else None
        http = _checked(check_http_url, http_url, "http_url") if http_url else None
        group = group or DEFAULT_GROUP
        try:
            with self.db.transaction():
                if group == DEFAULT_GROUP:
                    self.db.execute("INSERT OR IGNORE INTO storage_groups(name, created) VALUES (?, ?)",
                                    group, time.time())
                group_row = self.group(group)
                if master and group_row["master"]:
                    self.db.execute("UPDATE storage_nodes SET master = 0 WHERE group_id = ?", group_row["id"])
                self.db.execute(
                    "INSERT INTO storage_nodes(name, export, options, max_clients, created, group_id, master, "
                    "rsync_target, http_url) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    name, export, options, limit, time.time(), group_row["id"], int(master or not group_row["master"]),
                    target, http)
                _check_served_here(self.storage(name))
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"storage node {name} exists already") from exc
        return self.storage(name)

    def storage(self, name: str) -> StorageNode:
        row = self.db.one(NODES + "WHERE s.name = ?", name)
        if not row:
            raise NotFound(f"no storage node {name!r}")
        return cast(StorageNode, row)

    def storage_nodes(self) -> list[StorageNode]:
        return self.db.all_as(StorageNode, NODES + "ORDER BY g.name, s.name")

    def set_storage(self, name: str, max_clients: int | None = None, master: bool = False,
                    rsync_target: str | None = None, new_name: str | None = None, export: str | None = None,
                    options: str | None = None, http_url: str | None = None) -> StorageNode:
        """Change what is given (None: unchanged); ``rsync_target`` or ``http_url`` "" clears it."""
        self.storage(name)
        if max_clients is not None:
            _checked(check_max_clients, max_clients, "max_clients")
        target = _checked(check_rsync_target, rsync_target, "rsync_target") if rsync_target else None
        if new_name is not None:
            _checked_name(new_name, "storage node")
        if export is not None:
            _checked(check_export, export, "export")
        if options is not None:
            _checked(check_mount_options, options, "options")
        http = _checked(check_http_url, http_url, "http_url") if http_url else None
        with self.db.transaction():
            node = self.storage(name)
            if new_name is not None and new_name != name:
                if self.db.one("SELECT id FROM storage_nodes WHERE name = ?", new_name):
                    raise Conflict(f"storage node {new_name} exists already", field="name")
                self.db.execute("UPDATE storage_nodes SET name = ? WHERE id = ?", new_name, node["id"])
                name = new_name
            if export is not None:
                self.db.execute("UPDATE storage_nodes SET export = ? WHERE id = ?", export, node["id"])
            if options is not None:
                self.db.execute("UPDATE storage_nodes SET options = ? WHERE id = ?", options, node["id"])
            if rsync_target == "":
                self.db.execute("UPDATE storage_nodes SET rsync_target = NULL WHERE id = ?", node["id"])
            if max_clients is not None:
                self.db.execute("UPDATE storage_nodes SET max_clients = ? WHERE id = ?", max_clients, node["id"])
            if target is not None:
                self.db.execute("UPDATE storage_nodes SET rsync_target = ? WHERE id = ?", target, node["id"])
            if http_url is not None:  # "" clears it: the node's deploys go back to NFS
                self.db.execute("UPDATE storage_nodes SET http_url = ? WHERE id = ?", http, node["id"])
            if master:  # captures go here from now on; images stay where they are until captured again
                self.db.execute("UPDATE storage_nodes SET master = 0 WHERE group_id = ?", node["group_id"])
                self.db.execute("UPDATE storage_nodes SET master = 1 WHERE id = ?", node["id"])
            _check_served_here(self.storage(name))
        return self.storage(name)

    def remove_storage(self, name: str) -> StorageNode:
        """Forget a node. Refused while it is the home of images, a task or multicast session uses it, a
        replication copies to or from it, or it is the master of a group with other nodes."""
        with self.db.transaction():
            node = self.storage(name)
            homes = [r["name"] for r in self.db.all("SELECT name FROM images WHERE storage_id = ? ORDER BY name",
                                                    node["id"])]
            if homes:
                raise Conflict(f"storage node {name} is the home of images {', '.join(homes[:5])}; capture them "
                               "to another node or remove them first")
            task = self.db.one("SELECT id, state FROM tasks WHERE storage_id = ? AND state IN ('queued', 'running')",
                               node["id"])
            if task:
                raise Conflict(f"storage node {name} serves {task['state']} task {task['id']}; wait for it or "
                               "cancel it first")
            if self.db.one("SELECT id FROM multicast_sessions WHERE storage_id = ? AND state IN ('waiting', "
                           "'sending')", node["id"]):
                raise Conflict(f"storage node {name} serves a multicast session; cancel it first")
            if self.db.one("SELECT id FROM replication_jobs WHERE (node_id = ? OR source_id = ?) AND state IN "
                           "('queued', 'running')", node["id"], node["id"]):
                raise Conflict(f"a replication copies to or from storage node {name}; try again when it ends")
            if node["master"] and self.db.scalar("SELECT COUNT(*) FROM storage_nodes WHERE group_id = ?",
                                                 node["group_id"]) > 1:
                raise Conflict(f"storage node {name} is the master of group {node['group_name']}; make another "
                               "node its master first")
            self.db.execute("UPDATE tasks SET storage_id = NULL WHERE storage_id = ?", node["id"])
            self.db.execute("UPDATE multicast_sessions SET storage_id = NULL WHERE storage_id = ?", node["id"])
            self.db.execute("DELETE FROM replication_jobs WHERE node_id = ? OR source_id = ?", node["id"], node["id"])
            self.db.execute("DELETE FROM storage_nodes WHERE id = ?", node["id"])
        return node

    def masters(self, group_id: int | None) -> list[StorageNode]:
        return self.db.all_as(StorageNode, NODES + "WHERE s.group_id = ? AND s.master = 1", group_id)


def _check_served_here(node: StorageNode) -> None:
    """``server`` serves the node's local directory: a node without one could never be deployed over HTTP."""
    if node["http_url"] == SERVER_HTTP and not (node["rsync_target"] or "").startswith("/"):
        raise Invalid(f"http_url 'server' serves storage node {node['name']}'s local directory, and its rsync "
                      "target is not one: give it --rsync-target /path/of/the/export (or a web server's URL)",
                      field="http_url")


def check_http_url(url: Any) -> str:
    """``server`` (this server's image route) or an http(s) URL of a web server's image directory, without
    credentials, query or fragment; returned with one trailing '/', so URL + '<image>/<file>' is a file."""
    if url == SERVER_HTTP:
        return SERVER_HTTP
    try:
        parts = urlsplit(url) if isinstance(url, str) and len(url) <= MAX_URL and url.isprintable() else None
        _ = parts and parts.port  # a port that is no number raises here
    except ValueError:
        parts = None
    if (parts is None or parts.scheme not in ("http", "https") or not parts.hostname or " " in url
            or parts.username is not None or parts.query or parts.fragment):
        raise Invalid(f"{str(url)[:100]!r} is not an HTTP transport: give 'server' or http(s)://host[:port]/path/ "
                      "(no user, query or fragment)")
    return url.rstrip("/") + "/"


def _checked(check: Callable[[Any], Any], value: Any, field: str) -> Any:
    """``check(value)``, its refusal naming the form field it is about."""
    try:
        return check(value)
    except Invalid as exc:
        exc.details.setdefault("field", field)
        raise


def _checked_name(name: Any, what: str) -> str:
    return str(_checked(lambda v: check_name(v, what), name, "name"))
