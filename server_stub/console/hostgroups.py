"""Groups: host groups with their state at a glance, a group's page (its hosts and their tasks, hosts in and out,
one task for the whole group, unicast or multicast, Wake-on-LAN), the Wake-on-LAN targets, and the host page's
Wake button. Everyone signed in sees them, queues tasks and wakes machines; making, editing and removing groups,
their membership and the wake targets needs an admin (as the API: server_stub/hostgroupsapi.py)."""
from __future__ import annotations

import urllib.parse
from typing import Any

from aiohttp import web

from server_stub.accounts import PRINCIPAL_KEY
from server_stub.appkeys import STORE
from server_stub.console import taskform
from server_stub.console.formdata import errors_by_field, form_text, whole_number
from server_stub.console.render import action, page, redirect_after_post, render
from server_stub.errors import ApiError, Invalid, NotFound
from server_stub.groupqueue import GroupTask, host_groups, queue_for_group
from server_stub.multicastweb import MULTICAST
from server_stub.store.wake import WakeTargets
from server_stub.wol import WakeReport, wake_hosts

GROUP_HINTS = {"group name": "name", "description": "description", "no host": "hosts", "not in group": "hosts"}
WAKE_HINTS = {"broadcast": "broadcast", "interface": "interface", "storage group": "storage_group"}
MULTICAST_FIELDS = ("min_receivers", "max_wait", "rate", "interface")
EMPTY_TASK_FORM = {**taskform.EMPTY_FORM, "multicast": "", "wake": "on", "min_receivers": "", "max_wait": "",
                   "rate": "", "interface": ""}


def group_url(name: str) -> str:
    return "/groups/" + urllib.parse.quote(name, safe="")


def wake_notice(report: WakeReport | None) -> str:
    if report is None:
        return ""
    said = []
    if report["sent"]:
        said.append("Woke " + ", ".join(s["host"] for s in report["sent"]) + ".")
    if report["failed"]:
        said.append("Wake failed for " + "; ".join(f"{f['host']}: {f['reason']}" for f in report["failed"]) + ".")
    if report["not_configured"]:
        said.append("No Wake-on-LAN target covers " + ", ".join(report["not_configured"])
                    + " (set one under Groups → Wake-on-LAN).")
    return " ".join(said)


# --- the list and the wake targets ---------------------------------------------

def render_index(request: web.Request, status: int = 200, **values: Any) -> web.Response:
    store = request.app[STORE]
    defaults: dict[str, Any] = {"add_form": {"name": "", "description": ""}, "add_errors": {},
                                "wake_form": {"storage_group": "", "broadcast": "", "interface": ""},
                                "wake_errors": {}}
    return render(request, "groups_index.html", status, title="Groups", groups=host_groups(store).groups(),
                  wake_settings=WakeTargets(store.db).settings(), storage_groups=store.groups(),
                  notice=request.query.get("notice", ""), **{**defaults, **values})


@page()
async def groups_index(request: web.Request) -> web.StreamResponse:
    return render_index(request)


@action("admin", "add host group")
async def add_group(request: web.Request) -> web.StreamResponse:
    form = await form_text(request)
    values = {"name": form.get("name", ""), "description": form.get("description", "")}
    try:
        group = host_groups(request.app[STORE]).add_group(values["name"], values["description"])
    except ApiError as exc:
        return render_index(request, exc.status, add_form=values, add_errors=errors_by_field(exc, GROUP_HINTS))
    return redirect_after_post(group_url(group["name"]), f"Added host group {group['name']}: add its hosts below.")


@action("admin", "set wake target")
async def set_wake_target(request: web.Request) -> web.StreamResponse:
    form = await form_text(request)
    values = {k: form.get(k, "") for k in ("storage_group", "broadcast", "interface")}
    try:
        setting = WakeTargets(request.app[STORE].db).set_target(values["storage_group"] or None,
                                                                values["broadcast"] or None,
                                                                values["interface"] or None)
    except ApiError as exc:
        return render_index(request, exc.status, wake_form=values, wake_errors=errors_by_field(exc, WAKE_HINTS))
    which = f"storage group {values['storage_group']}" if values["storage_group"] else "the server default"
    return redirect_after_post("/groups", f"Saved the Wake-on-LAN target of {which}." if setting else
                               f"Removed the Wake-on-LAN target of {which}.")


# --- one group -------------------------------------------------------------------

def render_group(request: web.Request, status: int = 200, **values: Any) -> web.Response:
    store = request.app[STORE]
    try:
        group = host_groups(store).group_detail(request.match_info["name"])
    except NotFound as exc:
        return render(request, "error.html", 404, title="No such group", message=exc.message, back="/groups")
    defaults: dict[str, Any] = {
        "edit_form": {"name": group["name"], "description": group["description"]}, "edit_errors": {},
        "member_form": {"hosts": ""}, "member_errors": {}, "delete_error": "",
        "task_form": dict(EMPTY_TASK_FORM), "task_errors": {}}
    return render(request, "groups_show.html", status, title=f"Group {group['name']}", group=group,
                  url=group_url(group["name"]), task_choices=taskform.choices(store),
                  notice=request.query.get("notice", ""), **{**defaults, **values})


@page()
async def group_page(request: web.Request) -> web.StreamResponse:
    return render_group(request)


@action("admin", "edit host group")
async def edit_group(request: web.Request) -> web.StreamResponse:
    form = await form_text(request)
    values = {"name": form.get("name", ""), "description": form.get("description", "")}
    try:
        group = host_groups(request.app[STORE]).edit_group(request.match_info["name"], values["name"],
                                                           values["description"])
    except ApiError as exc:
        if isinstance(exc, NotFound):
            raise
        return render_group(request, exc.status, edit_form=values, edit_errors=errors_by_field(exc, GROUP_HINTS))
    return redirect_after_post(group_url(group["name"]), f"Saved host group {group['name']}.")


