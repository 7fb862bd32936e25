"""The technician's menu on the server: login, the lists it shows, the tasks it creates.

A machine in the imager menu has no task and no token. The technician types a credential (the
technician password, or the admin token); ``POST /api/menu/login`` exchanges it for a session token
bound to the machine's MAC, valid ``SESSION_IDLE`` s after its last use (``SESSION_MAX`` s at most).
Every other menu call carries that session. A session reads the image and group lists, adds an image
(capture to a new image) and creates tasks for its own MAC's host only; each task is an ordinary task
(origin "menu") which the machine then runs with the task's own token, as an unattended boot would.
A session answers only the address it was opened from, and a call naming another MAC is refused (403).
Login attempts are counted per MAC and per source address *before* the password is checked, in the
database (store/limits.py): concurrent guesses past the limit are refused unchecked, and a restart keeps
the count; registrations (POST /api/register) are counted the same way (``limit_registration``).
Sessions live in memory: a server restart ends them (the technician logs in again).
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import secrets
import sqlite3
import time
from dataclasses import dataclass
from typing import Callable

from aiohttp import web

from server_stub.config import ServerConfig
from server_stub.errors import Forbidden, Invalid, NotFound, RateLimited, Unauthorized
from server_stub.http import (Handler, bearer_token, json_response, optional_int, optional_object, optional_str,
                              read_json, same_secret)
from server_stub.store import Store
from server_stub.store.limits import AttemptLimits, Limit, Taken
from server_stub.store.menu import password_matches
from server_stub.store.storage import DEFAULT_GROUP
from server_stub.store.validate import normalize_mac

log = logging.getLogger(__name__)

SESSION_IDLE = 30 * 60
SESSION_MAX = 8 * 3600
MAX_BODY = 16 * 1024
LIMIT_WINDOW = 60.0
LOGINS_PER_MAC = 10              # attempts (right or wrong) per LIMIT_WINDOW; a right one is given back
LOGINS_PER_ADDRESS = 20
REGISTRATIONS_PER_MAC = 5        # every attempt counts (each may write)
REGISTRATIONS_PER_ADDRESS = 10   # and all machines together: serve --register-rate
PASSWORD_CHECKS_AT_ONCE = 2      # PBKDF2 in worker threads: a burst cannot take every core


@dataclass
class Session:
    mac: str
    address: str | None  # where the login came from: the session answers no other address
    created: float
    used: float
    by: str  # "technician" or "admin": which credential opened it (for the log)


class MenuState:
    def __init__(self, store: Store, config: ServerConfig) -> None:
        self.store, self.config = store, config
        self.sessions: dict[str, Session] = {}
        self.limits = AttemptLimits(store.db)
        self._checking = asyncio.Semaphore(PASSWORD_CHECKS_AT_ONCE)

    def open(self, mac: str, address: str | None, by: str) -> str:
        now = time.monotonic()
        self.sessions = {t: s for t, s in self.sessions.items() if self._alive(s, now)}
        token = secrets.token_urlsafe(24)
        self.sessions[token] = Session(mac, address, now, now, by)
        return token

    def session(self, request: web.Request) -> Session:
        """The caller's live session; 401 also from another address than the login's."""
        given = bearer_token(request)
        now = time.monotonic()
        found = next((s for t, s in self.sessions.items() if same_secret(given, t)), None) if given else None
        if found is None or not self._alive(found, now) or found.address != request.remote:
            raise Unauthorized("no menu session, or it expired: log in again")
        found.used = now
        return found

    @staticmethod
    def same_machine(session: Session, named: object) -> None:
        """A call that names a machine (``mac``) must name the session's own: 403 otherwise."""
        if named is not None and normalize_mac(str(named)) != session.mac:
            raise Forbidden(f"this menu session acts for {session.mac} only (the machine that logged in)")

    def take(self, limits: list[Limit], message: str) -> Taken:
        """Count one attempt under every limit before the work it guards, or refuse it (429)."""
        try:
            taken = self.limits.take(limits)
        except sqlite3.Error as exc:  # a full data disk: an attempt that cannot be counted is not made
            log.error("cannot count an attempt (%s): refused", exc)
            raise RateLimited("the server cannot count attempts right now; try again shortly", retry_after=10) from None
        if taken.retry_after:
            raise RateLimited(message, retry_after=taken.retry_after)
        return taken

    async def check_password(self, password: str) -> str | None:
        """Which credential ``password`` is ("admin", "technician"), or None."""
        if same_secret(password, self.config.admin_token):
            return "admin"
        stored = self.store.technician_password()
        if stored is None:
            return None
        # PBKDF2 takes a moment: off the event loop (boots and progress reports go on), a few at once.
        async with self._checking:
            matches: bool = await asyncio.to_thread(password_matches, stored, password)
        return "technician" if matches else None

    @staticmethod
    def _alive(session: Session, now: float) -> bool:
        return now - session.used < SESSION_IDLE and now - session.created < SESSION_MAX


