"""Hosts: the list (search, sort, pages of 50 from SQL), adding one, a host's page (registration, inventory,
its tasks, its boot log, its active task), editing and removing it, and queueing a task for one host or for
all the hosts ticked in the list. Everyone signed in sees them and queues tasks; adding, editing and removing
a host needs an admin."""
from __future__ import annotations

import urllib.parse
from typing import Any

from aiohttp import web

from server_stub.accounts import PRINCIPAL_KEY
from server_stub.appkeys import STORE
from server_stub.console import reports, taskform
from server_stub.console.formdata import errors_by_field, form_text
from server_stub.console.live import task_text
from server_stub.console.render import action, page, redirect_after_post, render
from server_stub.errors import ApiError, Invalid, NotFound
from server_stub.groupqueue import host_groups
from server_stub.store.hosts import HOST_SORTS

PAGE_SIZE = 50
# Store checks that name no field, by what their message says (server_stub/store/validate.py, hosts.py).
HOST_HINTS = {"MAC address": "mac", "host name": "name", "group name": "group", "no image": "image"}
SORT_LABELS = {"name": "Name", "mac": "MAC", "registered": "Registered", "created": "Added", "group": "Group",
               "image": "Image", "task": "Task"}
BOOT_LOG_LINES = 50


def list_query(request: web.Request) -> dict[str, Any]:
    """The list's search, sort, direction and page from the query string; Invalid for ones not offered."""
    query = request.query
    sort = query.get("sort", "name")
    if sort not in HOST_SORTS:
        raise Invalid(f"sort by one of {', '.join(HOST_SORTS)}", field="sort")
    direction = query.get("dir", "asc")
    if direction not in ("asc", "desc"):
        raise Invalid("dir must be asc or desc", field="dir")
    page_text = query.get("page", "1")
    if not page_text.isdigit() or not 1 <= int(page_text) <= 10**9:
        raise Invalid(f"page must be a number from 1, not {page_text!r}", field="page")
    return {"q": query.get("q", "").strip()[:200], "sort": sort, "dir": direction, "page": int(page_text)}


def list_link(params: dict[str, Any], **changes: Any) -> str:
    """The list's URL with some of its parameters changed (a sort resets to page 1)."""
    merged = {**params, **changes}
    return "/hosts?" + urllib.parse.urlencode({k: v for k, v in merged.items() if v not in ("", None)})


