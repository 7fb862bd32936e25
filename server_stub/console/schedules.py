"""Schedules: every schedule with its next run in the server's time zone, adding one (a task for hosts or a host
group, once or on a cron rule), one schedule's page with its runs and an edit form, pause, resume and delete.
Forms call the same Scheduler methods as /api/schedules; technicians pause and resume, admins do the rest."""
from __future__ import annotations

from typing import Any, Mapping

from aiohttp import web

from contract.vocabulary import AFTER_VALUES, WIPE_MODES
from server_stub.accounts import AUDIT_TARGET, PRINCIPAL_KEY
from server_stub.appkeys import STORE
from server_stub.console.formdata import errors_by_field, whole_number
from server_stub.console.render import action, page, redirect_after_post, render
from server_stub.errors import ApiError, Invalid
from server_stub.schedulesapi import SCHEDULER, apply_fields, new_spec
from server_stub.store.schedules import DEFAULT_CATCH_UP, SCHEDULED_TYPES

# Store checks that name no field, by what their message says; first match wins.
SCHEDULE_HINTS = {"disk selector": "disk", "after must": "after", "partition": "partition", "wipe": "mode",
                  "image": "image", "host group": "group", "host": "hosts"}
RUNS_SHOWN = 50


def _errors(error: ApiError) -> dict[str, str]:
    """{field: message}; the API's ``options`` is the form's wipe mode."""
    return {("mode" if k == "options" else k): v for k, v in errors_by_field(error, SCHEDULE_HINTS).items()}


def _choices(request: web.Request) -> dict[str, Any]:
    store = request.app[STORE]
    return {"types": SCHEDULED_TYPES, "afters": AFTER_VALUES, "modes": WIPE_MODES,
            "images": [i["name"] for i in store.images()], "hosts": [h["name"] for h in store.hosts()],
            "groups": store.schedules_repo.group_names(), "zone": str(request.app[SCHEDULER].zone.key)}


