"""The schedule runner: inside ``imager-server serve``'s event loop, it queues each schedule's task when its time
comes (hosts woken first), catches up on a run missed while the server was down if it is still within the
schedule's window, and records every run. Time comes from an injectable clock: tests advance a fake one and call
``tick()``; the loop only decides when to call it.

Definitions go through here too (add, edit, pause, resume, delete), since their next run needs the clock and the
server's time zone; the API, the CLI (through the API) and the console call the same methods.
"""
from __future__ import annotations

import asyncio
import dataclasses
import functools
import datetime as dt
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from server_stub import cron
from server_stub.errors import ApiError, Conflict, HostBusy, Invalid
from server_stub.store import Store
from server_stub.store.schedules import Schedule, ScheduleRun, Schedules, ScheduleSpec

log = logging.getLogger(__name__)

Clock = Callable[[], float]
# Wakes the hosts of these MACs (the task's image chooses the storage group's wake target) before their tasks are
# queued; returns a short note for the run's record.
Waker = Callable[[list[str], str | None], str]
TICK_GRACE = 120        # seconds: a run this late still runs even with catch_up 0 (the loop is never that late)
IDLE_WAIT = 30          # seconds the loop waits at most between ticks (a changed clock is seen this soon)
MISSED_COUNTED = 1000   # occurrences counted one by one in a missed stretch; beyond, "at least"
IN_WINDOW_SEEN = 100    # occurrences looked at inside the catch-up window to find the latest
ACTOR = "scheduler"


