"""Multicast sessions' records: a session, its clients (one ``multicast`` task per host), their states.

Part of ``db.Store`` (a mixin, like storagedb), so each public method is one transaction of the same
connection. What runs the session (udp-sender, the waiting rule) is server_stub/multicast.py.

Session states: ``waiting → sending → done | failed``, and ``canceled`` from waiting or sending.
Client states (the session's view; the task keeps its own state and error):
``queued`` (task created) → ``joined`` (checked in while the session waited) → ``ready`` (disk checked, table
written, waiting for the sender) → ``receiving`` → the task's end; or ``fallback`` (checked in or ready after
the sending began: deploys the same image by unicast) or ``dropped`` (udp-sender stopped waiting for it).
"""
from __future__ import annotations

import json
import secrets
import sqlite3
import time
from typing import Any

from server_stub import db

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
    conn: sqlite3.Connection

    def _one(self, sql: str, *args: Any) -> dict | None: ...  # provided by db.Store
    def _all(self, sql: str, *args: Any) -> list[dict]: ...
    def host(self, key: str) -> dict: ...
    def task(self, task_id: int) -> dict: ...
    def _transition(self, task_id: int, allowed_from: tuple[str, ...], state: str, **fields: Any) -> dict: ...

    def add_session(self, image: dict, hosts: list[str], *, min_receivers: int | None, max_wait: int,
                    rate: int | None, interface: str | None, image_dir: str, version: str, files: list[str],
                    storage_id: int, disk: str | None = None, after: str = "reboot") -> dict:
        """The session and one queued ``multicast`` task per host, all or none."""
        if not hosts or len(set(hosts)) != len(hosts):
            raise db.Invalid("give each host once")
        if min_receivers is None:
            min_receivers = len(hosts)
        if not isinstance(min_receivers, int) or not 1 <= min_receivers <= len(hosts):
            raise db.Invalid(f"min_receivers must be 1…{len(hosts)} (the number of hosts)")
        if not isinstance(max_wait, int) or max_wait < 0:
            raise db.Invalid("max_wait is whole seconds ≥ 0")
        if after not in db.AFTER:
            raise db.Invalid(f"after must be one of {', '.join(db.AFTER)}")
        if not files or len(files) > PORTS_PER_SESSION // 2:
            raise db.Invalid(f"a session sends 1…{PORTS_PER_SESSION // 2} files; this image has {len(files)}")
        now = time.time()
        self.conn.execute("BEGIN")
        try:
            cur = self.conn.execute(
                "INSERT INTO multicast_sessions(image_id, state, min_receivers, max_wait, rate, interface, "
                "portbase, image_dir, version, files, storage_id, created) "
                "VALUES (?, 'waiting', ?, ?, ?, ?, 0, ?, ?, ?, ?, ?)",
                (image["id"], min_receivers, max_wait, rate, interface, image_dir, version, json.dumps(files),
                 storage_id, now))
            session_id = cur.lastrowid
            self.conn.execute("UPDATE multicast_sessions SET portbase = ? WHERE id = ?",
                              (portbase_for(session_id), session_id))
            for key in hosts:
                host = self.host(key)
                try:
                    task = self.conn.execute(
                        "INSERT INTO tasks(host_id, type, image_id, disk, after, state, token, created) "
                        "VALUES (?, 'multicast', ?, ?, ?, 'queued', ?, ?)",
                        (host["id"], image["id"], disk, after, secrets.token_urlsafe(24), now))
                except sqlite3.IntegrityError as exc:
                    raise db.Conflict(f"host {host['name']} has an active task already; cancel it first") from exc
                self.conn.execute("INSERT INTO multicast_clients(task_id, session_id, state, updated) "
                                  "VALUES (?, ?, 'queued', ?)", (task.lastrowid, session_id, now))
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return self.session(session_id)

    def session(self, session_id: int) -> dict:
        row = self._one(_SESSIONS + "WHERE m.id = ?", session_id)
        if not row:
            raise db.NotFound(f"no multicast session {session_id}")
        row["files"] = json.loads(row["files"])
        row["clients"] = [_client(c) for c in self._all(_CLIENTS + "WHERE c.session_id = ? ORDER BY h.name",
                                                        session_id)]
        return row

    def sessions(self) -> list[dict]:
        return [self.session(r["id"]) for r in self._all("SELECT id FROM multicast_sessions ORDER BY id")]

    def session_of_task(self, task_id: int) -> dict | None:
        row = self._one("SELECT session_id FROM multicast_clients WHERE task_id = ?", task_id)
        return self.session(row["session_id"]) if row else None

    def _set_client(self, task_id: int, state: str, reason: str | None = None, address: str | None = None) -> None:
        self.conn.execute("UPDATE multicast_clients SET state = ?, reason = COALESCE(?, reason), "
                          "address = COALESCE(?, address), updated = ? WHERE task_id = ?",
                          (state, reason, address, time.time(), task_id))

    # --- what clients do ---------------------------------------------------
    def multicast_checkin(self, task: dict, address: str | None) -> tuple[dict, dict]:
        """(task now running, the session's answer). While the session waits the client joins it and takes no
        storage slot (it reads the manifest and tables only); once it sends, the client falls back to a
        unicast deploy from the session's node."""
        session = self.session_of_task(task["id"])
        assert session is not None
        if task["state"] not in db.ACTIVE:
            raise db.Conflict(f"task {task['id']} is {task['state']}")
        self.conn.execute("BEGIN")
        try:
            client = next(c for c in session["clients"] if c["task_id"] == task["id"])
            joinable = session["state"] == "waiting" and client["state"] in ("queued", "joined", "ready")
            node = None if joinable else session["storage_id"]
            if task["state"] == "queued":
                task = self._transition(task["id"], ("queued",), "running", started=time.time(), storage_id=node)
            elif not joinable:
                self.conn.execute("UPDATE tasks SET storage_id = ? WHERE id = ?", (node, task["id"]))
                task = self.task(task["id"])
            if joinable:
                self._set_client(task["id"], "joined", address=address)
            elif client["state"] != "fallback":
                self._set_client(task["id"], "fallback", reason=_late(session), address=address)
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return task, self._answer(self.session(session["id"]), task["id"])

    def multicast_ready(self, task_id: int) -> dict:
        """The client's disk is ready: wait, join the sender now, or fall back (it came too late)."""
        session = self.session_of_task(task_id)
        if session is None:
            raise db.NotFound(f"task {task_id} is not in a multicast session")
        client = next(c for c in session["clients"] if c["task_id"] == task_id)
        if client["task_state"] != "running":
            raise db.Conflict(f"task {task_id} is {client['task_state']}")
        if session["state"] == "waiting" and client["state"] in ("joined", "ready"):
            if client["state"] == "joined":
                self._set_client(task_id, "ready")
                self.conn.execute("UPDATE multicast_sessions SET first_ready = COALESCE(first_ready, ?) WHERE id = ?",
                                  (time.time(), session["id"]))
        elif session["state"] != "waiting" and client["state"] not in ("receiving", "fallback"):
            self.conn.execute("UPDATE tasks SET storage_id = ? WHERE id = ?", (session["storage_id"], task_id))
            self._set_client(task_id, "fallback", reason=_late(session))
        return self._answer(self.session(session["id"]), task_id)

    def _answer(self, session: dict, task_id: int) -> dict:
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
    def multicast_go(self, session_id: int) -> dict:
        cur = self.conn.execute("UPDATE multicast_sessions SET go = 1 WHERE id = ? AND state = 'waiting'",
                                (session_id,))
        if cur.rowcount != 1:
            raise db.Conflict(f"multicast session {session_id} is {self.session(session_id)['state']}, not waiting")
        return self.session(session_id)

    def multicast_sending(self, session_id: int) -> list[dict]:
        """waiting → sending; the ready clients are the receivers; returns them."""
        self.conn.execute("BEGIN")
        try:
            cur = self.conn.execute("UPDATE multicast_sessions SET state = 'sending', started = ? "
                                    "WHERE id = ? AND state = 'waiting'", (time.time(), session_id))
            if cur.rowcount != 1:
                raise db.Conflict(f"multicast session {session_id} is not waiting")
            self.conn.execute("UPDATE multicast_clients SET state = 'receiving', updated = ? WHERE session_id = ? "
                              "AND state = 'ready' AND task_id IN (SELECT id FROM tasks WHERE state = 'running')",
                              (time.time(), session_id))
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return [c for c in self.session(session_id)["clients"] if c["state"] == "receiving"]

    def multicast_sender(self, session_id: int, file: str | None, pid: int | None, detail: str = "") -> None:
        self.conn.execute("UPDATE multicast_sessions SET current = ?, sender_pid = ?, detail = ? WHERE id = ?",
                          (file, pid, detail, session_id))

    def multicast_drop(self, session_id: int, address: str, reason: str) -> None:
        self.conn.execute("UPDATE multicast_clients SET state = 'dropped', reason = ?, updated = ? "
                          "WHERE session_id = ? AND address = ? AND state = 'receiving'",
                          (reason, time.time(), session_id, address))

    def multicast_end(self, session_id: int, state: str, error: str | None = None) -> dict:
        """The session ends; on cancel, its clients' active tasks are canceled too (they stop at their next
        call to the server)."""
        assert state in ("done", "failed", "canceled")
        self.conn.execute("BEGIN")
        try:
            cur = self.conn.execute("UPDATE multicast_sessions SET state = ?, finished = ?, error = ?, "
                                    "sender_pid = NULL WHERE id = ? AND state IN ('waiting', 'sending')",
                                    (state, time.time(), error, session_id))
            if cur.rowcount != 1:
                raise db.Conflict(f"multicast session {session_id} is {self.session(session_id)['state']} already")
            if state == "canceled":
                self.conn.execute("UPDATE tasks SET state = 'canceled', finished = ?, error = ? WHERE state IN "
                                  "('queued', 'running') AND id IN (SELECT task_id FROM multicast_clients "
                                  "WHERE session_id = ? AND state != 'fallback')",
                                  (time.time(), json.dumps({"code": "multicast_canceled",
                                                            "message": f"multicast session {session_id} canceled"}),
                                   session_id))
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return self.session(session_id)

    def multicast_interrupted(self) -> list[dict]:
        """At server start: a session that was sending cannot resume (its receivers time out), so it failed;
        its receiving clients' tasks fail with the reason, its queued ones will fall back at check-in.
        Returns those sessions (with the sender PID they recorded)."""
        rows = self._all("SELECT id, sender_pid, files, image_dir, current FROM multicast_sessions "
                         "WHERE state = 'sending'")
        reason = "the server restarted during the multicast transfer"
        for row in rows:
            self.conn.execute("BEGIN")
            try:
                self.conn.execute("UPDATE tasks SET state = 'failed', finished = ?, error = ? WHERE state = 'running' "
                                  "AND id IN (SELECT task_id FROM multicast_clients WHERE session_id = ? "
                                  "AND state = 'receiving')",
                                  (time.time(), json.dumps({"code": "multicast_interrupted", "message": reason}),
                                   row["id"]))
                self.conn.execute("UPDATE multicast_sessions SET state = 'failed', finished = ?, error = ?, "
                                  "sender_pid = NULL WHERE id = ?", (time.time(), reason, row["id"]))
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
        return rows

    def waiting_sessions(self) -> list[int]:
        return [r["id"] for r in self._all("SELECT id FROM multicast_sessions WHERE state = 'waiting' ORDER BY id")]


