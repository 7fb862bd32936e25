"""Storage groups, their NFS nodes, where a task's bytes go, and the replication jobs' records.

A group holds nodes; one of them is the master, where captures go. An image belongs to a group; its
``storage_id`` is its home node, the node holding the version the last capture published (the master
at the time). A deploy may use the home node or any node whose replica of the current version is done.
Part of ``db.Store`` (a mixin), so every write is still one transaction of the same connection.
"""
from __future__ import annotations

import json
import re
import sqlite3
import time
from typing import Any

DEFAULT_GROUP = "default"
# A client that asked within this many seconds is still in the queue (it asks again every 5 s).
WAITING_FRESH_S = 30
JOB_STATES = ("queued", "running", "done", "failed")

_LOCAL = re.compile(r"^/(?!.*(^|/)\.\.(/|$))[A-Za-z0-9._/-]*$")
_DAEMON = re.compile(r"^rsync://([A-Za-z0-9][A-Za-z0-9._-]*@)?[A-Za-z0-9][A-Za-z0-9.-]*(:\d{1,5})?"
                     r"/[A-Za-z0-9][A-Za-z0-9._-]*(/(?!.*(^|/)\.\.(/|$))[A-Za-z0-9._/-]*)?$")
_SSH = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*@)?[A-Za-z0-9][A-Za-z0-9.-]*:/(?!.*(^|/)\.\.(/|$))[A-Za-z0-9._/-]*$")


def check_rsync_target(target: str) -> str:
    """A directory on this server, ``rsync://host[:port]/module[/path]`` or ``[user@]host:/path`` (ssh).
    Returned with one trailing '/', so 'TARGET' + '.images/…' is a path under it."""
    kinds = (_DAEMON,) if isinstance(target, str) and target.startswith("rsync:") else (_LOCAL, _SSH)
    if not isinstance(target, str) or not any(r.match(target) for r in kinds):
        raise db.Invalid(f"{target!r} is not an rsync target (/local/dir, rsync://host/module/path or "
                         "user@host:/path)")
    return target.rstrip("/") + "/"


_NODES = ("SELECT s.*, g.name AS group_name, "
          "(SELECT COUNT(*) FROM tasks t WHERE t.storage_id = s.id AND t.state = 'running') AS running "
          "FROM storage_nodes s LEFT JOIN storage_groups g ON g.id = s.group_id ")
_IMAGES = ("SELECT i.*, s.name AS storage, g.name AS group_name FROM images i "
           "JOIN storage_nodes s ON s.id = i.storage_id LEFT JOIN storage_groups g ON g.id = i.group_id ")
_JOBS = ("SELECT j.*, i.name AS image, src.name AS source, dst.name AS node, src.rsync_target AS source_target, "
         "dst.rsync_target AS node_target FROM replication_jobs j JOIN images i ON i.id = j.image_id "
         "JOIN storage_nodes src ON src.id = j.source_id JOIN storage_nodes dst ON dst.id = j.node_id ")