@action("admin", "remove host group")
async def remove_group(request: web.Request) -> web.StreamResponse:
    form = await form_text(request)
    if form.get("confirm") != "yes":
        return render_group(request, 400, delete_error="Tick the box to confirm that this group goes.")
    group = host_groups(request.app[STORE]).remove_group(request.match_info["name"])
    return redirect_after_post("/groups", f"Removed host group {group['name']}; its {group['hosts']} hosts stay.")


@action("admin", "add hosts to group")
async def add_members(request: web.Request) -> web.StreamResponse:
    form = await form_text(request)
    typed = form.get("hosts", "")
    hosts = [h for h in typed.replace(",", " ").split() if h]
    try:
        if not hosts:
            raise Invalid("type the hosts to add (names or MACs, comma-separated)", field="hosts")
        group = host_groups(request.app[STORE]).add_members(request.match_info["name"], hosts)
    except ApiError as exc:
        if isinstance(exc, NotFound) and exc.details.get("field") != "hosts":
            raise
        return render_group(request, exc.status, member_form={"hosts": typed},
                            member_errors=errors_by_field(exc, GROUP_HINTS))
    return redirect_after_post(group_url(group["name"]), f"Group {group['name']} has {group['hosts']} hosts.")


@action("admin", "remove hosts from group")
async def remove_members(request: web.Request) -> web.StreamResponse:
    posted = await request.post()
    hosts = [h for h in posted.getall("host", []) if isinstance(h, str) and h]
    try:
        if not hosts:
            raise Invalid("tick the hosts to take out of the group", field="hosts")
        group = host_groups(request.app[STORE]).remove_members(request.match_info["name"], hosts)
    except ApiError as exc:
        if isinstance(exc, NotFound) and exc.details.get("field") != "hosts":
            raise
        return render_group(request, exc.status, member_errors={"remove": exc.message})
    return redirect_after_post(group_url(group["name"]), f"Took {len(hosts)} host(s) out of group {group['name']}.")


async def read_task_form(request: web.Request) -> tuple[dict[str, str], GroupTask]:
    posted = await request.post()
    values = dict(EMPTY_TASK_FORM)
    for key in EMPTY_TASK_FORM:
        value = posted.get(key)
        if isinstance(value, str):
            values[key] = value.strip()
    values["wake"] = "on" if "1" in posted.getall("wake", ["1"]) else ""  # hidden 0, then the checkbox's 1
    multicast = values["multicast"] == "1"
    fields: dict[str, Any] = {}
    if multicast:
        for key in ("min_receivers", "max_wait"):
            number = whole_number(values[key], key, key.replace("_", " "))
            if number is not None:
                fields[key] = number
        for key in ("rate", "interface"):
            if values[key]:
                fields[key] = values[key]
    type_ = values["type"]
    wanted = GroupTask(type=type_, image=(values["image"] or None) if type_ in ("capture", "deploy") else None,
                       disk=values["disk"] or None, after=values["after"] or "reboot",
                       partition=whole_number(values["partition"], "partition", "partition"),
                       options={"mode": values["mode"]} if type_ == "wipe" else None, multicast=multicast,
                       wake=values["wake"] == "on", multicast_fields=fields, queued_by=request[PRINCIPAL_KEY].actor)
    return values, wanted


@action("technician", "queue task for group")
async def queue_group_task(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    values: dict[str, str] = dict(EMPTY_TASK_FORM)
    try:
        values, wanted = await read_task_form(request)
        answer = await queue_for_group(request.app[STORE], request.app[MULTICAST], name, wanted)
    except ApiError as exc:
        if isinstance(exc, NotFound) and "no host group" in exc.message:
            raise
        return render_group(request, exc.status, task_form=values,
                            task_errors=errors_by_field(exc, {**taskform.TASK_HINTS, "has no hosts": "type",
                                                              "multicast": "multicast"}))
    queued = answer["queued"]
    said = [f"Queued {len(queued)} {wanted.type} task(s)" + (f" in multicast session {answer['session']['id']}"
                                                              if answer["session"] else "") + "."]
    said += [f"Skipped {s['host']}: {s['reason']}." for s in answer["skipped"]]
    said.append(wake_notice(answer["wake"]))
    return redirect_after_post(group_url(name), " ".join(s for s in said if s))


@action("technician", "wake host group")
async def wake_group(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    store = request.app[STORE]
    macs = host_groups(store).member_macs(name)
    if not macs:
        return render_group(request, 400, task_errors={"": f"Group {name} has no hosts to wake."})
    return redirect_after_post(group_url(name), wake_notice(wake_hosts(store, macs)))


@action("technician", "wake host")
async def wake_host(request: web.Request) -> web.StreamResponse:
    store = request.app[STORE]
    host = store.host(request.match_info["name"])
    report = wake_hosts(store, [host["mac"]])
    return redirect_after_post("/hosts/" + urllib.parse.quote(host["name"], safe=""), wake_notice(report))


def routes() -> list[web.RouteDef]:
    return [
        web.get("/groups", groups_index), web.post("/groups", add_group),
        web.post("/groups/wake-targets", set_wake_target),
        web.get("/groups/{name}", group_page), web.post("/groups/{name}/edit", edit_group),
        web.post("/groups/{name}/delete", remove_group), web.post("/groups/{name}/hosts", add_members),
        web.post("/groups/{name}/hosts/remove", remove_members), web.post("/groups/{name}/tasks", queue_group_task),
        web.post("/groups/{name}/wake", wake_group), web.post("/hosts/{name}/wake", wake_host),
    ]
