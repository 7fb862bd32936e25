"""Schedules: a task queued for hosts (or a host group) once at a given time or on a cron rule, and every run's
record. The instants (``next_run``) are computed by the caller (server_stub/scheduler.py, which has the clock and
the time zone); this repository checks and keeps the definitions, and records each run.
"""
from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, TypedDict, cast

from contract.vocabulary import IMAGE_TASK_TYPES
from server_stub import cron
from server_stub.errors import ApiError, Conflict, Invalid, NotFound
from server_stub.store.database import Database, Row
from server_stub.store.hosts import Hosts
from server_stub.store.images import Images
from server_stub.store.validate import (check_after, check_disk_selector, check_name, check_partition,
                                        check_task_options)

# Task types a schedule may queue: multicast comes from a session, a debug shell needs someone at the machine.
SCHEDULED_TYPES = ("capture", "deploy", "inventory", "wipe", "disktest")
MAX_SCHEDULES = 500            # bounds what callers can make the server hold and the runner look at
MAX_HOSTS = 1000               # hosts one schedule names
RUNS_KEPT = 100                # run records kept per schedule (the oldest go)
MAX_CATCH_UP = 7 * 24 * 3600   # seconds: a missed run later than this is never worth running
DEFAULT_CATCH_UP = 3600
OUTCOMES = ("queued", "partial", "skipped", "failed", "missed")


@dataclass
class ScheduleSpec:
    """What a schedule does and when, as the API, the CLI and the console give it (``run_at``: POSIX time)."""
    name: str
    type: str
    hosts: list[str] = field(default_factory=list)   # names or MACs
    group: str | None = None                         # hosts of this group, looked up at each run
    rule: str | None = None
    run_at: float | None = None
    image: str | None = None
    disk: str | None = None
    after: str = "reboot"
    partition: int | None = None
    options: dict[str, Any] | None = None
    wake: bool = True
    catch_up: int = DEFAULT_CATCH_UP


class ScheduleRun(TypedDict):
    id: int
    schedule_id: int
    due: float                 # the instant the run was for
    time: float                # when it was recorded
    outcome: str               # one of OUTCOMES
    detail: str
    task_ids: list[int]


class Schedule(TypedDict):
    id: int
    name: str
    rule: str | None
    run_at: float | None
    type: str
    image: str | None
    disk: str | None
    after: str
    partition: int | None
    options: dict[str, Any] | None
    hosts: list[str]           # names now (a renamed host follows; a removed one is dropped)
    group: str | None
    group_removed: str | None  # the group's name, when it was removed: the schedule has no hosts left
    wake: bool
    catch_up: int
    enabled: bool
    state: str                 # active | paused | finished (a one-time schedule that has run)
    next_run: float | None
    last_run: float | None
    created: float
    created_by: str


_SCHEDULES = "SELECT s.*, g.name AS group_name FROM schedules s LEFT JOIN host_groups g ON g.id = s.host_group_id"


def schedule_key_is_id(key: str) -> bool:
    return key.isascii() and key.isdigit()


@contextmanager
def _about(field_name: str) -> Iterator[None]:
    """A refusal from a shared check names the field it is about (the console shows it there)."""
    try:
        yield
    except ApiError as exc:
        exc.details.setdefault("field", field_name)
        raise


