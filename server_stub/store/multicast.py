"""Multicast sessions' records: a session, its clients (one ``multicast`` task per host), their states.

What runs the session (udp-sender, the waiting rule) is server_stub/multicast.py.

Session states: ``waiting → sending → done | failed``, and ``canceled`` from waiting or sending.
Client states (the session's view; the task keeps its own state and error):
``queued`` (task created) → ``joined`` (checked in while the session waited) → ``ready`` (disk checked, table
written, waiting for the sender) → ``receiving`` → the task's end; or ``fallback`` (checked in or ready after
the sending began: deploys the same image by unicast) or ``dropped`` (udp-sender stopped waiting for it).
The clients' tasks change state through Tasks.transition, like every task.
"""
from __future__ import annotations

import json
import time
from typing import Any, cast

from contract.vocabulary import ACTIVE_STATES, TaskState
from server_stub.errors import Conflict, Invalid, NotFound
from server_stub.store.database import Database, Row
from server_stub.store.hosts import Hosts
from server_stub.store.models import Image, InterruptedSession, Session, SessionClient, Task
from server_stub.store.tasks import Tasks
from server_stub.store.validate import check_after, check_disk_selector

SESSION_STATES = ("waiting", "sending", "done", "failed", "canceled")
SESSION_ACTIVE = ("waiting", "sending")
PORTBASE = 9000          # session n uses PORTBASE + PORTS_PER_SESSION * (n mod SLOTS) + 2 * file index
PORTS_PER_SESSION = 200  # 100 files per image at most
SLOTS = 250              # up to port 58999

_SESSIONS = ("SELECT m.*, i.name AS image, s.name AS storage FROM multicast_sessions m "
             "JOIN images i ON i.id = m.image_id LEFT JOIN storage_nodes s ON s.id = m.storage_id ")
_CLIENTS = ("SELECT c.*, t.state AS task_state, t.error AS task_error, t.progress AS task_progress, "
            "h.name AS host, h.mac FROM multicast_clients c JOIN tasks t ON t.id = c.task_id "
            "JOIN hosts h ON h.id = t.host_id ")


def portbase_for(session_id: int) -> int:
    return PORTBASE + PORTS_PER_SESSION * (session_id % SLOTS)


