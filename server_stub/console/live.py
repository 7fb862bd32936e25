"""Live updates: one server-sent event stream per open console page (``GET /events``).

The store tells the hub which tasks and multicast sessions changed (``Store.on_change``), whoever changed
them (client API, console, menu, multicast runner). The hub gathers the ids and, at most once per
``min_interval`` seconds, loads them in one query and writes ONE ``update`` event, the same bytes to every
open page; with no page open it does nothing at all. A page that reads too slowly is not given a growing
backlog: past ``QUEUE_EVENTS`` unread events it is sent ``stale`` and closed, and its script reloads it
(the page itself is the newest state).

Event ``update``, JSON: ``{"tasks": [TaskUpdate], "sessions": [SessionUpdate]}`` (see task_update,
session_update). How a page shows them: static/console.js (``data-task``/``data-session`` elements).
"""
from __future__ import annotations

import asyncio
import collections
import json
import logging
import threading
from typing import Any

from aiohttp import web

from server_stub.accounts import AUTH
from server_stub.console.render import human_bytes, human_duration
from server_stub.deployfigures import FIGURES, figures_of, figures_text
from server_stub.errors import NotFound
from server_stub.store import Store
from server_stub.store.models import Session, Task

log = logging.getLogger(__name__)

MIN_INTERVAL = 1.0      # seconds between two events at most once: a report reaches a page within ~1 s
HEARTBEAT = 15.0        # a comment line this often, so proxies keep an idle stream open
QUEUE_EVENTS = 16       # unread events a page may have before it is told to reload
MAX_SUBSCRIBERS = 200   # open streams in all
MAX_PER_USER = 20       # open streams of one user (one per tab)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def task_text(task: Task) -> dict[str, str]:
    """How a task's figures read on a page; templates and live updates use the same words."""
    progress = _dict(task.get("progress"))
    percent = progress.get("percent")
    rate = progress.get("rate_bps")
    ratio = progress.get("ratio")
    done, total = progress.get("bytes_done"), progress.get("bytes_total")
    return {
        "percent": f"{percent:.1f} %" if isinstance(percent, (int, float)) else "–",
        "bytes": f"{human_bytes(done)} / {human_bytes(total)}" if progress else "–",
        "rate": f"{human_bytes(rate)}/s" if isinstance(rate, (int, float)) and rate > 0 else "–",
        "eta": human_duration(progress.get("eta_s")) if task["state"] == "running" and progress else "–",
        "stage": str(progress.get("stage") or "–"),
        "ratio": f"{ratio:.2f}×" if isinstance(ratio, (int, float)) else "–",
        # a deploy's reused/fetched/wrote bytes (issue 17): the result's, else the last report's; "" when none
        "figures": figures_text(figures_of(task.get("result"), progress), human_bytes),
    }


def task_update(task: Task) -> dict[str, Any]:
    progress = _dict(task.get("progress"))
    error = _dict(task.get("error"))
    return {"id": task["id"], "state": task["state"], "host": task["host"], "type": task["type"],
            "percent": progress.get("percent"), "bytes_done": progress.get("bytes_done"),
            "bytes_total": progress.get("bytes_total"), "rate_bps": progress.get("rate_bps"),
            "eta_s": progress.get("eta_s"), "stage": progress.get("stage"), "ratio": progress.get("ratio"),
            "error": {"code": error.get("code"), "message": error.get("message")} if error else None,
            **{key: figures_of(task.get("result"), progress).get(key) for key in FIGURES},
            "text": task_text(task)}


def session_update(session: Session) -> dict[str, Any]:
    return {"id": session["id"], "state": session["state"],
            "clients": [{"task_id": c["task_id"], "host": c["host"], "state": c["state"], "reason": c["reason"]}
                        for c in session["clients"]]}


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class Subscriber:
    """One open stream: the events it has not read yet, at most QUEUE_EVENTS of them."""

    def __init__(self, actor: str) -> None:
        self.actor = actor
        self.queue: collections.deque[bytes] = collections.deque()
        self.ready = asyncio.Event()
        self.stale = False   # fell behind: told to reload, then closed
        self.closed = False  # the server is stopping

    def offer(self, event: bytes) -> None:
        if len(self.queue) >= QUEUE_EVENTS:
            self.stale = True
            self.queue.clear()
        elif not self.stale:
            self.queue.append(event)
        self.ready.set()


