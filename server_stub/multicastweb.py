"""HTTP routes of multicast sessions (admin: create, list, show, go, cancel; client: ready)."""
from __future__ import annotations

from typing import AsyncIterator, Callable

from aiohttp import web

from server_stub.accounts import PRINCIPAL_KEY
from server_stub.errors import Invalid
from server_stub.http import (Handler, json_response, optional_int, optional_str, path_id, read_json,
                              require_str, require_str_list)
from server_stub.multicast import MulticastManager
from server_stub.store.models import Task
from server_stub.wol import wake_tasks, wake_wanted

MULTICAST = web.AppKey("multicast", MulticastManager)


async def create_session(request: web.Request) -> web.Response:
    body = await read_json(request)
    rate = body.get("rate")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (str, int))):
        raise Invalid("rate must be bits per second, like 200m or 500000")
    max_wait = optional_int(body, "max_wait", 300)
    if max_wait is None:
        raise Invalid("max_wait is whole seconds ≥ 0")
    wake = wake_wanted(body)  # the session's machines wake, as any queued task's (server_stub/wol.py)
    session = await request.app[MULTICAST].create(
        require_str(body, "image"), require_str_list(body, "hosts"),
        min_receivers=optional_int(body, "min_receivers"), max_wait=max_wait,
        rate=rate, interface=optional_str(body, "interface"), disk=optional_str(body, "disk"),
        after=optional_str(body, "after", "reboot") or "", queued_by=request[PRINCIPAL_KEY].actor)
    if wake:
        store = request.app[MULTICAST].store
        wake_tasks(store, store.tasks_by_id([c["task_id"] for c in session["clients"]]))
    return json_response(session, 201)


async def list_sessions(request: web.Request) -> web.Response:
    return json_response(request.app[MULTICAST].store.sessions())


async def show_session(request: web.Request) -> web.Response:
    return json_response(request.app[MULTICAST].store.session(path_id(request, "multicast session")))


async def go_session(request: web.Request) -> web.Response:
    return json_response(request.app[MULTICAST].go(path_id(request, "multicast session")))


async def cancel_session(request: web.Request) -> web.Response:
    return json_response(await request.app[MULTICAST].cancel(path_id(request, "multicast session")))


def client_ready(authorized: Callable[[web.Request], Task]) -> Handler:
    async def ready(request: web.Request) -> web.Response:
        task = authorized(request)
        return json_response(await request.app[MULTICAST].ready(task["id"]))
    return ready


def routes(staff: Callable[[Handler], Handler],
           authorized: Callable[[web.Request], Task]) -> list[web.RouteDef]:
    """``staff``: who may run sessions (a technician starts, goes and cancels them like any task)."""
    return [
        web.get("/api/multicast", staff(list_sessions)), web.post("/api/multicast", staff(create_session)),
        web.get("/api/multicast/{id:\\d+}", staff(show_session)),
        web.post("/api/multicast/{id:\\d+}/go", staff(go_session)),
        web.post("/api/multicast/{id:\\d+}/cancel", staff(cancel_session)),
        # A machine, with its task token: its disk is ready; the answer says wait, join or fall back.
        web.post("/api/tasks/{id:\\d+}/ready", client_ready(authorized)),
    ]


async def lifecycle(app: web.Application) -> AsyncIterator[None]:
    """Sessions run inside the server's loop; stopping the server stops every udp-sender."""
    app[MULTICAST].start()
    yield
    await app[MULTICAST].close()
