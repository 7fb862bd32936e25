"""The server's state: hosts, storage nodes, images and tasks in one SQLite file.

All writes go through this module; each public method is one transaction.
Names and MACs are validated here so no caller can store a bad one.
"""
from __future__ import annotations

import json
import re
import secrets
import sqlite3
import time
from typing import Any

from server_stub import menudb, multicastdb, storagedb

from contract.vocabulary import (ACTIVE_STATES, AFTER_VALUES, FINAL_STATES, IMAGE_TASK_TYPES, IMAGE_TYPES,
                                 QUEUEABLE_TASK_TYPES)

SCHEMA = """
CREATE TABLE IF NOT EXISTS hosts (
    id INTEGER PRIMARY KEY, mac TEXT UNIQUE NOT NULL, name TEXT UNIQUE NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS storage_nodes (
    id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, export TEXT NOT NULL,
    options TEXT NOT NULL DEFAULT 'vers=4.1', max_clients INTEGER NOT NULL DEFAULT 10, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, storage_id INTEGER NOT NULL REFERENCES storage_nodes(id),
    type TEXT NOT NULL DEFAULT 'resizable', description TEXT NOT NULL DEFAULT '', created REAL NOT NULL,
    captured REAL, stored_bytes INTEGER);
CREATE TABLE IF NOT EXISTS tasks (
    id INTEGER PRIMARY KEY, host_id INTEGER NOT NULL REFERENCES hosts(id), type TEXT NOT NULL,
    image_id INTEGER REFERENCES images(id), disk TEXT, partition INTEGER, after TEXT NOT NULL DEFAULT 'reboot',
    state TEXT NOT NULL, token TEXT NOT NULL, created REAL NOT NULL, started REAL, finished REAL,
    progress TEXT, error TEXT, log TEXT, result TEXT);
-- A host runs one task at a time.
CREATE UNIQUE INDEX IF NOT EXISTS one_active_task_per_host ON tasks(host_id) WHERE state IN ('queued', 'running');
CREATE TABLE IF NOT EXISTS boot_log (
    id INTEGER PRIMARY KEY, time REAL NOT NULL, mac TEXT NOT NULL, decision TEXT NOT NULL, task_id INTEGER);
"""

# Schema changes after the first release, applied in order to a database whose PRAGMA user_version
# is lower (a new database gets SCHEMA, then all of them). Append only; never edit one that shipped.
MIGRATIONS = [
    # 1: registration (how a host came to be, its assigned image and group) and the latest inventory.
    """
    ALTER TABLE hosts ADD COLUMN registered TEXT NOT NULL DEFAULT 'admin';
    ALTER TABLE hosts ADD COLUMN image_id INTEGER REFERENCES images(id);
    ALTER TABLE hosts ADD COLUMN group_name TEXT;
    CREATE TABLE host_inventory (
        host_id INTEGER PRIMARY KEY REFERENCES hosts(id), collected REAL NOT NULL, task_id INTEGER,
        data TEXT NOT NULL);
    """,
    # 2: storage groups (nodes, one master), the node each task uses, replication jobs.
    storagedb.MIGRATION,
    # 3: multicast sessions and their clients (server_stub/multicastdb.py).
    multicastdb.MIGRATION,
    # 4: the technician's menu: task options (wipe mode) and origin, the technician password (menudb.py).
    menudb.MIGRATION,
]

TASK_TYPES = QUEUEABLE_TASK_TYPES
IMAGE_TASKS = IMAGE_TASK_TYPES
ACTIVE = ACTIVE_STATES
FINAL = FINAL_STATES
AFTER = AFTER_VALUES

_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_EXPORT = re.compile(r"^[A-Za-z0-9.:\[\]-]+:/[A-Za-z0-9._/-]*$")


class Invalid(ValueError):
    """Bad input from an admin or a client: becomes HTTP 400."""


class NotFound(LookupError):
    """Becomes HTTP 404."""


class Conflict(RuntimeError):
    """The request contradicts the current state: becomes HTTP 409."""


