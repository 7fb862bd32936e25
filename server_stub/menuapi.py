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
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Callable

from aiohttp import web

from server_stub.config import ServerConfig
from server_stub.errors import Invalid, NotFound, RateLimited, Unauthorized
from server_stub.http import (Handler, RateLimit, bearer_token, json_response, optional_int, optional_object,
                              optional_str, read_json)
from server_stub.store import Store
from server_stub.store.menu import password_matches
from server_stub.store.storage import DEFAULT_GROUP
from server_stub.store.validate import normalize_mac

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
    def __init__(self, store: Store, config: ServerConfig) -> None:
        self.store, self.config = store, config
        self.sessions: dict[str, Session] = {}
        self.failed_logins = RateLimit(FAILED_LOGINS_PER_MINUTE)

    def open(self, mac: str, by: str) -> str:
        now = time.monotonic()
        self.sessions = {t: s for t, s in self.sessions.items() if self._alive(s, now)}
        token = secrets.token_urlsafe(24)
        self.sessions[token] = Session(mac, now, now, by)
        return token

    def session(self, request: web.Request) -> Session:
        given = bearer_token(request)
        now = time.monotonic()
        found = next((s for t, s in self.sessions.items() if hmac.compare_digest(t, given)), None) if given else None
        if found is None or not self._alive(found, now):
            raise Unauthorized("no menu session, or it expired: log in again")
        found.used = now
        return found

    @staticmethod
    def _alive(session: Session, now: float) -> bool:
        return now - session.used < SESSION_IDLE and now - session.created < SESSION_MAX


MENU = web.AppKey("menu", MenuState)


def _host(store: Store, mac: str) -> dict | None:
    host = store.find_host_by_mac(mac)
    return {"name": host["name"], "mac": host["mac"], "image": host["image"], "group": host["group_name"]} \
        if host else None


async def login(request: web.Request) -> web.Response:
    state = request.app[MENU]
    body = await read_json(request, MAX_BODY)
    mac = normalize_mac(str(body.get("mac", "")))
    password = body.get("password")
    if not isinstance(password, str) or not password:
        raise Invalid("give the technician password (or the admin token)")
    if state.failed_logins.full():
        raise RateLimited("too many failed logins; wait a minute", retry_after=60)
    by = None
    if hmac.compare_digest(password.encode(), state.config.admin_token.encode()):
        by = "admin"
    else:
        stored = state.store.technician_password()
        # PBKDF2 takes a moment: off the event loop, so boots and progress reports are not held up.
        if stored is not None:
            matches: bool = await asyncio.to_thread(password_matches, stored, password)
            by = "technician" if matches else None
    if by is None:
        state.failed_logins.record()
        log.warning("menu login refused for %s", mac)
        raise Unauthorized("wrong password")
    log.info("menu login for %s (%s credential)", mac, by)
    return json_response({"session": state.open(mac, by), "expires_in": SESSION_IDLE,
                          "host": _host(state.store, mac)})


async def lists(request: web.Request) -> web.Response:
    state = request.app[MENU]
    session = state.session(request)
    store = state.store
    images = [{"name": i["name"], "type": i["type"], "captured": bool(i["captured"]),
               "description": i["description"], "group": i["group_name"]} for i in store.images()]
    host_groups = sorted({group for h in store.hosts() if (group := h["group_name"])})
    return json_response({"images": images, "host_groups": host_groups,
                          "storage_groups": [g["name"] for g in store.groups()], "host": _host(store, session.mac)})


async def add_image(request: web.Request) -> web.Response:
    """Capture to a new image: the image record first, in the named storage group or the only/default one."""
    state = request.app[MENU]
    state.session(request)
    body = await read_json(request, MAX_BODY)
    group = optional_str(body, "group")
    if group is None:
        names = [g["name"] for g in state.store.groups()]
        group = names[0] if len(names) == 1 else DEFAULT_GROUP if DEFAULT_GROUP in names else None
        if group is None:
            raise Invalid("several storage groups: name the image's group")
    image = state.store.add_image(optional_str(body, "name") or "",
                                  description=(optional_str(body, "description", "") or "")[:200],
                                  type_=optional_str(body, "type", "resizable") or "", group=group)
    log.info("menu: image %s added (group %s)", image["name"], group)
    return json_response({"name": image["name"], "type": image["type"], "group": image["group_name"]}, 201)


async def add_task(request: web.Request) -> web.Response:
    state = request.app[MENU]
    session = state.session(request)
    body = await read_json(request, MAX_BODY)
    unknown = sorted(set(body) - {"type", "image", "disk", "partition", "options"})
    if unknown:
        raise Invalid(f"unknown fields: {', '.join(unknown)}")
    host = state.store.find_host_by_mac(session.mac)
    if host is None:
        raise NotFound(f"MAC {session.mac} is not registered: register this machine first")
    task = state.store.add_task(host["name"], optional_str(body, "type", "") or "", optional_str(body, "image"),
                                disk=optional_str(body, "disk"), partition=optional_int(body, "partition"),
                                options=optional_object(body, "options"), origin="menu")
    log.info("menu: task %d (%s) for %s", task["id"], task["type"], host["name"])
    return json_response({"task": {k: v for k, v in task.items() if k != "token"}, "token": task["token"]}, 201)


async def set_technician_password(request: web.Request) -> web.Response:
    """Admin: set (or, with null, remove) the password technicians type at the menu."""
    body = await read_json(request, MAX_BODY)
    password = optional_str(body, "password")
    request.app[MENU].store.set_technician_password(password)
    return json_response({"technician_password": password is not None})


def routes(admin_only: Callable[[Handler], Handler]) -> list[web.RouteDef]:
    return [
        web.post("/api/menu/login", login),
        web.get("/api/menu/lists", lists),
        web.post("/api/menu/images", add_image),
        web.post("/api/menu/tasks", add_task),
        web.post("/api/technician-password", admin_only(set_technician_password)),
    ]