async def render_list(request: web.Request, status: int = 200, **values: Any) -> web.Response:
    store = request.app[STORE]
    try:
        params = list_query(request)
        error = ""
    except Invalid as exc:
        params, error, status = {"q": "", "sort": "name", "dir": "asc", "page": 1}, exc.message, 400
    rows, total = store.hosts_page(params["q"], params["sort"], params["dir"] == "desc",
                                   (params["page"] - 1) * PAGE_SIZE, PAGE_SIZE)
    pages = max(1, -(-total // PAGE_SIZE))
    defaults: dict[str, Any] = {
        "add_form": {"mac": "", "name": ""}, "add_errors": {}, "task_form": dict(taskform.EMPTY_FORM),
        "task_errors": {}, "checked": set()}
    return render(request, "hosts_list.html", status, title="Hosts", rows=rows, total=total, pages=pages,
                  params=params, error=error, sorts=SORT_LABELS, link=lambda **c: list_link(params, **c),
                  task_choices=taskform.choices(store), notice=request.query.get("notice", ""),
                  **{**defaults, **values})


@page()
async def hosts_list(request: web.Request) -> web.StreamResponse:
    return await render_list(request)


@action("admin", "add host")
async def add_host(request: web.Request) -> web.StreamResponse:
    form = await form_text(request)
    values = {"mac": form.get("mac", ""), "name": form.get("name", "")}
    try:
        host = request.app[STORE].add_host(values["mac"], values["name"])
    except ApiError as exc:
        return await render_list(request, exc.status, add_form=values, add_errors=errors_by_field(exc, HOST_HINTS))
    return redirect_after_post(host_url(host["name"]), f"Added host {host['name']} ({host['mac']}).")


@action("technician", "queue tasks")
async def queue_for_hosts(request: web.Request) -> web.StreamResponse:
    values, hosts = await taskform.read(request)
    try:
        tasks = taskform.queue(request.app[STORE], values, hosts, request[PRINCIPAL_KEY].actor)
    except ApiError as exc:
        return await render_list(request, exc.status, task_form=values, task_errors=taskform.errors(exc),
                                 checked=set(hosts))
    return redirect_after_post("/hosts", taskform.queued_notice(tasks))


def host_url(name: str) -> str:
    return "/hosts/" + urllib.parse.quote(name, safe="")


def render_host(request: web.Request, status: int = 200, **values: Any) -> web.Response:
    """A host's page; ``values`` carry a refused form back (its fields as typed and its errors)."""
    store = request.app[STORE]
    try:
        host = store.host(request.match_info["name"])
    except NotFound as exc:
        return render(request, "error.html", 404, title="No such host", message=exc.message, back="/hosts")
    active = store.active_task_for_mac(host["mac"])
    defaults: dict[str, Any] = {
        "edit_form": {"name": host["name"], "mac": host["mac"], "image": host["image"] or "",
                      "group": host["group_name"] or ""},
        "edit_errors": {}, "delete_error": "", "task_form": dict(taskform.EMPTY_FORM), "task_errors": {}}
    return render(request, "hosts_detail.html", status, title=f"Host {host['name']}", host=host,
                  inventory=store.inventory(host["mac"]),
                  active=active, active_text=task_text(active) if active else {},
                  boot_log=store.boot_log(host["mac"], BOOT_LOG_LINES),
                  images=store.images(), groups=store.groups(), task_choices=taskform.choices(store),
                  member_of=host_groups(store).groups_of_host(host["mac"]),
                  url=host_url(host["name"]), notice=request.query.get("notice", ""),
                  **reports.history_of(store, host=host["name"]), **{**defaults, **values})


@page()
async def host_page(request: web.Request) -> web.StreamResponse:
    return render_host(request)


@action("admin", "edit host")
async def edit_host(request: web.Request) -> web.StreamResponse:
    form = await form_text(request)
    changes = {key: form.get(key, "") for key in ("name", "mac", "image", "group")}
    try:
        host = request.app[STORE].edit_host(request.match_info["name"], changes)
    except ApiError as exc:
        if isinstance(exc, NotFound) and "field" not in exc.details:
            raise  # the host itself is gone: the error page says so
        return render_host(request, exc.status, edit_form=changes, edit_errors=errors_by_field(exc, HOST_HINTS))
    return redirect_after_post(host_url(host["name"]), f"Saved host {host['name']}.")


@action("admin", "remove host")
async def remove_host(request: web.Request) -> web.StreamResponse:
    form = await form_text(request)
    name = request.match_info["name"]
    if form.get("confirm") != "yes":
        return render_host(request, 400, delete_error="Tick the box to confirm that this host goes.")
    try:
        host = request.app[STORE].remove_host(name)
    except ApiError as exc:
        if isinstance(exc, NotFound):
            raise
        return render_host(request, exc.status, delete_error=exc.message)
    return redirect_after_post("/hosts", f"Removed host {host['name']} ({host['mac']}).")


@action("technician", "queue task")
async def queue_for_host(request: web.Request) -> web.StreamResponse:
    values, _ = await taskform.read(request)
    store = request.app[STORE]
    host = store.host(request.match_info["name"])
    try:
        tasks = taskform.queue(store, values, [host["mac"]], request[PRINCIPAL_KEY].actor)
    except ApiError as exc:
        return render_host(request, exc.status, task_form=values, task_errors=taskform.errors(exc))
    return redirect_after_post(host_url(host["name"]), taskform.queued_notice(tasks))


def routes() -> list[web.RouteDef]:
    return [web.get("/hosts", hosts_list), web.post("/hosts", add_host), web.post("/hosts/queue", queue_for_hosts),
            web.get("/hosts/{name}", host_page), web.post("/hosts/{name}/edit", edit_host),
            web.post("/hosts/{name}/delete", remove_host), web.post("/hosts/{name}/tasks", queue_for_host)]
