"""The dashboard: what runs now and what waits (with live progress), multicast sessions and their clients,
storage nodes (free space, clients in use), and what failed lately with its reason."""
from __future__ import annotations

import os
from typing import Any, TypedDict

from aiohttp import web

from server_stub.appkeys import STORE
from server_stub.console.live import task_text
from server_stub.console.render import page, render
from server_stub.store.models import StorageNode, Task

ACTIVE_ROWS = 200    # running and queued tasks shown; the rest are a link to the tasks page away
FAILURES = 10        # recent failures shown
LOG_LINES = 8        # a failure's last log lines shown


class NodeView(TypedDict):
    node: StorageNode
    free: int | None     # bytes free in its local rsync target; None: unknown (remote or missing)
    size: int | None


class FailureView(TypedDict):
    task: Task
    code: str
    message: str
    hint: str
    log_tail: str


def node_view(node: StorageNode) -> NodeView:
    """Free space is known only where the node's files are a directory on this server."""
    target = node.get("rsync_target") or ""
    free = size = None
    if target.startswith("/"):
        try:
            fs = os.statvfs(target)
        except OSError:
            pass
        else:
            free, size = fs.f_bavail * fs.f_frsize, fs.f_blocks * fs.f_frsize
    return {"node": node, "free": free, "size": size}


def failure_view(task: Task) -> FailureView:
    error: Any = task.get("error")
    if not isinstance(error, dict):
        error = {"message": str(error)} if error else {}
    log = str(task.get("log") or "")
    return {"task": task, "code": str(error.get("code") or "unknown"), "message": str(error.get("message") or "–"),
            "hint": str(error.get("hint") or ""), "log_tail": "\n".join(log.rstrip().splitlines()[-LOG_LINES:])}


@page()
async def dashboard(request: web.Request) -> web.StreamResponse:
    store = request.app[STORE]
    # Running first, then queued; each newest first.
    active, active_total = store.tasks_page(state="active", sort="state", limit=ACTIVE_ROWS)
    failed, _ = store.tasks_page(state="failed", sort="finished", limit=FAILURES)
    return render(request, "dashboard.html", title="Dashboard", active=active, active_total=active_total,
                  text={t["id"]: task_text(t) for t in active}, sessions=store.active_sessions(),
                  nodes=[node_view(n) for n in store.storage_nodes()], failures=[failure_view(t) for t in failed],
                  notice=request.query.get("notice", ""))


def routes() -> list[web.RouteDef]:
    return [web.get("/", dashboard)]