class Schedules:
    def __init__(self, db: Database, hosts: Hosts, images: Images) -> None:
        self.db, self.hosts, self.images = db, hosts, images

    # --- checking ----------------------------------------------------------------------------------------
    def check(self, spec: ScheduleSpec) -> tuple[list[int], int | None, str | None]:
        """The spec refused as the task itself would be (type, image, options, disk, hosts), plus a schedule's
        own rules; → the hosts' ids, the group's id and the stored task options."""
        with _about("name"):
            check_name(spec.name, "schedule")
        if schedule_key_is_id(spec.name):
            raise Invalid("a schedule's name is not only digits (those are its id)", field="name")
        if (spec.rule is None) == (spec.run_at is None):
            raise Invalid("give a cron rule or a time to run once, one of them", field="rule")
        if spec.rule is not None:
            try:
                cron.parse_rule(spec.rule)
            except cron.CronError as exc:
                raise Invalid(f"cron rule: {exc}", field="rule") from None
        if spec.type not in SCHEDULED_TYPES:
            raise Invalid(f"a schedule queues one of {', '.join(SCHEDULED_TYPES)}, not {spec.type!r}", field="type")
        with _about("options"):
            stored_options = check_task_options(spec.type, spec.options)
        with _about("after"):
            check_after(spec.after)
        with _about("disk"):
            check_disk_selector(spec.disk)
        with _about("partition"):
            check_partition(spec.type, spec.partition)
        if spec.type in IMAGE_TASK_TYPES:
            with _about("image"):  # a deploy's capture may come before its run: only the image must exist
                self.images.image(spec.image or "")
        elif spec.image is not None:
            raise Invalid(f"a {spec.type} task names no image", field="image")
        if isinstance(spec.catch_up, bool) or not isinstance(spec.catch_up, int) \
                or not 0 <= spec.catch_up <= MAX_CATCH_UP:
            raise Invalid(f"catch_up is seconds from 0 to {MAX_CATCH_UP}", field="catch_up")
        if (not spec.hosts) == (spec.group is None):
            raise Invalid("give the hosts or a group, one of them", field="hosts")
        group_id = None
        if spec.group is not None:
            with _about("group"):
                check_name(spec.group, "group")
            found = self.db.one("SELECT id FROM host_groups WHERE name = ?", spec.group)
            if found is None:
                raise NotFound(f"no host group {spec.group!r}", field="group")
            group_id = found["id"]
        if len(spec.hosts) > MAX_HOSTS:
            raise Invalid(f"a schedule names at most {MAX_HOSTS} hosts; use a group", field="hosts")
        with _about("hosts"):
            host_ids = [self.hosts.host(h)["id"] for h in spec.hosts]
        if len(set(host_ids)) != len(host_ids):
            raise Invalid("give each host once", field="hosts")
        if spec.type == "capture" and (len(host_ids) > 1 or spec.group is not None):
            raise Invalid("a capture schedule names one host: several would overwrite one image", field="hosts")
        return host_ids, group_id, stored_options

    # --- writing -----------------------------------------------------------------------------------------
    def add(self, spec: ScheduleSpec, next_run: float, actor: str) -> Schedule:
        host_ids, group_id, options = self.check(spec)
        with self.db.transaction():
            if self.db.scalar("SELECT COUNT(*) FROM schedules") >= MAX_SCHEDULES:
                raise Conflict(f"this server keeps at most {MAX_SCHEDULES} schedules; delete old ones first")
            if self.db.one("SELECT id FROM schedules WHERE name = ?", spec.name):
                raise Conflict(f"a schedule named {spec.name} exists already", field="name")
            cur = self.db.execute(
                "INSERT INTO schedules(name, rule, run_at, task_type, image, disk, after, partition, task_options, "
                "hosts, host_group_id, wake, catch_up, enabled, next_run, created, created_by) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?)",
                spec.name, spec.rule, spec.run_at, spec.type, spec.image, spec.disk, spec.after, spec.partition,
                options, json.dumps(host_ids), group_id, int(spec.wake), spec.catch_up, next_run, time.time(),
                actor[:100])
        assert cur.lastrowid is not None
        return self.schedule(str(cur.lastrowid))

    def replace(self, schedule_id: int, spec: ScheduleSpec, next_run: float | None, enabled: bool) -> Schedule:
        """The whole definition anew (an edit: the caller merged the changes into the old spec)."""
        host_ids, group_id, options = self.check(spec)
        with self.db.transaction():
            if self.db.one("SELECT id FROM schedules WHERE name = ? AND id != ?", spec.name, schedule_id):
                raise Conflict(f"a schedule named {spec.name} exists already", field="name")
            self.db.execute(
                "UPDATE schedules SET name = ?, rule = ?, run_at = ?, task_type = ?, image = ?, disk = ?, after = ?, "
                "partition = ?, task_options = ?, hosts = ?, host_group_id = ?, group_removed = NULL, wake = ?, "
                "catch_up = ?, enabled = ?, next_run = ? WHERE id = ?",
                spec.name, spec.rule, spec.run_at, spec.type, spec.image, spec.disk, spec.after, spec.partition,
                options, json.dumps(host_ids), group_id, int(spec.wake), spec.catch_up, int(enabled), next_run,
                schedule_id)
        return self.schedule(str(schedule_id))

    def set_enabled(self, schedule_id: int, enabled: bool, next_run: float | None) -> Schedule:
        with self.db.transaction():
            self.db.execute("UPDATE schedules SET enabled = ?, next_run = ? WHERE id = ?", int(enabled), next_run,
                            schedule_id)
        return self.schedule(str(schedule_id))

    def remove(self, schedule_id: int) -> Schedule:
        gone = self.schedule(str(schedule_id))
        with self.db.transaction():
            self.db.execute("DELETE FROM schedule_runs WHERE schedule_id = ?", schedule_id)
            self.db.execute("DELETE FROM schedules WHERE id = ?", schedule_id)
        return gone

    def record_run(self, schedule_id: int, due: float, outcome: str, detail: str, task_ids: list[int],
                   next_run: float | None, now: float) -> ScheduleRun:
        """One run's record and the schedule's next instant, together; the oldest records beyond RUNS_KEPT go."""
        if outcome not in OUTCOMES:
            raise ValueError(f"no run outcome {outcome}")
        with self.db.transaction():
            cur = self.db.execute("INSERT INTO schedule_runs(schedule_id, due, time, outcome, detail, task_ids) "
                                  "VALUES (?, ?, ?, ?, ?, ?)", schedule_id, due, now, outcome, detail[:2000],
                                  json.dumps(task_ids))
            self.db.execute("UPDATE schedules SET next_run = ?, last_run = ? WHERE id = ?", next_run, now,
                            schedule_id)
            self.db.execute("DELETE FROM schedule_runs WHERE schedule_id = ? AND id NOT IN (SELECT id FROM "
                            "schedule_runs WHERE schedule_id = ? ORDER BY id DESC LIMIT ?)",
                            schedule_id, schedule_id, RUNS_KEPT)
        assert cur.lastrowid is not None
        return self.runs(schedule_id, limit=1)[0]

    # --- reading -----------------------------------------------------------------------------------------
    def schedule(self, key: str) -> Schedule:
        """By id or by name."""
        column = "s.id" if schedule_key_is_id(key) else "s.name"
        if column == "s.id" and int(key) >= 2**63:
            raise NotFound(f"no schedule {key}")
        row = self.db.one(f"{_SCHEDULES} WHERE {column} = ?", int(key) if column == "s.id" else key)
        if row is None:
            raise NotFound(f"no schedule {key!r}")
        return self._decode(row)

    def schedules(self) -> list[Schedule]:
        return [self._decode(r) for r in self.db.all(f"{_SCHEDULES} ORDER BY s.name")]

    def due(self, now: float) -> list[Schedule]:
        """The enabled schedules whose next run is now or past, earliest first."""
        rows = self.db.all(f"{_SCHEDULES} WHERE s.enabled = 1 AND s.next_run IS NOT NULL AND s.next_run <= ? "
                           "ORDER BY s.next_run, s.id", now)
        return [self._decode(r) for r in rows]

    def next_due(self) -> float | None:
        """The earliest next run of the enabled schedules (the runner sleeps until then)."""
        value = self.db.scalar("SELECT MIN(next_run) FROM schedules WHERE enabled = 1")
        return None if value is None else float(value)

    def runs(self, schedule_id: int, limit: int = RUNS_KEPT) -> list[ScheduleRun]:
        rows = self.db.all("SELECT * FROM schedule_runs WHERE schedule_id = ? ORDER BY id DESC LIMIT ?",
                           schedule_id, limit)
        return [cast(ScheduleRun, {**r, "task_ids": json.loads(r["task_ids"])}) for r in rows]

    def targets(self, schedule: Schedule) -> list[str]:
        """The names of the hosts a run is for now: the schedule's own, or its group's members at this moment."""
        if schedule["group"] is None:
            return list(schedule["hosts"])
        return [r["name"] for r in self.db.all(
            "SELECT h.name FROM host_group_members m JOIN host_groups g ON g.id = m.group_id "
            "JOIN hosts h ON h.id = m.host_id WHERE g.name = ? ORDER BY h.name", schedule["group"])]

    def active_tasks(self, hosts: list[str]) -> dict[str, tuple[int, str]]:
        """{host name: (task id, state)} for those of ``hosts`` with a queued or running task."""
        if not hosts:
            return {}
        rows = self.db.all("SELECT h.name, t.id, t.state FROM tasks t JOIN hosts h ON h.id = t.host_id WHERE "
                           f"t.state IN ('queued', 'running') AND h.name IN ({','.join('?' * len(hosts))})", *hosts)
        return {r["name"]: (r["id"], r["state"]) for r in rows}

    def group_names(self) -> list[str]:
        """The host groups a schedule may target (the console's choices)."""
        return [r["name"] for r in self.db.all("SELECT name FROM host_groups ORDER BY name")]

    def spec_of(self, schedule: Schedule) -> ScheduleSpec:
        """The definition as a spec again (an edit starts from it)."""
        return ScheduleSpec(name=schedule["name"], type=schedule["type"], hosts=list(schedule["hosts"]),
                            group=schedule["group"], rule=schedule["rule"], run_at=schedule["run_at"],
                            image=schedule["image"], disk=schedule["disk"], after=schedule["after"],
                            partition=schedule["partition"], options=schedule["options"], wake=schedule["wake"],
                            catch_up=schedule["catch_up"])

    def _decode(self, row: Row) -> Schedule:
        ids = json.loads(row["hosts"])
        names = {r["id"]: r["name"] for r in self.db.all(
            f"SELECT id, name FROM hosts WHERE id IN ({','.join('?' * len(ids))})", *ids)} if ids else {}
        enabled = bool(row["enabled"])
        state = "paused" if not enabled else ("finished" if row["next_run"] is None else "active")
        return {"id": row["id"], "name": row["name"], "rule": row["rule"], "run_at": row["run_at"],
                "type": row["task_type"], "image": row["image"], "disk": row["disk"], "after": row["after"],
                "partition": row["partition"],
                "options": json.loads(row["task_options"]) if row["task_options"] else None,
                "hosts": [names[i] for i in ids if i in names], "group": row["group_name"],
                "group_removed": row["group_removed"],
                "wake": bool(row["wake"]), "catch_up": row["catch_up"], "enabled": enabled, "state": state,
                "next_run": row["next_run"], "last_run": row["last_run"], "created": row["created"],
                "created_by": row["created_by"]}