class LiveHub:
    def __init__(self, store: Store, *, min_interval: float = MIN_INTERVAL, heartbeat: float = HEARTBEAT,
                 max_subscribers: int = MAX_SUBSCRIBERS, max_per_user: int = MAX_PER_USER) -> None:
        self.store = store
        self.min_interval, self.heartbeat = min_interval, heartbeat
        self.max_subscribers, self.max_per_user = max_subscribers, max_per_user
        self.subscribers: list[Subscriber] = []
        self.events_sent = 0  # events built (each written to every subscriber)
        self._tasks: set[int] = set()
        self._sessions: set[int] = set()
        self._changes_lock = threading.Lock()  # notify may run in a worker thread while the pump takes the ids
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._pump: asyncio.Task[None] | None = None
        store.on_change(self.notify)

    def notify(self, kind: str, item_id: int) -> None:
        """The store's listener: called after every change, maybe from a worker thread; cheap."""
        if not self.subscribers or self._loop is None:
            return
        with self._changes_lock:
            (self._tasks if kind == "task" else self._sessions).add(item_id)
        if threading.get_ident() == self._loop_thread:
            self._wake.set()
        else:
            self._loop.call_soon_threadsafe(self._wake.set)

    def subscribe(self, actor: str) -> Subscriber:
        if len(self.subscribers) >= self.max_subscribers:
            raise Refused(503, f"the server has {self.max_subscribers} live pages open already; this page will "
                               "not update by itself (reload it later)")
        if sum(s.actor == actor for s in self.subscribers) >= self.max_per_user:
            raise Refused(429, f"you have {self.max_per_user} console pages open already; close some to get "
                               "live updates on this one")
        subscriber = Subscriber(actor)
        self.subscribers.append(subscriber)
        if self._pump is None:
            self._loop = asyncio.get_running_loop()
            self._loop_thread = threading.get_ident()
            self._pump = self._loop.create_task(self._run())
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        if subscriber in self.subscribers:
            self.subscribers.remove(subscriber)
        if not self.subscribers:
            self._wake.set()  # the pump sees nobody listens and ends

    async def close(self, app: web.Application | None = None) -> None:
        """The server stops: every stream ends now (an open page would otherwise hold the shutdown)."""
        for subscriber in self.subscribers:
            subscriber.closed = True
            subscriber.ready.set()
        if self._pump is not None:
            self._pump.cancel()
            self._pump = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last = -self.min_interval
        while True:
            await self._wake.wait()
            if not self.subscribers:
                self._pump = None
                self._tasks.clear()
                self._sessions.clear()
                self._wake.clear()
                return
            delay = last + self.min_interval - loop.time()
            if delay > 0:  # what changes meanwhile goes into this same event
                await asyncio.sleep(delay)
            self._wake.clear()
            with self._changes_lock:
                tasks, sessions = self._tasks, self._sessions
                self._tasks, self._sessions = set(), set()
            if not (tasks or sessions):
                continue
            last = loop.time()
            try:
                event = self.event(tasks, sessions)
            except Exception:  # a failed read must not end live updates for everyone
                log.exception("live update of tasks %s, sessions %s failed", sorted(tasks), sorted(sessions))
                continue
            self.events_sent += 1
            for subscriber in self.subscribers:
                subscriber.offer(event)

    def event(self, task_ids: set[int], session_ids: set[int]) -> bytes:
        sessions = []
        for session_id in sorted(session_ids):
            try:
                sessions.append(session_update(self.store.session(session_id)))
            except NotFound:  # removed meanwhile
                pass
        body = {"tasks": [task_update(t) for t in self.store.tasks_by_id(sorted(task_ids))], "sessions": sessions}
        return b"event: update\ndata: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


LIVE = web.AppKey("live", LiveHub)


def _plain(status: int, text: str) -> web.Response:
    response = web.Response(status=status, text=text + "\n", content_type="text/plain")
    if status in (429, 503):
        response.headers["Retry-After"] = "60"
    return response


async def events(request: web.Request) -> web.StreamResponse:
    """The stream a page opens (``<main data-live="/events">``): signed-in console sessions only."""
    auth = request.app[AUTH]
    principal = auth.principal(request)
    if principal is None or principal.via != "session":
        return _plain(401, "sign in to the console to get live updates")
    hub = request.app[LIVE]
    try:
        subscriber = hub.subscribe(principal.actor)
    except Refused as refused:
        return _plain(refused.status, refused.message)
    try:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                               "X-Accel-Buffering": "no"})
        await response.prepare(request)
        await response.write(b"retry: 3000\n: live\n\n")
        while not subscriber.closed:
            try:
                await asyncio.wait_for(subscriber.ready.wait(), hub.heartbeat)
            except asyncio.TimeoutError:
                if auth.principal(request) is None:  # signed out meanwhile
                    break
                await response.write(b": keepalive\n\n")
                continue
            subscriber.ready.clear()
            if subscriber.stale:
                await response.write(b"event: stale\ndata: {}\n\n")
                break
            while subscriber.queue:
                await response.write(subscriber.queue.popleft())
        return response
    except ConnectionError:  # the page went away
        return web.Response(status=204)
    finally:
        hub.unsubscribe(subscriber)


def routes() -> list[web.RouteDef]:
    return [web.get("/events", events)]