def server_zone() -> ZoneInfo:
    """The server's time zone: $TZ (a zone name), else the system's (/etc/timezone, /etc/localtime), else UTC."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    try:
        candidates.append(Path("/etc/timezone").read_text().strip())
    except OSError:
        pass
    try:
        target = os.readlink("/etc/localtime")
        candidates.append(target.split("zoneinfo/", 1)[1] if "zoneinfo/" in target else "")
    except OSError:
        pass
    for name in candidates:
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                log.warning("time zone %r is not known; trying the next one", name)
    return ZoneInfo("UTC")


@functools.lru_cache(maxsize=512)
def _parsed(rule: str) -> cron.CronRule:
    """A stored rule (checked when it was saved), parsed once: a catch-up asks for its next run many times."""
    return cron.parse_rule(rule)


class Scheduler:
    def __init__(self, store: Store, zone: ZoneInfo, clock: Clock = time.time, waker: Waker | None = None) -> None:
        self.store, self.zone, self.clock, self.waker = store, zone, clock, waker
        self.repo: Schedules = store.schedules_repo
        self._poked = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None

    # --- definitions ---------------------------------------------------------------------------------------
    def _first_run(self, spec: ScheduleSpec, now: float) -> float:
        if spec.rule is not None:
            try:
                return cron.next_after(cron.parse_rule(spec.rule), now, self.zone)
            except cron.CronError as exc:
                raise Invalid(f"cron rule: {exc}", field="rule") from None
        assert spec.run_at is not None
        if spec.run_at <= now:
            raise Invalid(f"{self.local_text(spec.run_at)} is past; a one-time schedule runs in the future",
                          field="at")
        return spec.run_at

    def add(self, spec: ScheduleSpec, actor: str) -> Schedule:
        self.repo.check(spec)  # the definition's own refusals before the time's
        schedule = self.repo.add(spec, self._first_run(spec, self.clock()), actor)
        self.poke()
        return schedule

    def edit(self, key: str, changes: Callable[[ScheduleSpec], ScheduleSpec]) -> Schedule:
        """``changes`` turns the current definition into the new one; the next run is computed anew from now
        when the time changed (a paused schedule stays paused)."""
        old = self.repo.schedule(key)
        before = self.repo.spec_of(old)
        spec = changes(dataclasses.replace(before, hosts=list(before.hosts)))
        self.repo.check(spec)
        timing_changed = (spec.rule, spec.run_at) != (before.rule, before.run_at)
        next_run = self._first_run(spec, self.clock()) if timing_changed else old["next_run"]
        schedule = self.repo.replace(old["id"], spec, next_run, old["enabled"])
        self.poke()
        return schedule

    def pause(self, key: str) -> Schedule:
        schedule = self.repo.schedule(key)
        if not schedule["enabled"]:
            raise Conflict(f"schedule {schedule['name']} is paused already")
        return self.repo.set_enabled(schedule["id"], False, schedule["next_run"])

    def resume(self, key: str) -> Schedule:
        """Runs the pause skipped are not made up: the next run is the rule's next from now (a one-time schedule
        whose time passed meanwhile is refused: give it a new time)."""
        schedule = self.repo.schedule(key)
        if schedule["enabled"]:
            raise Conflict(f"schedule {schedule['name']} is not paused")
        next_run = schedule["next_run"]
        if next_run is not None:
            next_run = self._first_run(self.repo.spec_of(schedule), self.clock())
        resumed = self.repo.set_enabled(schedule["id"], True, next_run)
        self.poke()
        return resumed

    def delete(self, key: str) -> Schedule:
        return self.repo.remove(self.repo.schedule(key)["id"])

    def local_text(self, instant: float | None) -> str | None:
        """An instant as the server's wall clock reads it, with the zone's abbreviation."""
        if instant is None:
            return None
        return dt.datetime.fromtimestamp(instant, self.zone).strftime("%Y-%m-%d %H:%M %Z")

    def present(self, schedule: Schedule, runs: int = 0) -> dict[str, Any]:
        """A schedule as the API shows it: with its next and last runs in the server's time, and its runs."""
        shown: dict[str, Any] = {**schedule, "zone": str(self.zone.key),
                                 "next_run_local": self.local_text(schedule["next_run"]),
                                 "run_at_local": self.local_text(schedule["run_at"])}
        if runs:
            shown["runs"] = self.repo.runs(schedule["id"], runs)
        return shown

    # --- running -------------------------------------------------------------------------------------------
    def _following(self, schedule: Schedule, after: float) -> float | None:
        if schedule["rule"] is None:
            return None
        return cron.next_after(_parsed(schedule["rule"]), after, self.zone)

    def tick(self) -> list[ScheduleRun]:
        """Every due schedule acted on once: its runs missed beyond the window recorded as missed, the latest run
        within the window (if any) done; the records, in order."""
        now = self.clock()
        records: list[ScheduleRun] = []
        for schedule in self.repo.due(now):
            try:
                records += self._due(schedule, now)
            except Exception:  # one broken schedule never stops the others, nor the loop
                log.exception("schedule %s: its run failed", schedule["name"])
                records.append(self.repo.record_run(schedule["id"], schedule["next_run"] or now, "failed",
                                                    "internal error (see the server's log)", [],
                                                    self._safe_following(schedule, now), now))
        return records

    def _safe_following(self, schedule: Schedule, now: float) -> float | None:
        try:
            return self._following(schedule, now)
        except cron.CronError:
            return None

    def _due(self, schedule: Schedule, now: float) -> list[ScheduleRun]:
        window = max(schedule["catch_up"], TICK_GRACE)
        occurrence: float | None = schedule["next_run"]
        missed: list[float] = []
        while occurrence is not None and occurrence < now - window and len(missed) < MISSED_COUNTED:
            missed.append(occurrence)
            occurrence = self._following(schedule, occurrence)
        more_missed = occurrence is not None and occurrence < now - window
        if more_missed:  # a long outage of a frequent rule: jump to the window's start
            occurrence = self._following(schedule, now - window - 0.001)
        latest: float | None = None
        for _ in range(IN_WINDOW_SEEN):
            if occurrence is None or occurrence > now:
                break
            latest = occurrence
            occurrence = self._following(schedule, occurrence)
        next_run = self._following(schedule, now)
        records = []
        if missed:
            count = f"at least {len(missed)}" if more_missed else str(len(missed))
            span = (f"at {self.local_text(missed[0])}" if len(missed) == 1 else
                    f"from {self.local_text(missed[0])} to {self.local_text(missed[-1])}")
            records.append(self.repo.record_run(
                schedule["id"], missed[0], "missed",
                f"missed {count} run{'s' if count != '1' else ''} {span}: the server was not running, and "
                f"{'it is' if count == '1' else 'they are'} older than the catch-up window "
                f"({schedule['catch_up']} s)", [], next_run, now))
            self._audit(schedule, "missed")
        if latest is not None:
            outcome, detail, task_ids = self._fire(schedule)
            records.append(self.repo.record_run(schedule["id"], latest, outcome, detail, task_ids, next_run, now))
            self._audit(schedule, outcome)
        return records

    def _fire(self, schedule: Schedule) -> tuple[str, str, list[int]]:
        """Wake the idle hosts, then queue the task for each; busy hosts skipped. → (outcome, detail, task ids)."""
        if schedule["group_removed"]:
            return "failed", f"its host group {schedule['group_removed']} was removed: edit the schedule", []
        hosts = self.repo.targets(schedule)
        if not hosts:
            what = f"host group {schedule['group']} has no hosts" if schedule["group"] else "its hosts were removed"
            return "failed", f"nothing to do: {what}", []
        busy = self.repo.active_tasks(hosts)
        idle = [h for h in hosts if h not in busy]
        notes: dict[str, str] = {h: f"skipped: host busy (task {busy[h][0]} {busy[h][1]})" for h in busy}
        wake_note = ""
        if idle and schedule["wake"] and self.waker is not None:
            try:
                wake_note = self.waker([self.store.host(h)["mac"] for h in idle], schedule["image"])
            except Exception as exc:  # a failed wake-up never stops the tasks: the machines may be on already
                log.warning("schedule %s: wake-up failed: %s", schedule["name"], exc)
                wake_note = f"wake-up failed: {exc}"
        task_ids: list[int] = []
        failed = 0
        for host in idle:
            try:
                task = self.store.add_task(host, schedule["type"], schedule["image"], disk=schedule["disk"],
                                           after=schedule["after"], partition=schedule["partition"],
                                           options=schedule["options"], queued_by=f"schedule {schedule['name']}")
            except HostBusy:  # queued meanwhile by someone else (the host's one-task index)
                notes[host] = "skipped: host busy (a task was queued meanwhile)"
            except ApiError as exc:  # e.g. an image never captured
                notes[host] = f"failed: {exc.message}"
                failed += 1
            else:
                task_ids.append(task["id"])
                notes[host] = f"task {task['id']} queued"
        if task_ids:
            outcome = "queued" if len(task_ids) == len(hosts) else "partial"
        else:
            outcome = "failed" if failed else "skipped"
        if len(hosts) == 1:
            detail = notes[hosts[0]]
        else:
            detail = "; ".join(f"{h}: {notes[h]}" for h in hosts)
        return outcome, (f"{wake_note}; {detail}" if wake_note else detail), task_ids

    def _audit(self, schedule: Schedule, outcome: str) -> None:
        self.store.accounts.audit(ACTOR, "system", "schedule", "run schedule", schedule["name"], outcome, None)

    # --- the loop ------------------------------------------------------------------------------------------
    def poke(self) -> None:
        """A definition changed: look again now (the next run may be sooner than the loop's wait)."""
        self._poked.set()

    async def run_forever(self) -> None:
        while True:
            try:
                self.tick()
            except Exception:
                log.exception("the scheduler's tick failed; trying again")
            next_due = self.repo.next_due()
            wait = IDLE_WAIT if next_due is None else min(IDLE_WAIT, max(0.5, next_due - self.clock()))
            try:
                await asyncio.wait_for(self._poked.wait(), wait)
            except asyncio.TimeoutError:
                pass
            self._poked.clear()

    def start(self) -> None:
        """The first tick runs at once: what was missed while the server was down is handled at start."""
        self._loop_task = asyncio.get_running_loop().create_task(self.run_forever())

    async def close(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            try:
                await self._loop_task
            except asyncio.CancelledError:
                pass