def _late(session: dict) -> str:
    return f"multicast session {session['id']} is {session['state']} already: deploying by unicast instead"


def _client(row: dict) -> dict:
    error = json.loads(row.pop("task_error")) if row.get("task_error") else None
    progress = json.loads(row.pop("task_progress")) if row.get("task_progress") else None
    row["error"] = (error or {}).get("message")
    row["stage"] = (progress or {}).get("stage")
    return row


# Appended to db.MIGRATIONS.
MIGRATION = """
    CREATE TABLE multicast_sessions (
        id INTEGER PRIMARY KEY, image_id INTEGER NOT NULL REFERENCES images(id), state TEXT NOT NULL,
        min_receivers INTEGER NOT NULL, max_wait INTEGER NOT NULL, rate INTEGER, interface TEXT,
        portbase INTEGER NOT NULL, image_dir TEXT NOT NULL, version TEXT NOT NULL, files TEXT NOT NULL,
        storage_id INTEGER REFERENCES storage_nodes(id), go INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL,
        first_ready REAL, started REAL, finished REAL, current TEXT, sender_pid INTEGER, detail TEXT, error TEXT);
    CREATE TABLE multicast_clients (
        task_id INTEGER PRIMARY KEY REFERENCES tasks(id),
        session_id INTEGER NOT NULL REFERENCES multicast_sessions(id), state TEXT NOT NULL, address TEXT,
        reason TEXT, updated REAL NOT NULL);
    CREATE INDEX multicast_clients_by_session ON multicast_clients(session_id);
"""