class StorageRecords:
    conn: sqlite3.Connection

    def _one(self, sql: str, *args: Any) -> dict | None: ...  # provided by db.Store
    def _all(self, sql: str, *args: Any) -> list[dict]: ...

    # --- groups ------------------------------------------------------------
    def add_group(self, name: str) -> dict:
        db.check_name(name, "storage group")
        try:
            self.conn.execute("INSERT INTO storage_groups(name, created) VALUES (?, ?)", (name, time.time()))
        except sqlite3.IntegrityError as exc:
            raise db.Conflict(f"storage group {name} exists already") from exc
        return self.group(name)

    def group(self, name: str) -> dict:
        row = self._one("SELECT g.*, (SELECT name FROM storage_nodes WHERE group_id = g.id AND master = 1) AS master, "
                        "(SELECT COUNT(*) FROM storage_nodes WHERE group_id = g.id) AS nodes "
                        "FROM storage_groups g WHERE g.name = ?", name)
        if not row:
            raise db.NotFound(f"no storage group {name!r}")
        return row

    def groups(self) -> list[dict]:
        return [self.group(r["name"]) for r in self._all("SELECT name FROM storage_groups ORDER BY name")]

    # --- nodes -------------------------------------------------------------
    def add_storage(self, name: str, export: str, options: str = "vers=4.1", group: str | None = None,
                    master: bool = False, max_clients: int | None = None, rsync_target: str | None = None) -> dict:
        """A node joins a group (``default`` when none is named; only that one is created on the fly, so a
        mistyped group is an error). The first node of a group is its master; ``master`` makes this one it."""
        db.check_name(name, "storage node")
        if not db._EXPORT.match(export or ""):
            raise db.Invalid(f"{export!r} is not an NFS export (host:/path)")
        if not re.match(r"^[A-Za-z0-9=.,_-]*$", options or ""):
            raise db.Invalid(f"{options!r} are not NFS mount options")
        _check_limit(10 if max_clients is None else max_clients)
        target = check_rsync_target(rsync_target) if rsync_target else None
        group = group or DEFAULT_GROUP
        self.conn.execute("BEGIN")
        try:
            if group == DEFAULT_GROUP:
                self.conn.execute("INSERT OR IGNORE INTO storage_groups(name, created) VALUES (?, ?)",
                                  (group, time.time()))
            group_row = self.group(group)
            if master and group_row["master"]:
                self.conn.execute("UPDATE storage_nodes SET master = 0 WHERE group_id = ?", (group_row["id"],))
            self.conn.execute(
                "INSERT INTO storage_nodes(name, export, options, max_clients, created, group_id, master, "
                "rsync_target) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (name, export, options, 10 if max_clients is None else max_clients, time.time(), group_row["id"],
                 int(master or not group_row["master"]), target))
            self.conn.execute("COMMIT")
        except sqlite3.IntegrityError as exc:
            self.conn.execute("ROLLBACK")
            raise db.Conflict(f"storage node {name} exists already") from exc
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return self.storage(name)

    def storage(self, name: str) -> dict:
        row = self._one(_NODES + "WHERE s.name = ?", name)
        if not row:
            raise db.NotFound(f"no storage node {name!r}")
        return row

    def storage_nodes(self) -> list[dict]:
        return self._all(_NODES + "ORDER BY g.name, s.name")

    def set_storage(self, name: str, max_clients: int | None = None, master: bool = False,
                    rsync_target: str | None = None) -> dict:
        node = self.storage(name)
        if max_clients is not None:
            _check_limit(max_clients)
        target = check_rsync_target(rsync_target) if rsync_target else None
        self.conn.execute("BEGIN")
        try:
            if max_clients is not None:
                self.conn.execute("UPDATE storage_nodes SET max_clients = ? WHERE id = ?", (max_clients, node["id"]))
            if target is not None:
                self.conn.execute("UPDATE storage_nodes SET rsync_target = ? WHERE id = ?", (target, node["id"]))
            if master:  # captures go here from now on; images stay where they are until captured again
                self.conn.execute("UPDATE storage_nodes SET master = 0 WHERE group_id = ?", (node["group_id"],))
                self.conn.execute("UPDATE storage_nodes SET master = 1 WHERE id = ?", (node["id"],))
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return self.storage(name)

    def set_storage_limit(self, name: str, max_clients: int) -> dict:
        _check_limit(max_clients)
        return self.set_storage(name, max_clients=max_clients)

    # --- images ------------------------------------------------------------
    def add_image(self, name: str, storage: str | None = None, description: str = "", type_: str = "resizable",
                  group: str | None = None) -> dict:
        """An image of a group (``storage`` NODE, the older form, means that node's group)."""
        db.check_name(name, "image")
        if type_ not in db.IMAGE_TYPES:
            raise db.Invalid(f"image type {type_!r} is not one of {', '.join(db.IMAGE_TYPES)}")
        if (group is None) == (storage is None):
            raise db.Invalid("give the image's storage group (or, the older form, a storage node)")
        group_row = self.group(group) if group is not None else self.group(self.storage(storage)["group_name"])
        if not group_row["master"]:
            raise db.Conflict(f"storage group {group_row['name']} has no node yet; add one first")
        home = self.storage(group_row["master"])
        try:
            self.conn.execute("INSERT INTO images(name, storage_id, group_id, type, description, created) "
                              "VALUES (?, ?, ?, ?, ?, ?)",
                              (name, home["id"], group_row["id"], type_, description, time.time()))
        except sqlite3.IntegrityError as exc:
            raise db.Conflict(f"image {name} exists already") from exc
        return self.image(name)

    def image(self, name: str) -> dict:
        row = self._one(_IMAGES + "WHERE i.name = ?", name)
        if not row:
            raise db.NotFound(f"no image {name!r}")
        row["replicas"] = [n["name"] for n in self._serving_nodes(row)]
        return row

    def images(self) -> list[dict]:
        return [self.image(r["name"]) for r in self._all("SELECT name FROM images ORDER BY name")]

    def _serving_nodes(self, image: dict) -> list[dict]:
        """Nodes that hold the image's current version whole: its home, and every node whose replication
        started after that version was published and finished."""
        if not image["captured"]:
            return []
        return self._all(_NODES + "WHERE s.id = ? OR s.id IN (SELECT node_id FROM replication_jobs "
                         "WHERE image_id = ? AND state = 'done' AND started >= ?) ORDER BY s.name",
                         image["storage_id"], image["id"], image["captured"])

    # --- where a task's bytes go ---------------------------------------------
    def _place(self, task: dict) -> dict | None:
        """The node for a task starting now: a capture the group's master, a deploy the least loaded node
        holding the image (running / max_clients, then fewer running, then name). All full: StorageBusy."""
        if task["image_id"] is None:
            return None
        image = self.image(task["image"])
        if task["type"] == "capture":
            candidates = self._all(_NODES + "WHERE s.group_id = ? AND s.master = 1", image["group_id"])
        else:
            candidates = self._serving_nodes(image)
        free = [n for n in candidates if n["running"] < n["max_clients"]]
        if free:
            self.conn.execute("UPDATE tasks SET waited = NULL WHERE id = ?", (task["id"],))
            return min(free, key=lambda n: (n["running"] / n["max_clients"], n["running"], n["name"]))
        now = time.time()
        ahead = self.conn.execute(
            "SELECT COUNT(*) FROM tasks t JOIN images i ON i.id = t.image_id WHERE i.group_id = ? "
            "AND t.state = 'queued' AND t.id < ? AND t.waited > ?",
            (image["group_id"], task["id"], now - WAITING_FRESH_S)).fetchone()[0]
        if not candidates:
            full = f"group {image['group_name']} has no node for {task['type']}"
        elif len(candidates) == 1:
            full = f"{candidates[0]['running']}/{candidates[0]['max_clients']} clients on node {candidates[0]['name']}"
        else:
            full = "every node holding the image is busy (" + ", ".join(
                f"{n['name']} {n['running']}/{n['max_clients']}" for n in candidates) + " clients)"
        busy = db.StorageBusy(f"storage full: {full}; waiting (position {ahead + 1})", ahead + 1)
        self.conn.execute("UPDATE tasks SET waited = ?, progress = ? WHERE id = ?",
                          (now, json.dumps({"stage": f"waiting: {busy}"}), task["id"]))
        raise busy

    # --- replication jobs --------------------------------------------------
    def _queue_replication(self, image_id: int) -> list[int]:
        """A job per node of the image's group but its home; a job already queued for that node will copy
        whatever is current when it runs, so none is added beside it."""
        image = self._one("SELECT * FROM images WHERE id = ?", image_id)
        assert image is not None
        # Queued jobs have not run yet: they copy from the current home, and none copies the home onto itself.
        self.conn.execute("DELETE FROM replication_jobs WHERE image_id = ? AND state = 'queued' AND node_id = ?",
                          (image_id, image["storage_id"]))
        self.conn.execute("UPDATE replication_jobs SET source_id = ? WHERE image_id = ? AND state = 'queued'",
                          (image["storage_id"], image_id))
        added = []
        for node in self._all("SELECT id FROM storage_nodes WHERE group_id = ? AND id != ? ORDER BY name",
                              image["group_id"], image["storage_id"]):
            if self._one("SELECT id FROM replication_jobs WHERE image_id = ? AND node_id = ? AND state = 'queued'",
                         image_id, node["id"]):
                continue
            cur = self.conn.execute("INSERT INTO replication_jobs(image_id, source_id, node_id, state, created) "
                                    "VALUES (?, ?, ?, 'queued', ?)",
                                    (image_id, image["storage_id"], node["id"], time.time()))
            added.append(cur.lastrowid)
        return added

    def queue_replication(self, image: str) -> list[dict]:
        row = self.image(image)
        if not row["captured"]:
            raise db.Conflict(f"image {image} has never been captured; nothing to replicate")
        ids = self._queue_replication(row["id"])
        return [self.replication_job(i) for i in ids]

    def replication_job(self, job_id: int) -> dict:
        row = self._one(_JOBS + "WHERE j.id = ?", job_id)
        if not row:
            raise db.NotFound(f"no replication job {job_id}")
        return row

    def replication_jobs(self, image: str | None = None) -> list[dict]:
        if image is not None:
            return self._all(_JOBS + "WHERE i.name = ? ORDER BY j.id", image)
        return self._all(_JOBS + "ORDER BY j.id")

    def claim_replication(self, busy_nodes: set[int]) -> dict | None:
        """The oldest queued job for a node that is not copying already, now running."""
        marks = ",".join("?" * len(busy_nodes))
        exclude = f"AND node_id NOT IN ({marks}) " if busy_nodes else ""
        row = self._one(f"SELECT id FROM replication_jobs WHERE state = 'queued' {exclude}ORDER BY id LIMIT 1",
                        *busy_nodes)
        if not row:
            return None
        self.conn.execute("UPDATE replication_jobs SET state = 'running', started = ?, bytes = 0, error = NULL "
                          "WHERE id = ?", (time.time(), row["id"]))
        return self.replication_job(row["id"])

    def replication_progress(self, job_id: int, nbytes: int, version: str | None = None) -> None:
        self.conn.execute("UPDATE replication_jobs SET bytes = ?, version = COALESCE(?, version) WHERE id = ?",
                          (nbytes, version, job_id))

    def end_replication(self, job_id: int, state: str, nbytes: int | None = None, error: str | None = None) -> dict:
        assert state in ("done", "failed")
        self.conn.execute("UPDATE replication_jobs SET state = ?, finished = ?, bytes = COALESCE(?, bytes), "
                          "error = ? WHERE id = ?", (state, time.time(), nbytes, error, job_id))
        return self.replication_job(job_id)

    def requeue_interrupted_replication(self) -> int:
        """Jobs a stopped server left running start again from the beginning (rsync skips what is there)."""
        return self.conn.execute("UPDATE replication_jobs SET state = 'queued', started = NULL "
                                 "WHERE state = 'running'").rowcount


