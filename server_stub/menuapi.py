"""The technician's menu on the server: login, the lists it shows, the tasks it creates.

A machine in the imager menu has no task and no token. The technician types a credential (the
technician password, or the admin token); ``POST /api/menu/login`` exchanges it for a session token
bound to the machine's MAC, valid ``SESSION_IDLE`` s after its last use (``SESSION_MAX`` s at most).
Every other menu call carries that session. A session reads the image and group lists, adds an image
(capture to a new image) and creates tasks for its own MAC's host only; each task is an ordinary task
(origin "menu") which the machine then runs with the task's own token, as an unattended boot would.
Failed logins are rate-limited (all machines together). Sessions live in memory: a server restart
ends them (the technician logs in again). Registration (POST /api/register) stays open, as before.
"""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from aiohttp import web

from server_stub import db, menudb, storagedb

log = logging.getLogger(__name__)

SESSION_IDLE = 30 * 60
SESSION_MAX = 8 * 3600
MAX_BODY = 16 * 1024
FAILED_LOGINS_PER_MINUTE = 10


@dataclass
class Session:
    mac: str
    created: float
    used: float
    by: str  # "technician" or "admin": which credential opened it (for the log)


class MenuState:
    def __init__(self, store: db.Store, config: dict) -> None:
        self.store, self.config = store, config
        self.sessions: dict[str, Session] = {}
        self.failures: list[float] = []

    def open(self, mac: str, by: str) -> str:
        now = time.monotonic()
        self.sessions = {t: s for t, s in self.sessions.items() if self._alive(s, now)}
        token = secrets.token_urlsafe(24)
        self.sessions[token] = Session(mac, now, now, by)
        return token

    def session(self, request: web.Request) -> Session:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        now = time.monotonic()
        found = next((s for t, s in self.sessions.items() if hmac.compare_digest(t, given)), None) if given else None
        if found is None or not self._alive(found, now):
            raise web.HTTPUnauthorized(text=json.dumps({"error": "no menu session, or it expired: log in again"}),
                                       content_type="application/json")
        found.used = now
        return found

    def failed_login_allowed(self) -> bool:
        now = time.monotonic()
        self.failures = [t for t in self.failures if now - t < 60]
        return len(self.failures) < FAILED_LOGINS_PER_MINUTE

    @staticmethod
    def _alive(session: Session, now: float) -> bool:
        return now - session.used < SESSION_IDLE and now - session.created < SESSION_MAX


MENU = web.AppKey("menu", MenuState)


async def _body(request: web.Request) -> dict:
    if (request.content_length or 0) > MAX_BODY:
        raise db.Invalid(f"request body larger than {MAX_BODY} bytes")
    data = json.loads(await request.content.read(MAX_BODY + 1) or b"{}")
    if not isinstance(data, dict):
        raise db.Invalid("the request body must be a JSON object")
    return data


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, default=str))


def _host(store: db.Store, mac: str) -> dict | None:
    host = store.find_host_by_mac(mac)
    return {"name": host["name"], "mac": host["mac"], "image": host["image"], "group": host["group_name"]} \
        if host else None


async def login(request: web.Request) -> web.Response:
    state = request.app[MENU]
    body = await _body(request)
    mac = db.normalize_mac(str(body.get("mac", "")))
    password = body.get("password")
    if not isinstance(password, str) or not password:
        raise db.Invalid("give the technician password (or the admin token)")
    if not state.failed_login_allowed():
        return web.json_response({"error": "too many failed logins; wait a minute"}, status=429,
                                 headers={"Retry-After": "60"})
    by = None
    if hmac.compare_digest(password.encode(), state.config["admin_token"].encode()):
        by = "admin"
    else:
        stored = menudb.technician_password(state.store.conn)
        # PBKDF2 takes a moment: off the event loop, so boots and progress reports are not held up.
        if stored and await asyncio.get_running_loop().run_in_executor(
                None, menudb.password_matches, stored, password):
            by = "technician"
    if by is None:
        state.failures.append(time.monotonic())
        log.warning("menu login refused for %s", mac)
        return _json({"error": "wrong password"}, 401)
    log.info("menu login for %s (%s credential)", mac, by)
    return _json({"session": state.open(mac, by), "expires_in": SESSION_IDLE, "host": _host(state.store, mac)})


async def lists(request: web.Request) -> web.Response:
    state = request.app[MENU]
    session = state.session(request)
    store = state.store
    images = [{"name": i["name"], "type": i["type"], "captured": bool(i["captured"]),
               "description": i["description"], "group": i["group_name"]} for i in store.images()]
    host_groups = sorted({h["group_name"] for h in store.hosts() if h.get("group_name")})
    return _json({"images": images, "host_groups": host_groups,
                  "storage_groups": [g["name"] for g in store.groups()], "host": _host(store, session.mac)})


async def add_image(request: web.Request) -> web.Response:
    """Capture to a new image: the image record first, in the named storage group or the only/default one."""
    state = request.app[MENU]
    state.session(request)
    body = await _body(request)
    group = body.get("group")
    if group is None:
        names = [g["name"] for g in state.store.groups()]
        group = names[0] if len(names) == 1 else storagedb.DEFAULT_GROUP if storagedb.DEFAULT_GROUP in names else None
        if group is None:
            raise db.Invalid("several storage groups: name the image's group")
    image = state.store.add_image(body.get("name"), description=str(body.get("description", ""))[:200],
                                  type_=body.get("type", "resizable"), group=group)
    log.info("menu: image %s added (group %s)", image["name"], group)
    return _json({"name": image["name"], "type": image["type"], "group": image["group_name"]}, 201)


async def add_task(request: web.Request) -> web.Response:
    state = request.app[MENU]
    session = state.session(request)
    body = await _body(request)
    unknown = sorted(set(body) - {"type", "image", "disk", "partition", "options"})
    if unknown:
        raise db.Invalid(f"unknown fields: {', '.join(unknown)}")
    host = state.store.find_host_by_mac(session.mac)
    if host is None:
        raise db.NotFound(f"MAC {session.mac} is not registered: register this machine first")
    task = state.store.add_task(host["name"], body.get("type", ""), body.get("image"), disk=body.get("disk"),
                                partition=body.get("partition"), options=body.get("options"), origin="menu")
    log.info("menu: task %d (%s) for %s", task["id"], task["type"], host["name"])
    return _json({"task": {k: v for k, v in task.items() if k != "token"}, "token": task["token"]}, 201)


async def set_technician_password(request: web.Request) -> web.Response:
    """Admin: set (or, with null, remove) the password technicians type at the menu."""
    body = await _body(request)
    try:
        menudb.set_technician_password(request.app[MENU].store.conn, body.get("password"))
    except menudb.Invalid as exc:
        raise db.Invalid(str(exc)) from exc
    return _json({"technician_password": body.get("password") is not None})


def routes(admin_only: Callable[[Callable[[web.Request], Awaitable[web.Response]]], Any]) -> list:
    return [
        web.post("/api/menu/login", login),
        web.get("/api/menu/lists", lists),
        web.post("/api/menu/images", add_image),
        web.post("/api/menu/tasks", add_task),
        web.post("/api/technician-password", admin_only(set_technician_password)),
    ]