MENU = web.AppKey("menu", MenuState)


def _host(store: Store, mac: str) -> dict | None:
    host = store.find_host_by_mac(mac)
    return {"name": host["name"], "mac": host["mac"], "image": host["image"], "group": host["group_name"]} \
        if host else None


def address_key(remote: str | None) -> str:
    """The source a limit counts: an IPv4 address, or an IPv6 address's /64 (one host may hold the prefix)."""
    try:
        address = ipaddress.ip_address(remote or "")
    except ValueError:
        return str(remote)
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


async def login(request: web.Request) -> web.Response:
    state = request.app[MENU]
    body = await read_json(request, MAX_BODY)
    mac = normalize_mac(str(body.get("mac", "")))
    password = body.get("password")
    if not isinstance(password, str) or not password:
        raise Invalid("give the technician password (or the admin token)")
    taken = state.take([Limit(f"menu-mac:{mac}", LOGINS_PER_MAC, LIMIT_WINDOW),
                        Limit(f"menu-addr:{address_key(request.remote)}", LOGINS_PER_ADDRESS, LIMIT_WINDOW)],
                       "too many login attempts from this machine or address; wait a minute")
    by = await state.check_password(password)
    if by is None:
        log.warning("menu login refused for %s from %s", mac, request.remote)
        raise Unauthorized("wrong password")
    state.limits.give_back(taken)
    log.info("menu login for %s from %s (%s credential)", mac, request.remote, by)
    return json_response({"session": state.open(mac, request.remote, by), "expires_in": SESSION_IDLE,
                          "host": _host(state.store, mac)})


def limit_registration(request: web.Request, mac: object, per_minute: int) -> None:
    """Count a registration per MAC, per address and for all machines (``per_minute``) before it is made."""
    state = request.app[MENU]
    state.take([Limit(f"register-mac:{normalize_mac(str(mac))}", REGISTRATIONS_PER_MAC, LIMIT_WINDOW),
                Limit(f"register-addr:{address_key(request.remote)}", REGISTRATIONS_PER_ADDRESS, LIMIT_WINDOW),
                Limit("register-all", per_minute, LIMIT_WINDOW)],
               "too many registrations; try again shortly")


async def lists(request: web.Request) -> web.Response:
    state = request.app[MENU]
    session = state.session(request)
    state.same_machine(session, request.query.get("mac"))
    store = state.store
    images = [{"name": i["name"], "type": i["type"], "captured": bool(i["captured"]),
               "description": i["description"], "group": i["group_name"]} for i in store.images()]
    host_groups = sorted({group for h in store.hosts() if (group := h["group_name"])})
    return json_response({"images": images, "host_groups": host_groups,
                          "storage_groups": [g["name"] for g in store.groups()], "host": _host(store, session.mac)})


async def add_image(request: web.Request) -> web.Response:
    """Capture to a new image: the image record first, in the named storage group or the only/default one."""
    state = request.app[MENU]
    session = state.session(request)
    body = await read_json(request, MAX_BODY)
    state.same_machine(session, body.get("mac"))
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
    state.same_machine(session, body.get("mac"))
    unknown = sorted(set(body) - {"mac", "type", "image", "disk", "partition", "options"})  # mac: the session's
    if unknown:
        raise Invalid(f"unknown fields: {', '.join(unknown)}")
    host = state.store.find_host_by_mac(session.mac)
    if host is None:
        raise NotFound(f"MAC {session.mac} is not registered: register this machine first")
    task = state.store.add_task(host["name"], optional_str(body, "type", "") or "", optional_str(body, "image"),
                                disk=optional_str(body, "disk"), partition=optional_int(body, "partition"),
                                options=optional_object(body, "options"), origin="menu",
                                queued_by=f"menu ({session.by} password)")
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
