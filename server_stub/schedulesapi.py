"""HTTP routes of schedules (``/api/schedules``): list, add, show with its runs, edit, pause, resume, delete; and the
runner's life inside the server (server_stub/scheduler.py).

Who may do what: technicians see schedules and pause or resume them (tonight's redeploy held while a room is in
use); adding, editing and deleting one, a standing order to the fleet, needs an admin. Every change is audited
by ``require`` (server_stub/accounts.py); every run by the runner.
"""
from __future__ import annotations

import dataclasses
from typing import Any, AsyncIterator, Callable, Mapping

from aiohttp import web

from server_stub import cron, wol
from server_stub.accounts import AUDIT_TARGET, PRINCIPAL_KEY
from server_stub.errors import Invalid
from server_stub.http import Handler, json_response, read_json
from server_stub.scheduler import Scheduler, Waker
from server_stub.store import Store
from server_stub.store.schedules import DEFAULT_CATCH_UP, ScheduleSpec

SCHEDULER = web.AppKey("scheduler", Scheduler)
FIELDS = ("name", "type", "image", "hosts", "group", "rule", "at", "disk", "after", "partition", "options", "wake",
          "catch_up")
RUNS_SHOWN = 20


def wake_on_lan(store: Store) -> Waker:
    """The runner's wake-up: magic packets to each host's wake target (server_stub/wol.py), told in a few words."""
    def wake(macs: list[str], image: str | None) -> str:
        report = wol.wake_hosts(store, macs, image=image)
        said = [f"woke {len(report['sent'])} host{'s' if len(report['sent']) != 1 else ''}"] if report["sent"] else []
        if report["failed"]:
            said.append("wake-up failed for " + ", ".join(f"{f['host']} ({f['reason']})" for f in report["failed"]))
        if report["not_configured"]:
            said.append("no wake target for " + ", ".join(report["not_configured"]) + " (imager-server wake set)")
        return "; ".join(said)
    return wake


def _text(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise Invalid(f"{key} must be a string", field=key)
    return value or None


def _whole(body: Mapping[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise Invalid(f"{key} must be a whole number", field=key)
    return value


def apply_fields(spec: ScheduleSpec, body: Mapping[str, Any], scheduler: Scheduler) -> ScheduleSpec:
    """``spec`` with the fields ``body`` gives (an edit: only those; a rule replaces a time and the other way
    round, hosts replace a group and the other way round). The store checks the values' meaning."""
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise Invalid(f"unknown field {unknown[0]} (a schedule has {', '.join(FIELDS)})", field=unknown[0])
    changed = dataclasses.replace(spec, hosts=list(spec.hosts))
    for key in ("name", "type"):
        if key in body:
            setattr(changed, key, _text(body, key) or "")
    for key in ("image", "disk"):
        if key in body:
            setattr(changed, key, _text(body, key))
    if "after" in body:
        changed.after = _text(body, "after") or "reboot"
    if "partition" in body:
        changed.partition = _whole(body, "partition")
    if "catch_up" in body:
        catch_up = _whole(body, "catch_up")
        changed.catch_up = DEFAULT_CATCH_UP if catch_up is None else catch_up
    if "wake" in body:
        if not isinstance(body["wake"], bool):
            raise Invalid("wake must be true or false", field="wake")
        changed.wake = body["wake"]
    if "options" in body:
        if body["options"] is not None and not isinstance(body["options"], dict):
            raise Invalid("options must be an object, like {\"mode\": \"fast\"} for a wipe", field="options")
        changed.options = body["options"]
    if "hosts" in body:
        hosts = body["hosts"]
        if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
            raise Invalid("hosts must be a list of host names or MACs", field="hosts")
        changed.hosts, changed.group = list(hosts), None
    if "group" in body and body["group"] is not None:
        changed.group, changed.hosts = _text(body, "group"), []
    if "rule" in body and body["rule"] is not None:
        changed.rule, changed.run_at = _text(body, "rule"), None
    if "at" in body and body["at"] is not None:
        try:
            changed.run_at, changed.rule = cron.parse_local_time(str(_text(body, "at") or ""), scheduler.zone), None
        except cron.CronError as exc:
            raise Invalid(str(exc), field="at") from None
    return changed


def new_spec(body: Mapping[str, Any], scheduler: Scheduler) -> ScheduleSpec:
    return apply_fields(ScheduleSpec(name="", type=""), body, scheduler)


def _actor(request: web.Request) -> str:
    principal = request.get(PRINCIPAL_KEY)
    return principal.actor if principal else "unknown"


async def list_schedules(request: web.Request) -> web.Response:
    scheduler = request.app[SCHEDULER]
    return json_response({"zone": str(scheduler.zone.key),
                          "schedules": [scheduler.present(s) for s in scheduler.repo.schedules()]})


async def add_schedule(request: web.Request) -> web.Response:
    scheduler = request.app[SCHEDULER]
    body = await read_json(request)
    request[AUDIT_TARGET] = str(body.get("name", ""))[:100]
    schedule = scheduler.add(new_spec(body, scheduler), _actor(request))
    return json_response(scheduler.present(schedule), 201)


async def show_schedule(request: web.Request) -> web.Response:
    scheduler = request.app[SCHEDULER]
    return json_response(scheduler.present(scheduler.repo.schedule(request.match_info["key"]), runs=RUNS_SHOWN))


async def edit_schedule(request: web.Request) -> web.Response:
    scheduler = request.app[SCHEDULER]
    body = await read_json(request)
    schedule = scheduler.edit(request.match_info["key"], lambda spec: apply_fields(spec, body, scheduler))
    return json_response(scheduler.present(schedule))


async def pause_schedule(request: web.Request) -> web.Response:
    scheduler = request.app[SCHEDULER]
    return json_response(scheduler.present(scheduler.pause(request.match_info["key"])))


async def resume_schedule(request: web.Request) -> web.Response:
    scheduler = request.app[SCHEDULER]
    return json_response(scheduler.present(scheduler.resume(request.match_info["key"])))


async def delete_schedule(request: web.Request) -> web.Response:
    scheduler = request.app[SCHEDULER]
    return json_response(scheduler.present(scheduler.delete(request.match_info["key"])))


def routes(admin_only: Callable[[Handler], Handler], staff: Callable[[Handler], Handler]) -> list[web.RouteDef]:
    return [
        web.get("/api/schedules", staff(list_schedules)),
        web.post("/api/schedules", admin_only(add_schedule)),
        web.get("/api/schedules/{key}", staff(show_schedule)),
        web.post("/api/schedules/{key}", admin_only(edit_schedule)),
        web.delete("/api/schedules/{key}", admin_only(delete_schedule)),
        web.post("/api/schedules/{key}/pause", staff(pause_schedule)),
        web.post("/api/schedules/{key}/resume", staff(resume_schedule)),
    ]


async def lifecycle(app: web.Application) -> AsyncIterator[None]:
    """The runner lives as long as the server; its first tick at start handles what was missed while down."""
    app[SCHEDULER].start()
    yield
    await app[SCHEDULER].close()