class StorageBusy(RuntimeError):
    """No node of the task's storage group has a free slot: the client waits and checks in again."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.position = position


def normalize_mac(mac: str) -> str:
    value = mac.strip().lower().replace("-", ":")
    if not _MAC.match(value):
        raise Invalid(f"{mac!r} is not a MAC address (aa:bb:cc:dd:ee:ff)")
    return value


def check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise Invalid(f"{what} name {name!r} must be 1-100 letters, digits, '.', '_' or '-'")
    return name


class Store(storagedb.StorageRecords, multicastdb.MulticastRecords):
    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: no fsync per commit (progress reports are frequent), still crash-consistent.
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.conn.executescript(SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            # executescript commits first; the script and its version bump then commit together.
            self.conn.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")

    def close(self) -> None:
        self.conn.close()

    def _one(self, sql: str, *args: Any) -> dict | None:
        row = self.conn.execute(sql, args).fetchone()
        return dict(row) if row else None

    def _all(self, sql: str, *args: Any) -> list[dict]:
        return [dict(r) for r in self.conn.execute(sql, args).fetchall()]

    # --- hosts -------------------------------------------------------------
    def add_host(self, mac: str, name: str) -> dict:
        mac, name = normalize_mac(mac), check_name(name, "host")
        try:
            self.conn.execute("INSERT INTO hosts(mac, name, created) VALUES (?, ?, ?)", (mac, name, time.time()))
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"a host with MAC {mac} or name {name} exists already") from exc
        return self.host(mac)

    _HOST_SELECT = "SELECT h.*, i.name AS image FROM hosts h LEFT JOIN images i ON i.id = h.image_id "

    def host(self, key: str) -> dict:
        """By MAC or by name."""
        try:
            row = self._one(self._HOST_SELECT + "WHERE h.mac = ?", normalize_mac(key))
        except Invalid:
            row = self._one(self._HOST_SELECT + "WHERE h.name = ?", key)
        if not row:
            raise NotFound(f"no host {key!r}")
        return row

    def find_host_by_mac(self, mac: str) -> dict | None:
        return self._one(self._HOST_SELECT + "WHERE h.mac = ?", normalize_mac(mac))

    def hosts(self) -> list[dict]:
        return self._all(self._HOST_SELECT + "ORDER BY h.name")

    def register_host(self, mac: str, inventory: dict, name: str | None = None, image: str | None = None,
                      group: str | None = None, prefix: str = "mac") -> dict:
        """A machine that booted unknown registers itself: quick (no name: FOG's default from the MAC)
        or full (the technician chose name, image, group). Never touches a host that exists."""
        mac = normalize_mac(mac)
        kind = "quick" if name is None and image is None and group is None else "full"
        name = check_name(name, "host") if name is not None else check_name(prefix + mac.replace(":", ""), "host")
        if group is not None:
            check_name(group, "group")
        image_id = self.image(image)["id"] if image is not None else None
        self.conn.execute("BEGIN")
        try:
            if self._one("SELECT id FROM hosts WHERE mac = ?", mac):
                raise Conflict(f"MAC {mac} is registered already")
            if self._one("SELECT id FROM hosts WHERE name = ?", name):
                raise Conflict(f"a host named {name} exists already")
            cur = self.conn.execute(
                "INSERT INTO hosts(mac, name, created, registered, image_id, group_name) VALUES (?, ?, ?, ?, ?, ?)",
                (mac, name, time.time(), kind, image_id, group))
            self._store_inventory(cur.lastrowid, inventory, None)
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return self.host(mac)

    def _store_inventory(self, host_id: int, inventory: dict, task_id: int | None) -> None:
        self.conn.execute("INSERT OR REPLACE INTO host_inventory(host_id, collected, task_id, data) "
                          "VALUES (?, ?, ?, ?)",
                          (host_id, time.time(), task_id, json.dumps(inventory)))

    def inventory(self, key: str) -> dict | None:
        """The host's latest inventory: {"collected", "task_id", "data"}, or None if it never sent one."""
        row = self._one("SELECT collected, task_id, data FROM host_inventory WHERE host_id = ?", self.host(key)["id"])
        if row:
            row["data"] = json.loads(row["data"])
        return row

    # storage groups, nodes and images: storagedb.StorageRecords

    # --- tasks -------------------------------------------------------------
    def add_task(self, host: str, type_: str, image: str | None, disk: str | None = None,
                 after: str = "reboot", partition: int | None = None, options: dict | None = None,
                 origin: str = "admin") -> dict:
        if type_ not in TASK_TYPES:
            raise Invalid(f"task type {type_!r} is not one of {', '.join(TASK_TYPES)}")
        try:
            stored_options = menudb.check_options(type_, options)
        except menudb.Invalid as exc:
            raise Invalid(str(exc)) from exc
        if origin not in menudb.ORIGINS:
            raise Invalid(f"origin must be one of {', '.join(menudb.ORIGINS)}")
        if after not in AFTER:
            raise Invalid(f"after must be one of {', '.join(AFTER)}")
        if disk is not None and not re.match(r"^(/dev/[A-Za-z0-9/_.-]+|(serial|wwn|model|size)=[A-Za-z0-9 ._:-]+)$", disk):
            raise Invalid(f"{disk!r} is not a disk selector (/dev/…, serial=…, wwn=…, model=…, size=…)")
        if partition is not None and (type_ != "deploy" or not isinstance(partition, int) or not 0 < partition < 256):
            raise Invalid("partition is a number 1-255, for deploy tasks only")
        host_row = self.host(host)
        if type_ not in IMAGE_TASKS:
            if image is not None:
                raise Invalid(f"a {type_} task names no image")
            image_row: dict = {"id": None}
        else:
            image_row = self.image(image or "")
        if type_ == "deploy" and not image_row["captured"]:
            raise Conflict(f"image {image} has never been captured; nothing to deploy")
        try:
            cur = self.conn.execute(
                "INSERT INTO tasks(host_id, type, image_id, disk, partition, after, state, token, created, options, "
                "origin) VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?)",
                (host_row["id"], type_, image_row["id"], disk, partition, after, secrets.token_urlsafe(24),
                 time.time(), stored_options, origin))
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"host {host_row['name']} has an active task already; cancel it first") from exc
        return self.task(cur.lastrowid)

    def add_tasks(self, hosts: list[str], type_: str, image: str | None, **options) -> list[dict]:
        """The same task for several hosts, all or none (deploy a room in one command)."""
        if not hosts or len(set(hosts)) != len(hosts):
            raise Invalid("give each host once")
        self.conn.execute("BEGIN")
        try:
            tasks = [self.add_task(host, type_, image, **options) for host in hosts]
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return tasks

    _TASK_SELECT = ("SELECT t.*, h.mac, h.name AS host, i.name AS image, s.name AS storage FROM tasks t "
                    "JOIN hosts h ON h.id = t.host_id LEFT JOIN images i ON i.id = t.image_id "
                    "LEFT JOIN storage_nodes s ON s.id = t.storage_id ")

    def task(self, task_id: int) -> dict:
        row = self._one(self._TASK_SELECT + "WHERE t.id = ?", task_id)
        if not row:
            raise NotFound(f"no task {task_id}")
        return _decode_task(row)

    def tasks(self, include_finished: bool = True) -> list[dict]:
        where = "" if include_finished else "WHERE t.state IN ('queued', 'running') "
        return [_decode_task(r) for r in self._all(self._TASK_SELECT + where + "ORDER BY t.id")]

    def active_task_for_mac(self, mac: str) -> dict | None:
        row = self._one(self._TASK_SELECT + "WHERE h.mac = ? AND t.state IN ('queued', 'running')",
                        normalize_mac(mac))
        return _decode_task(row) if row else None

    def _transition(self, task_id: int, allowed_from: tuple[str, ...], state: str, **fields: Any) -> dict:
        sets = ", ".join(f"{k} = ?" for k in ("state", *fields))
        cur = self.conn.execute(
            f"UPDATE tasks SET {sets} WHERE id = ? AND state IN ({','.join('?' * len(allowed_from))})",
            (state, *fields.values(), task_id, *allowed_from))
        if cur.rowcount != 1:
            current = self.task(task_id)["state"]
            raise Conflict(f"task {task_id} is {current}; it cannot become {state}")
        return self.task(task_id)

    def start_task(self, task_id: int) -> dict:
        """queued → running on the node chosen now (recorded on the task, so a restart keeps it and the
        node's count stays right); no free slot: StorageBusy (FOG's queue)."""
        task = self.task(task_id)
        if task["state"] == "running":  # the client rebooted mid-task, or the server restarted: same node
            return task
        if task["state"] != "queued":
            raise Conflict(f"task {task_id} is {task['state']}; it cannot become running")
        node = self._place(task)
        return self._transition(task_id, ("queued",), "running", started=time.time(),
                                storage_id=node["id"] if node else None)

    def record_progress(self, task_id: int, progress: dict) -> None:
        cur = self.conn.execute("UPDATE tasks SET progress = ? WHERE id = ? AND state = 'running'",
                                (json.dumps(progress), task_id))
        if cur.rowcount != 1:
            raise Conflict(f"task {task_id} is {self.task(task_id)['state']}; stop")

    def finish_task(self, task_id: int, result: dict, inventory: dict | None = None) -> dict:
        """running → done; an inventory sent with the result is stored for the task's host in the same
        transaction, so a completed inventory task always has its inventory."""
        self.conn.execute("BEGIN")
        try:
            task = self._transition(task_id, ("running",), "done", finished=time.time(), result=json.dumps(result))
            if inventory is not None:
                self._store_inventory(task["host_id"], inventory, task_id)
            if task["type"] == "capture":
                # The node the capture wrote to holds the new version; the group's other nodes copy it.
                self.conn.execute("UPDATE images SET captured = ?, stored_bytes = ?, "
                                  "storage_id = COALESCE(?, storage_id) WHERE id = ?",
                                  (time.time(), result.get("stored_bytes"), task["storage_id"], task["image_id"]))
                self._queue_replication(task["image_id"])
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return task

    def fail_task(self, task_id: int, error: dict, log: str) -> dict:
        return self._transition(task_id, ACTIVE, "failed", finished=time.time(),
                                error=json.dumps(error), log=log[-20000:])

    def cancel_task(self, task_id: int) -> dict:
        return self._transition(task_id, ACTIVE, "canceled", finished=time.time())

    # --- boot log ----------------------------------------------------------
    def log_boot(self, mac: str, decision: str, task_id: int | None) -> None:
        self.conn.execute("INSERT INTO boot_log(time, mac, decision, task_id) VALUES (?, ?, ?, ?)",
                          (time.time(), mac, decision, task_id))

    def boot_log(self, mac: str | None = None, limit: int = 100) -> list[dict]:
        if mac:
            return self._all("SELECT * FROM boot_log WHERE mac = ? ORDER BY id DESC LIMIT ?", normalize_mac(mac), limit)
        return self._all("SELECT * FROM boot_log ORDER BY id DESC LIMIT ?", limit)


def _decode_task(row: dict) -> dict:
    for key in ("progress", "error", "result", "options"):
        if row.get(key):
            row[key] = json.loads(row[key])
    return row