def _check_limit(max_clients: Any) -> None:
    if not isinstance(max_clients, int) or isinstance(max_clients, bool) or max_clients < 1:
        raise db.Invalid("max_clients must be a number ≥ 1")


# Appended to db.MIGRATIONS: every node that existed becomes the master of its own group, named like it, and
# its images that group's, so each image stays on the one node that holds it; running tasks keep their node.
MIGRATION = """
    CREATE TABLE storage_groups (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, created REAL NOT NULL);
    ALTER TABLE storage_nodes ADD COLUMN group_id INTEGER REFERENCES storage_groups(id);
    ALTER TABLE storage_nodes ADD COLUMN master INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE storage_nodes ADD COLUMN rsync_target TEXT;
    ALTER TABLE images ADD COLUMN group_id INTEGER REFERENCES storage_groups(id);
    ALTER TABLE tasks ADD COLUMN storage_id INTEGER REFERENCES storage_nodes(id);
    ALTER TABLE tasks ADD COLUMN waited REAL;
    INSERT INTO storage_groups(name, created) SELECT name, created FROM storage_nodes ORDER BY id;
    UPDATE storage_nodes SET master = 1,
        group_id = (SELECT g.id FROM storage_groups g WHERE g.name = storage_nodes.name);
    UPDATE images SET group_id = (SELECT s.group_id FROM storage_nodes s WHERE s.id = images.storage_id);
    UPDATE tasks SET storage_id = (SELECT i.storage_id FROM images i WHERE i.id = tasks.image_id)
        WHERE state = 'running';
    CREATE UNIQUE INDEX one_master_per_group ON storage_nodes(group_id) WHERE master = 1;
    CREATE INDEX tasks_by_node ON tasks(storage_id, state);
    CREATE TABLE replication_jobs (
        id INTEGER PRIMARY KEY, image_id INTEGER NOT NULL REFERENCES images(id),
        source_id INTEGER NOT NULL REFERENCES storage_nodes(id), node_id INTEGER NOT NULL REFERENCES storage_nodes(id),
        state TEXT NOT NULL, version TEXT, bytes INTEGER, error TEXT, created REAL NOT NULL, started REAL,
        finished REAL);
    CREATE INDEX replication_by_node ON replication_jobs(node_id, state);
"""

# Last: db builds its Store from this module, so whichever of the two is imported first, both are whole.
from server_stub import db  # noqa: E402
