"""HTTP routes of multicast sessions (admin: create, list, show, go, cancel; client: ready)."""
from __future__ import annotations

import json
from typing import Awaitable, Callable

from aiohttp import web

from server_stub import db
from server_stub.multicast import MulticastManager

MULTICAST = web.AppKey("multicast", MulticastManager)
Handler = Callable[[web.Request], Awaitable[web.Response]]


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data, default=str), status=status, content_type="application/json")


async def _body(request: web.Request) -> dict:
    data = await request.json()
    if not isinstance(data, dict):
        raise db.Invalid("the request body must be a JSON object")
    return data


def _int(body: dict, key: str, default: int | None) -> int | None:
    value = body.get(key, default)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise db.Invalid(f"{key} must be a whole number")
    return value


async def create_session(request: web.Request) -> web.Response:
    body = await _body(request)
    hosts = body.get("hosts")
    if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
        raise db.Invalid("hosts must be a list of host names or MACs")
    session = request.app[MULTICAST].create(
        str(body["image"]), hosts, min_receivers=_int(body, "min_receivers", None),
        max_wait=_int(body, "max_wait", 300), rate=body.get("rate"), interface=body.get("interface"),
        disk=body.get("disk"), after=body.get("after", "reboot"))
    return _json(session, 201)


async def list_sessions(request: web.Request) -> web.Response:
    return _json(request.app[MULTICAST].store.sessions())


async def show_session(request: web.Request) -> web.Response:
    return _json(request.app[MULTICAST].store.session(int(request.match_info["id"])))


async def go_session(request: web.Request) -> web.Response:
    return _json(request.app[MULTICAST].go(int(request.match_info["id"])))


async def cancel_session(request: web.Request) -> web.Response:
    return _json(await request.app[MULTICAST].cancel(int(request.match_info["id"])))


def client_ready(authorized: Callable[[web.Request], dict]) -> Handler:
    async def ready(request: web.Request) -> web.Response:
        task = authorized(request)
        return _json(request.app[MULTICAST].ready(task["id"]))
    return ready


def routes(admin_only: Callable[[Handler], Handler], authorized: Callable[[web.Request], dict]) -> list:
    return [
        web.get("/api/multicast", admin_only(list_sessions)), web.post("/api/multicast", admin_only(create_session)),
        web.get("/api/multicast/{id:\\d+}", admin_only(show_session)),
        web.post("/api/multicast/{id:\\d+}/go", admin_only(go_session)),
        web.post("/api/multicast/{id:\\d+}/cancel", admin_only(cancel_session)),
        # A machine, with its task token: its disk is ready; the answer says wait, join or fall back.
        web.post("/api/tasks/{id:\\d+}/ready", client_ready(authorized)),
    ]


async def lifecycle(app: web.Application):
    """Sessions run inside the server's loop; stopping the server stops every udp-sender."""
    app[MULTICAST].start()
    yield
    await app[MULTICAST].close()
