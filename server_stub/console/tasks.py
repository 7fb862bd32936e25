"""Tasks: the history (filtered by state, type, host and image, pages of 50 from SQL), queueing any task type
for one host or several (the form the hosts pages share), a task's page (state, progress, error, log, result)
and cancelling it. Technicians may queue and cancel; a cancel that comes too late says so (409), never 500."""
from __future__ import annotations

import time
import urllib.parse
from typing import Any

from aiohttp import web

from contract.vocabulary import QUEUEABLE_TASK_TYPES, TASK_STATES, TaskType
from server_stub.accounts import PRINCIPAL_KEY
from server_stub.appkeys import STORE
from server_stub.console import taskform
from server_stub.console.live import task_text
from server_stub.console.render import action, page, redirect_after_post, render, safe_next
from server_stub.errors import ApiError, Invalid, NotFound

PAGE_SIZE = 50
LOG_LINES = 40
FILTERS = ("state", "type", "host", "image")
TYPES = (*QUEUEABLE_TASK_TYPES, TaskType.MULTICAST.value)


def list_query(request: web.Request) -> dict[str, Any]:
    params: dict[str, Any] = {key: request.query.get(key, "").strip()[:200] for key in FILTERS}
    page_text = request.query.get("page", "1")
    if not page_text.isdigit() or not 1 <= int(page_text) <= 10**9:
        raise Invalid(f"page must be a number from 1, not {page_text!r}", field="page")
    params["page"] = int(page_text)
    return params


def list_link(params: dict[str, Any], **changes: Any) -> str:
    merged = {**params, **changes}
    return "/tasks?" + urllib.parse.urlencode({k: v for k, v in merged.items() if v not in ("", None)})


@page()
async def tasks_list(request: web.Request) -> web.StreamResponse:
    store = request.app[STORE]
    rows: list[Any] = []
    total, status, error = 0, 200, ""
    params: dict[str, Any] = {key: "" for key in FILTERS} | {"page": 1}
    try:
        params = list_query(request)
        rows, total = store.tasks_page(params["state"] or None, params["type"] or None, params["host"] or None,
                                       params["image"] or None, offset=(params["page"] - 1) * PAGE_SIZE,
                                       limit=PAGE_SIZE)
    except ApiError as exc:  # a filter not offered, or a host that is not there
        status, error = exc.status, exc.message
    pages = max(1, -(-total // PAGE_SIZE))
    return render(request, "tasks_list.html", status, title="Tasks", rows=rows, total=total, pages=pages,
                  params=params, error=error, states=("active", *TASK_STATES), types=TYPES,
                  images=store.images(), link=lambda **c: list_link(params, **c), now=time.time(), text_of=task_text,
                  notice=request.query.get("notice", ""))


def render_new(request: web.Request, status: int = 200, **values: Any) -> web.Response:
    form = dict(taskform.EMPTY_FORM)
    form["hosts"] = request.query.get("hosts", "")[:2000]
    if request.query.get("type") in QUEUEABLE_TASK_TYPES:
        form["type"] = request.query["type"]
    defaults: dict[str, Any] = {"task_form": form, "task_errors": {}}
    return render(request, "tasks_new.html", status, title="Queue a task",
                  task_choices=taskform.choices(request.app[STORE]), **{**defaults, **values})


@page()
async def new_task(request: web.Request) -> web.StreamResponse:
    return render_new(request)


@action("technician", "queue tasks")
async def add_tasks(request: web.Request) -> web.StreamResponse:
    values, hosts = await taskform.read(request)
    try:
        tasks = taskform.queue(request.app[STORE], values, hosts, request[PRINCIPAL_KEY].actor)
    except ApiError as exc:
        return render_new(request, exc.status, task_form=values, task_errors=taskform.errors(exc))
    location = f"/tasks/{tasks[0]['id']}" if len(tasks) == 1 else "/tasks?state=active"
    return redirect_after_post(location, taskform.queued_notice(tasks))


def task_id(request: web.Request) -> int:
    text = request.match_info["id"]
    if len(text) > 18:
        raise NotFound(f"no task {text}")
    return int(text)


def render_task(request: web.Request, status: int = 200, **values: Any) -> web.Response:
    try:
        task = request.app[STORE].task(task_id(request))
    except NotFound as exc:
        return render(request, "error.html", 404, title="No such task", message=exc.message, back="/tasks")
    log_lines = (task["log"] or "").splitlines()[-LOG_LINES:]
    ended = task["finished"] or (time.time() if task["state"] == "running" else None)
    took = ended - task["started"] if task["started"] and ended else None
    return render(request, "tasks_detail.html", status, title=f"Task {task['id']}", task=task,
                  log_lines=log_lines, took=took, progress=task["progress"] or {}, error=task["error"] or {},
                  text=task_text(task),
                  notice=request.query.get("notice", ""), **{"cancel_error": "", **values})


@page()
async def task_page(request: web.Request) -> web.StreamResponse:
    return render_task(request)


@action("technician", "cancel task")
async def cancel_task(request: web.Request) -> web.StreamResponse:
    posted = await request.post()
    back = safe_next(str(posted.get("next", "")) or f"/tasks/{request.match_info['id']}")
    try:
        task = request.app[STORE].cancel_task(task_id(request))
    except ApiError as exc:
        if isinstance(exc, NotFound):
            return render_task(request)
        # Already done, failed or canceled (someone else, or the machine, was quicker): say so on its page.
        return render_task(request, exc.status, cancel_error=f"Not canceled: {exc.message}.")
    return redirect_after_post(back, f"Canceled task {task['id']} ({task['type']} on {task['host']}).")


def routes() -> list[web.RouteDef]:
    return [web.get("/tasks", tasks_list), web.post("/tasks", add_tasks), web.get("/tasks/new", new_task),
            web.get("/tasks/{id:\\d+}", task_page), web.post("/tasks/{id:\\d+}/cancel", cancel_task)]
