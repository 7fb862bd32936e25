"""Tasks: what a host does at its next boot, and the one way a task changes state.

``queued → running → done | failed | canceled`` (and ``queued → failed | canceled``). Every state change,
a multicast session's included, goes through ``Tasks.transition``, which refuses any other.
"""
from __future__ import annotations

import hmac
import json
import secrets
import sqlite3
import time
from typing import Any, Callable, cast

from contract.vocabulary import FINAL_STATES, IMAGE_TASK_TYPES, TASK_STATES, TaskState, TaskType
from server_stub.bootpolicy import claim_of
from server_stub.errors import Conflict, HostBusy, Invalid, NotFound, Unauthorized
from server_stub.store.database import Database, Row
from server_stub.store.hosts import Hosts
from server_stub.store.images import Images
from server_stub.store.models import Host, Task
from server_stub.store.placement import Placer
from server_stub.store.replication_jobs import ReplicationJobs
from server_stub.store.validate import (check_after, check_disk_selector, check_origin, check_page, check_partition,
                                        check_task_options, check_task_type, normalize_mac)

# The only legal moves: from each state, the states it may become.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    TaskState.QUEUED: (TaskState.RUNNING, TaskState.FAILED, TaskState.CANCELED),
    TaskState.RUNNING: (TaskState.DONE, TaskState.FAILED, TaskState.CANCELED),
}
# Columns a transition may set besides the state and its timestamp.
_TRANSITION_FIELDS = frozenset({"storage_id", "result", "error", "log"})

TASKS = ("SELECT t.*, h.mac, h.name AS host, COALESCE(i.name, t.image_name) AS image, s.name AS storage FROM tasks t "
         "JOIN hosts h ON h.id = t.host_id LEFT JOIN images i ON i.id = t.image_id "
         "LEFT JOIN storage_nodes s ON s.id = t.storage_id ")
# tasks_page: each sort key and its column (only these reach the SQL); ties go by id.
TASK_SORTS = {"id": "t.id", "created": "t.created", "started": "t.started", "finished": "t.finished",
              "state": "t.state", "type": "t.type", "host": "h.name", "image": "image"}
TASK_TYPES = tuple(t.value for t in TaskType)
LOG_KEEP = 20000  # characters of a failed task's log kept (its end)
# Told ("task", id) or ("session", id) after a change (the console's live updates); must be quick, never raise.
ChangeListener = Callable[[str, int], None]