def _index_page(request: web.Request, status: int = 200, errors: Mapping[str, str] | None = None,
                values: Mapping[str, Any] | None = None) -> web.Response:
    scheduler = request.app[SCHEDULER]
    schedules = [scheduler.present(s) for s in scheduler.repo.schedules()]
    return render(request, "schedules_index.html", status, title="Schedules", schedules=schedules,
                  errors=errors or {}, values=values or {"wake": "on", "catch_up": str(DEFAULT_CATCH_UP // 60)},
                  notice=request.query.get("notice", ""), **_choices(request))


def form_body(posted: Mapping[str, str], picked: list[str], editing: bool) -> dict[str, Any]:
    """The form as /api/schedules' body. The catch-up window is asked in minutes (seconds in the API)."""
    body: dict[str, Any] = {"name": posted.get("name", ""), "type": posted.get("type", ""),
                            "image": posted.get("image") or None, "disk": posted.get("disk") or None,
                            "after": posted.get("after") or "reboot", "wake": posted.get("wake") == "on"}
    body["partition"] = whole_number(posted.get("partition", ""), "partition", "partition")
    minutes = whole_number(posted.get("catch_up", ""), "catch_up", "the catch-up window")
    body["catch_up"] = DEFAULT_CATCH_UP if minutes is None else minutes * 60
    body["options"] = {"mode": posted.get("mode", "")} if body["type"] == "wipe" else None
    hosts = [*picked, *(h for h in posted.get("hosts_text", "").replace(",", " ").split() if h)]
    group = posted.get("group") or None
    if hosts and group:
        raise Invalid("pick hosts or a group, not both", field="hosts")
    if group:
        body["group"] = group
    elif hosts or not editing:
        body["hosts"] = hosts
    rule, at = posted.get("rule") or None, posted.get("at") or None
    if rule and at:
        raise Invalid("give a cron rule or a time to run once, not both", field="rule")
    if rule:
        body["rule"] = rule
    elif at:
        body["at"] = at
    elif not editing:
        raise Invalid("give a cron rule or a time to run once", field="rule")
    return body


async def _posted(request: web.Request) -> tuple[dict[str, str], list[str]]:
    form = await request.post()
    fields = {k: str(v).strip() for k, v in form.items() if k not in ("csrf", "hosts") and isinstance(v, str)}
    return fields, [str(h) for h in form.getall("hosts", []) if isinstance(h, str)]


@page()
async def schedules_index(request: web.Request) -> web.StreamResponse:
    return _index_page(request)


@action("admin", "add schedule")
async def add_schedule(request: web.Request) -> web.StreamResponse:
    fields, picked = await _posted(request)
    request[AUDIT_TARGET] = fields.get("name", "")[:100]
    scheduler = request.app[SCHEDULER]
    try:
        schedule = scheduler.add(new_spec(form_body(fields, picked, editing=False), scheduler),
                                 request[PRINCIPAL_KEY].actor)
    except ApiError as exc:
        return _index_page(request, exc.status, _errors(exc), {**fields, "hosts": picked})
    return redirect_after_post(f"/schedules/{schedule['id']}",
                               f"Schedule {schedule['name']} added; next run {schedule_when(scheduler, schedule)}.")


def schedule_when(scheduler: Any, schedule: Mapping[str, Any]) -> str:
    return scheduler.local_text(schedule["next_run"]) or "none"


def _show_page(request: web.Request, key: str, status: int = 200, error: str = "",
               errors: Mapping[str, str] | None = None, values: Mapping[str, Any] | None = None) -> web.Response:
    scheduler = request.app[SCHEDULER]
    schedule = scheduler.present(scheduler.repo.schedule(key), runs=RUNS_SHOWN)
    if values is None:  # the edit form starts from the schedule as it is
        values = {"name": schedule["name"], "type": schedule["type"], "image": schedule["image"] or "",
                  "disk": schedule["disk"] or "", "after": schedule["after"],
                  "partition": "" if schedule["partition"] is None else str(schedule["partition"]),
                  "mode": (schedule["options"] or {}).get("mode", ""), "hosts": schedule["hosts"],
                  "group": schedule["group"] or "", "rule": schedule["rule"] or "",
                  "at": (schedule["run_at_local"] or "")[:16].replace(" ", "T"),
                  "wake": "on" if schedule["wake"] else "",
                  "catch_up": str(schedule["catch_up"] // 60)}
    return render(request, "schedules_show.html", status, title=f"Schedule {schedule['name']}", schedule=schedule,
                  error=error, errors=errors or {}, values=values, notice=request.query.get("notice", ""),
                  **_choices(request))


@page()
async def show_schedule(request: web.Request) -> web.StreamResponse:
    return _show_page(request, request.match_info["key"])


@action("admin", "edit schedule")
async def edit_schedule(request: web.Request) -> web.StreamResponse:
    key = request.match_info["key"]
    fields, picked = await _posted(request)
    scheduler = request.app[SCHEDULER]
    try:
        body = form_body(fields, picked, editing=True)
        if "hosts" not in body and "group" not in body:
            raise Invalid("pick the hosts or a group", field="hosts")
        schedule = scheduler.edit(key, lambda spec: apply_fields(spec, body, scheduler))
    except ApiError as exc:
        if exc.status == 404 and "schedule" in exc.message:
            raise
        return _show_page(request, key, exc.status, errors=_errors(exc),
                          values={**fields, "hosts": picked})
    return redirect_after_post(f"/schedules/{schedule['id']}", f"Schedule {schedule['name']} saved; next run "
                                                                f"{schedule_when(scheduler, schedule)}.")


async def _change(request: web.Request, verb: str) -> web.StreamResponse:
    key = request.match_info["key"]
    scheduler = request.app[SCHEDULER]
    try:
        schedule = scheduler.pause(key) if verb == "pause" else scheduler.resume(key)
    except ApiError as exc:
        if exc.status == 404:
            raise
        return _show_page(request, key, exc.status, error=exc.message)
    said = "paused" if verb == "pause" else f"resumed; next run {schedule_when(scheduler, schedule)}"
    return redirect_after_post(f"/schedules/{schedule['id']}", f"Schedule {schedule['name']} {said}.")


@action("technician", "pause schedule")
async def pause_schedule(request: web.Request) -> web.StreamResponse:
    return await _change(request, "pause")


@action("technician", "resume schedule")
async def resume_schedule(request: web.Request) -> web.StreamResponse:
    return await _change(request, "resume")


@action("admin", "delete schedule")
async def delete_schedule(request: web.Request) -> web.StreamResponse:
    gone = request.app[SCHEDULER].delete(request.match_info["key"])
    return redirect_after_post("/schedules", f"Schedule {gone['name']} deleted; the tasks it queued stay.")


def routes() -> list[web.RouteDef]:
    return [
        web.get("/schedules", schedules_index),
        web.post("/schedules", add_schedule),
        web.get("/schedules/{key}", show_schedule),
        web.post("/schedules/{key}", edit_schedule),
        web.post("/schedules/{key}/pause", pause_schedule),
        web.post("/schedules/{key}/resume", resume_schedule),
        web.post("/schedules/{key}/delete", delete_schedule),
    ]