class MulticastRecords:
    def __init__(self, db: Database, hosts: Hosts, tasks: Tasks) -> None:
        self.db, self.hosts, self.tasks = db, hosts, tasks

    def add_session(self, image: Image, hosts: list[str], *, min_receivers: int | None, max_wait: int,
                    rate: int | None, interface: str | None, image_dir: str, version: str, files: list[str],
                    storage_id: int, disk: str | None = None, after: str = "reboot",
                    queued_by: str | None = None) -> Session:
        """The session and one queued ``multicast`` task per host, all or none."""
        if not hosts or len(set(hosts)) != len(hosts):
            raise Invalid("give each host once")
        if min_receivers is None:
            min_receivers = len(hosts)
        if not isinstance(min_receivers, int) or not 1 <= min_receivers <= len(hosts):
            raise Invalid(f"min_receivers must be 1…{len(hosts)} (the number of hosts)")
        if not isinstance(max_wait, int) or max_wait < 0:
            raise Invalid("max_wait is whole seconds ≥ 0")
        check_after(after)
        check_disk_selector(disk)  # as a deploy task's: a typo is refused now, not at the machines
        if not files or len(files) > PORTS_PER_SESSION // 2:
            raise Invalid(f"a session sends 1…{PORTS_PER_SESSION // 2} files; this image has {len(files)}")
        now = time.time()
        with self.db.transaction():
            cur = self.db.execute(
                "INSERT INTO multicast_sessions(image_id, state, min_receivers, max_wait, rate, interface, "
                "portbase, image_dir, version, files, storage_id, created) "
                "VALUES (?, 'waiting', ?, ?, ?, ?, 0, ?, ?, ?, ?, ?)",
                image["id"], min_receivers, max_wait, rate, interface, image_dir, version, json.dumps(files),
                storage_id, now)
            session_id = cur.lastrowid
            assert session_id is not None
            self.db.execute("UPDATE multicast_sessions SET portbase = ? WHERE id = ?",
                            portbase_for(session_id), session_id)
            for key in hosts:
                task_id = self.tasks.create(self.hosts.host(key), "multicast", image["id"], disk, after,
                                           queued_by=queued_by)
                self.db.execute("INSERT INTO multicast_clients(task_id, session_id, state, updated) "
                                "VALUES (?, ?, 'queued', ?)", task_id, session_id, now)
        self.tasks.changed("session", session_id)
        return self.session(session_id)

    def session(self, session_id: int) -> Session:
        row = self.db.one(_SESSIONS + "WHERE m.id = ?", session_id)
        if not row:
            raise NotFound(f"no multicast session {session_id}")
        row["files"] = json.loads(row["files"])
        row["clients"] = [_client(c) for c in self.db.all(_CLIENTS + "WHERE c.session_id = ? ORDER BY h.name",
                                                          session_id)]
        return cast(Session, row)

    def sessions(self) -> list[Session]:
        return [self.session(r["id"]) for r in self.db.all("SELECT id FROM multicast_sessions ORDER BY id")]

    def active_sessions(self) -> list[Session]:
        """Sessions waiting or sending, oldest first."""
        return [self.session(r["id"]) for r in self.db.all("SELECT id FROM multicast_sessions WHERE state IN "
                                                            "('waiting', 'sending') ORDER BY id")]

    def session_of_task(self, task_id: int) -> Session | None:
        row = self.db.one("SELECT session_id FROM multicast_clients WHERE task_id = ?", task_id)
        return self.session(row["session_id"]) if row else None

    def _set_client(self, task_id: int, state: str, reason: str | None = None, address: str | None = None) -> None:
        self.db.execute("UPDATE multicast_clients SET state = ?, reason = COALESCE(?, reason), "
                        "address = COALESCE(?, address), updated = ? WHERE task_id = ?",
                        state, reason, address, time.time(), task_id)

    # --- what clients do ---------------------------------------------------
    def multicast_checkin(self, task: Task, address: str | None) -> tuple[Task, dict[str, Any]]:
        """(task now running, the session's answer). While the session waits the client joins it and takes no
        storage slot (it reads the manifest and tables only); once it sends, the client falls back to a
        unicast deploy from the session's node."""
        with self.db.transaction():
            session = self.session_of_task(task["id"])
            if session is None:
                raise NotFound(f"task {task['id']} is not in a multicast session")
            if task["state"] not in ACTIVE_STATES:
                raise Conflict(f"task {task['id']} is {task['state']}")
            client = next(c for c in session["clients"] if c["task_id"] == task["id"])
            joinable = session["state"] == "waiting" and client["state"] in ("queued", "joined", "ready")
            node = None if joinable else session["storage_id"]
            if task["state"] == TaskState.QUEUED:
                task = self.tasks.transition(task["id"], TaskState.RUNNING, storage_id=node)
            elif not joinable:
                self.tasks.set_node(task["id"], node)
                task = self.tasks.task(task["id"])
            if joinable:
                self._set_client(task["id"], "joined", address=address)
            elif client["state"] != "fallback":
                self._set_client(task["id"], "fallback", reason=_late(session), address=address)
        self.tasks.changed("session", session["id"])
        return task, self._answer(self.session(session["id"]), task["id"])

    def multicast_ready(self, task_id: int) -> dict[str, Any]:
        """The client's disk is ready: wait, join the sender now, or fall back (it came too late)."""
        with self.db.transaction():
            session = self.session_of_task(task_id)
            if session is None:
                raise NotFound(f"task {task_id} is not in a multicast session")
            client = next(c for c in session["clients"] if c["task_id"] == task_id)
            if client["task_state"] != TaskState.RUNNING:
                raise Conflict(f"task {task_id} is {client['task_state']}")
            if session["state"] == "waiting" and client["state"] in ("joined", "ready"):
                if client["state"] == "joined":
                    self._set_client(task_id, "ready")
                    self.db.execute("UPDATE multicast_sessions SET first_ready = COALESCE(first_ready, ?) "
                                    "WHERE id = ?", time.time(), session["id"])
            elif session["state"] != "waiting" and client["state"] not in ("receiving", "fallback"):
                self.tasks.set_node(task_id, session["storage_id"])
                self._set_client(task_id, "fallback", reason=_late(session))
        self.tasks.changed("session", session["id"])
        return self._answer(self.session(session["id"]), task_id)

    def _answer(self, session: Session, task_id: int) -> dict[str, Any]:
        client = next(c for c in session["clients"] if c["task_id"] == task_id)
        answer: dict[str, Any] = {"session": session["id"], "state": session["state"], "client": client["state"]}
        if client["state"] == "fallback":
            answer["fallback"] = True
            answer["reason"] = client["reason"]
        elif client["state"] == "receiving":
            answer["join"] = True
        answer.update({"version": session["version"], "storage": session["storage"],
                       "files": [{"file": f, "portbase": session["portbase"] + 2 * i}
                                 for i, f in enumerate(session["files"])]})
        return answer

    # --- what the session runner does --------------------------------------
    def multicast_go(self, session_id: int) -> Session:
        with self.db.transaction():
            cur = self.db.execute("UPDATE multicast_sessions SET go = 1 WHERE id = ? AND state = 'waiting'",
                                  session_id)
            if cur.rowcount != 1:
                raise Conflict(f"multicast session {session_id} is {self.session(session_id)['state']}, not waiting")
        self.tasks.changed("session", session_id)
        return self.session(session_id)

    def multicast_sending(self, session_id: int) -> list[SessionClient]:
        """waiting → sending; the ready clients are the receivers; returns them."""
        with self.db.transaction():
            cur = self.db.execute("UPDATE multicast_sessions SET state = 'sending', started = ? "
                                  "WHERE id = ? AND state = 'waiting'", time.time(), session_id)
            if cur.rowcount != 1:
                raise Conflict(f"multicast session {session_id} is not waiting")
            self.db.execute("UPDATE multicast_clients SET state = 'receiving', updated = ? WHERE session_id = ? "
                            "AND state = 'ready' AND task_id IN (SELECT id FROM tasks WHERE state = 'running')",
                            time.time(), session_id)
        self.tasks.changed("session", session_id)
        return [c for c in self.session(session_id)["clients"] if c["state"] == "receiving"]

    def multicast_sender(self, session_id: int, file: str | None, pid: int | None, detail: str = "") -> None:
        with self.db.transaction():
            self.db.execute("UPDATE multicast_sessions SET current = ?, sender_pid = ?, detail = ? WHERE id = ?",
                            file, pid, detail, session_id)
        self.tasks.changed("session", session_id)

    def multicast_drop(self, session_id: int, address: str, reason: str) -> None:
        with self.db.transaction():
            self.db.execute("UPDATE multicast_clients SET state = 'dropped', reason = ?, updated = ? "
                            "WHERE session_id = ? AND address = ? AND state = 'receiving'",
                            reason, time.time(), session_id, address)
        self.tasks.changed("session", session_id)

    def multicast_end(self, session_id: int, state: str, error: str | None = None) -> Session:
        """The session ends; on cancel, its clients' active tasks are canceled too (they stop at their next
        call to the server)."""
        if state not in ("done", "failed", "canceled"):
            raise ValueError(f"a multicast session ends done, failed or canceled, not {state}")
        with self.db.transaction():
            cur = self.db.execute("UPDATE multicast_sessions SET state = ?, finished = ?, error = ?, "
                                  "sender_pid = NULL WHERE id = ? AND state IN ('waiting', 'sending')",
                                  state, time.time(), error, session_id)
            if cur.rowcount != 1:
                raise Conflict(f"multicast session {session_id} is {self.session(session_id)['state']} already")
            if state == "canceled":
                why = json.dumps({"code": "multicast_canceled", "message": f"multicast session {session_id} canceled"})
                for row in self.db.all("SELECT t.id FROM tasks t JOIN multicast_clients c ON c.task_id = t.id "
                                       "WHERE c.session_id = ? AND c.state != 'fallback' "
                                       "AND t.state IN ('queued', 'running')", session_id):
                    self.tasks.transition(row["id"], TaskState.CANCELED, error=why)
        self.tasks.changed("session", session_id)
        return self.session(session_id)

    def multicast_interrupted(self) -> list[InterruptedSession]:
        """At server start: a session that was sending cannot resume (its receivers time out), so it failed;
        its receiving clients' tasks fail with the reason, its queued ones will fall back at check-in.
        Returns those sessions (with the sender PID they recorded)."""
        rows = self.db.all_as(InterruptedSession, "SELECT id, sender_pid, files, image_dir, current "
                              "FROM multicast_sessions WHERE state = 'sending'")
        reason = "the server restarted during the multicast transfer"
        why = json.dumps({"code": "multicast_interrupted", "message": reason})
        for row in rows:
            with self.db.transaction():
                for task in self.db.all("SELECT t.id FROM tasks t JOIN multicast_clients c ON c.task_id = t.id "
                                        "WHERE c.session_id = ? AND c.state = 'receiving' AND t.state = 'running'",
                                        row["id"]):
                    self.tasks.transition(task["id"], TaskState.FAILED, error=why)
                self.db.execute("UPDATE multicast_sessions SET state = 'failed', finished = ?, error = ?, "
                                "sender_pid = NULL WHERE id = ?", time.time(), reason, row["id"])
            self.tasks.changed("session", row["id"])
        return rows

    def waiting_sessions(self) -> list[int]:
        return [r["id"] for r in self.db.all("SELECT id FROM multicast_sessions WHERE state = 'waiting' ORDER BY id")]


def _late(session: Session) -> str:
    return f"multicast session {session['id']} is {session['state']} already: deploying by unicast instead"


def _client(row: Row) -> SessionClient:
    error = json.loads(row.pop("task_error") or "null")
    progress = json.loads(row.pop("task_progress") or "null")
    row["error"] = (error or {}).get("message")
    row["stage"] = (progress or {}).get("stage")
    return cast(SessionClient, row)