class Tasks:
    def __init__(self, db: Database, hosts: Hosts, images: Images, placer: Placer, jobs: ReplicationJobs) -> None:
        self.db, self.hosts, self.images, self.placer, self.jobs = db, hosts, images, placer, jobs
        self.listeners: list[ChangeListener] = []

    def changed(self, kind: str, item_id: int) -> None:
        for listener in self.listeners:
            listener(kind, item_id)

    # --- the state machine -------------------------------------------------
    def transition(self, task_id: int, state: str, **fields: Any) -> Task:
        """``task_id`` becomes ``state`` if TRANSITIONS allows it from its current state (checked in the same
        UPDATE, so two callers racing cannot both win), with its timestamp and ``fields``; else Conflict."""
        sources = [s for s, targets in TRANSITIONS.items() if state in targets]
        if not sources:
            raise ValueError(f"no task becomes {state}")
        unknown = set(fields) - _TRANSITION_FIELDS
        if unknown:
            raise ValueError(f"a transition does not set {', '.join(sorted(unknown))}")
        if state == TaskState.RUNNING:
            fields["started"] = time.time()
        elif state in FINAL_STATES:
            fields["finished"] = time.time()
        sets = ", ".join(f"{k} = ?" for k in ("state", *fields))
        with self.db.transaction():
            cur = self.db.execute(f"UPDATE tasks SET {sets} WHERE id = ? AND state IN ({','.join('?' * len(sources))})",
                                  state, *fields.values(), task_id, *sources)
            if cur.rowcount != 1:
                raise Conflict(f"task {task_id} is {self.task(task_id)['state']}; it cannot become {state}")
        self.changed("task", task_id)
        return self.task(task_id)

    # --- creating ----------------------------------------------------------
    def create(self, host: Host, type_: str, image_id: int | None, disk: str | None = None,
               after: str = "reboot", partition: int | None = None, options: str | None = None,
               origin: str = "admin", queued_by: str | None = None) -> int:
        """A queued task (checked by the caller); a host with an active task already: Conflict. The menu's
        tasks are claimed at birth: the menu got the token, so no boot script may claim them. ``queued_by``:
        the authenticated caller (its history; None reads "unknown")."""
        now = time.time()
        try:
            with self.db.transaction():
                cur = self.db.execute(
                    "INSERT INTO tasks(host_id, type, image_id, disk, partition, after, state, token, created, "
                    "options, origin, claimed, claimed_from, queued_by) "
                    "VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?)",
                    host["id"], type_, image_id, disk, partition, after, secrets.token_urlsafe(24), now,
                    options, origin, *((now, "menu") if origin == "menu" else (None, None)), queued_by)
        except sqlite3.IntegrityError as exc:
            raise HostBusy(f"host {host['name']} has an active task already; cancel it first") from exc
        assert cur.lastrowid is not None
        return cur.lastrowid

    def add_task(self, host: str, type_: str, image: str | None, disk: str | None = None,
                 after: str = "reboot", partition: int | None = None, options: dict[str, Any] | None = None,
                 origin: str = "admin", queued_by: str | None = None) -> Task:
        check_task_type(type_)
        stored_options = check_task_options(type_, options)
        check_origin(origin)
        check_after(after)
        check_disk_selector(disk)
        check_partition(type_, partition)
        host_row = self.hosts.host(host)
        image_id = None
        if type_ not in IMAGE_TASK_TYPES:
            if image is not None:
                raise Invalid(f"a {type_} task names no image")
        else:
            image_row = self.images.image(image or "")
            if type_ == "deploy" and not image_row["captured"]:
                raise Conflict(f"image {image} has never been captured; nothing to deploy")
            image_id = image_row["id"]
        return self.task(self.create(host_row, type_, image_id, disk, after, partition, stored_options, origin,
                                     queued_by))

    def add_tasks(self, hosts: list[str], type_: str, image: str | None, **options: Any) -> list[Task]:
        """The same task for several hosts, all or none (deploy a room in one command)."""
        if not hosts or len(set(hosts)) != len(hosts):
            raise Invalid("give each host once")
        with self.db.transaction():
            return [self.add_task(host, type_, image, **options) for host in hosts]

    # --- reading -----------------------------------------------------------
    def task(self, task_id: int) -> Task:
        row = self.db.one(TASKS + "WHERE t.id = ?", task_id)
        if not row:
            raise NotFound(f"no task {task_id}")
        return _decode(row)

    def tasks(self, include_finished: bool = True) -> list[Task]:
        where = "" if include_finished else "WHERE t.state IN ('queued', 'running') "
        return [_decode(r) for r in self.db.all(TASKS + where + "ORDER BY t.id")]

    def tasks_page(self, state: str | None = None, type_: str | None = None, host: str | None = None,
                   image: str | None = None, sort: str = "id", descending: bool = True, offset: int = 0,
                   limit: int | None = 50) -> tuple[list[Task], int]:
        """One page of the tasks of that state ("active": queued or running), type, host (name or MAC) and
        image (a deleted one's too), newest first by default; and how many match in all."""
        if sort not in TASK_SORTS:
            raise Invalid(f"sort by one of {', '.join(TASK_SORTS)}", field="sort")
        offset, limit = check_page(offset, limit)
        where: list[str] = []
        args: list[Any] = []
        if state == "active":
            where.append("t.state IN ('queued', 'running')")
        elif state:
            if state not in TASK_STATES:
                raise Invalid(f"state must be active or one of {', '.join(TASK_STATES)}", field="state")
            where.append("t.state = ?")
            args.append(state)
        if type_:
            where.append("t.type = ?")
            if type_ not in TASK_TYPES:
                raise Invalid(f"task type must be one of {', '.join(TASK_TYPES)}", field="type")
            args.append(type_)
        if host:
            where.append("t.host_id = ?")
            args.append(self.hosts.host(host)["id"])
        if image:
            row = self.db.one("SELECT id FROM images WHERE name = ?", image)
            where.append("t.image_id = ?" if row else "t.image_name = ?")
            args.append(row["id"] if row else image)
        clause = ("WHERE " + " AND ".join(where) + " ") if where else ""
        total = self.db.scalar("SELECT COUNT(*) FROM tasks t " + clause, *args)
        direction = "DESC" if descending else "ASC"
        rows = self.db.all(TASKS + clause + f"ORDER BY {TASK_SORTS[sort]} {direction}, t.id {direction} "
                           "LIMIT ? OFFSET ?", *args, -1 if limit is None else limit, offset)
        return [_decode(r) for r in rows], int(total)

    def tasks_by_id(self, ids: list[int]) -> list[Task]:
        """These tasks (the missing skipped), in one query per 500."""
        found: list[Task] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            found += [_decode(r) for r in self.db.all(TASKS + f"WHERE t.id IN ({','.join('?' * len(chunk))}) "
                                                      "ORDER BY t.id", *chunk)]
        return found

    def active_task_for_mac(self, mac: str) -> Task | None:
        row = self.db.one(TASKS + "WHERE h.mac = ? AND t.state IN ('queued', 'running')", normalize_mac(mac))
        return _decode(row) if row else None

    # --- what clients report -----------------------------------------------
    def claim_task(self, task_id: int, claim: str, address: str | None) -> Task:
        """The claim of a boot script, exchanged once for the task (and its token); docs/security.md#task-claims.
        A wrong claim or unknown task: Unauthorized. A task claimed before: the refusal is recorded on the task
        (``claims_refused``, ``claim_refused_at``, ``claim_refused_from``) and the boot log, then Conflict."""
        try:
            task = self.task(task_id)
        except NotFound:
            raise Unauthorized("unknown task or claim") from None
        if not hmac.compare_digest(claim.encode(), claim_of(task["token"]).encode()):
            raise Unauthorized("unknown task or claim")
        if task["state"] not in (TaskState.QUEUED, TaskState.RUNNING):
            raise Conflict(f"task {task_id} is {task['state']}; nothing to claim")
        now, source = time.time(), address or "unknown address"
        with self.db.transaction():  # the check and the mark in one UPDATE: two racing claims, one winner
            won = self.db.execute("UPDATE tasks SET claimed = ?, claimed_from = ? WHERE id = ? AND claimed IS NULL",
                                  now, source, task_id).rowcount == 1
            if not won:
                self.db.execute("UPDATE tasks SET claims_refused = claims_refused + 1, claim_refused_at = ?, "
                                "claim_refused_from = ? WHERE id = ?", now, source, task_id)
        self.changed("task", task_id)
        if not won:
            self.hosts.log_boot(task["mac"], f"claim refused: task {task_id} already claimed ({source})", task_id)
            first = self.task(task_id)
            raise Conflict(f"task {task_id} was already claimed from {first['claimed_from']}: a second boot of this "
                           "task (a reboot, or another machine with this MAC) is refused; an admin cancels the "
                           "task and queues it again", reason="already_claimed")
        return self.task(task_id)

    def start_task(self, task_id: int) -> Task:
        """queued → running on the node chosen now (recorded on the task, so a restart keeps it and the
        node's count stays right); no free slot: StorageBusy (FOG's queue), its place in the queue kept."""
        with self.db.transaction():
            task = self.task(task_id)
            if task["state"] == TaskState.RUNNING:  # the client rebooted mid-task, or the server restarted
                return task
            if task["state"] != TaskState.QUEUED:
                raise Conflict(f"task {task_id} is {task['state']}; it cannot become running")
            placement = self.placer.place(task)
            if placement.busy is None:
                return self.transition(task_id, TaskState.RUNNING,
                                       storage_id=placement.node["id"] if placement.node else None)
            busy = placement.busy
        raise busy  # after the commit, so the waiting mark and the queue position stay

    def set_node(self, task_id: int, node_id: int | None) -> None:
        with self.db.transaction():
            self.db.execute("UPDATE tasks SET storage_id = ? WHERE id = ?", node_id, task_id)

    def record_progress(self, task_id: int, progress: dict[str, Any]) -> None:
        with self.db.transaction():
            cur = self.db.execute("UPDATE tasks SET progress = ? WHERE id = ? AND state = 'running'",
                                  json.dumps(progress), task_id)
            if cur.rowcount != 1:
                raise Conflict(f"task {task_id} is {self.task(task_id)['state']}; stop")
        self.changed("task", task_id)

    def finish_task(self, task_id: int, result: dict[str, Any], inventory: dict[str, Any] | None = None) -> Task:
        """running → done; an inventory sent with the result is stored for the task's host in the same
        transaction, so a completed inventory task always has its inventory."""
        with self.db.transaction():
            task = self.transition(task_id, TaskState.DONE, result=json.dumps(result))
            if inventory is not None:
                self.hosts.store_inventory(task["host_id"], inventory, task_id)
            image_id = task["image_id"]
            if task["type"] == "capture" and image_id is not None:  # a capture always names its image
                # The node the capture wrote to holds the new version; the group's other nodes copy it.
                self.images.captured(image_id, result.get("stored_bytes"), task["storage_id"])
                self.jobs.queue_for(image_id)
        return task

    def fail_task(self, task_id: int, error: dict[str, Any], log: str) -> Task:
        return self.transition(task_id, TaskState.FAILED, error=json.dumps(error), log=log[-LOG_KEEP:])

    def cancel_task(self, task_id: int) -> Task:
        return self.transition(task_id, TaskState.CANCELED)


def _decode(row: Row) -> Task:
    for key in ("progress", "error", "result", "options"):
        if row.get(key):
            row[key] = json.loads(row[key])
    return cast(Task, row)

