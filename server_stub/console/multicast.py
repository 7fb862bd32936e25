"""Multicast: the sessions (one image sent to many machines at once), each client's state and why, and
starting, sending now ("go") and cancelling one. Technicians may do all of it, as with any task."""
from __future__ import annotations

from typing import Mapping

from aiohttp import web

from contract.vocabulary import AFTER_VALUES
from server_stub.accounts import PRINCIPAL_KEY
from server_stub.appkeys import STORE
from server_stub.console.formdata import errors_by_field, whole_number
from server_stub.console.render import action, page, redirect_after_post, render
from server_stub.errors import ApiError, Invalid
from server_stub.http import path_id
from server_stub.multicastweb import MULTICAST
from server_stub.wol import wake_tasks

# Checks that name no field, by what their message says; first match wins.
SESSION_HINTS = {"min_receivers": "min_receivers", "max_wait": "max_wait", "rate": "rate", "interface": "interface",
                 "host": "hosts", "disk selector": "disk", "after must": "after", "image": "image",
                 "rsync-target": "image"}
DEFAULT_MAX_WAIT = 300


def _index_page(request: web.Request, status: int = 200, errors: Mapping[str, str] | None = None,
                values: Mapping[str, str | list[str]] | None = None) -> web.Response:
    store = request.app[STORE]
    sessions = sorted(store.sessions(), key=lambda s: -s["id"])
    return render(request, "multicast_index.html", status, title="Multicast", sessions=sessions,
                  images=[i for i in store.images() if i["captured"]], hosts=store.hosts(), afters=AFTER_VALUES,
                  errors=errors or {}, values=values or {"max_wait": str(DEFAULT_MAX_WAIT)},
                  notice=request.query.get("notice", ""))


@page()
async def sessions_index(request: web.Request) -> web.StreamResponse:
    return _index_page(request)


def chosen_hosts(picked: list[str], typed: str) -> list[str]:
    """The hosts picked in the list, then those typed (names or MACs, comma- or space-separated)."""
    return [*picked, *(h for h in typed.replace(",", " ").split() if h)]


@action("technician", "start multicast session")
async def start_session(request: web.Request) -> web.StreamResponse:
    posted = await request.post()
    fields = {k: str(v).strip() for k, v in posted.items() if k not in ("csrf", "hosts")}
    picked = [str(h) for h in posted.getall("hosts", [])]
    values: dict[str, str | list[str]] = {**fields, "hosts": picked}
    try:
        hosts = chosen_hosts(picked, fields.get("hosts_text", ""))
        if not hosts:
            raise Invalid("pick the hosts to deploy (or type their names)", field="hosts")
        max_wait = whole_number(fields.get("max_wait", ""), "max_wait", "max wait")
        session = await request.app[MULTICAST].create(
            fields.get("image", ""), hosts,
            min_receivers=whole_number(fields.get("min_receivers", ""), "min_receivers", "min receivers"),
            max_wait=DEFAULT_MAX_WAIT if max_wait is None else max_wait, rate=fields.get("rate") or None,
            interface=fields.get("interface") or None, disk=fields.get("disk") or None,
            after=fields.get("after") or "reboot", queued_by=request[PRINCIPAL_KEY].actor)
    except ApiError as exc:
        return _index_page(request, exc.status, errors_by_field(exc, SESSION_HINTS), values)
    if "1" in posted.getall("wake", ["1"]):  # a hidden 0, then the ticked box's 1 (server_stub/wol.py)
        store = request.app[STORE]
        wake_tasks(store, store.tasks_by_id([c["task_id"] for c in session["clients"]]))
    return redirect_after_post(f"/multicast/{session['id']}",
                               f"Session {session['id']} waits for {len(session['clients'])} machines: boot them "
                               "from the network.")


def _session_id(request: web.Request) -> int:
    return path_id(request, "multicast session")


def _session_page(request: web.Request, session_id: int, status: int = 200, error: str = "") -> web.Response:
    session = request.app[STORE].session(session_id)
    return render(request, "multicast_show.html", status, title=f"Multicast session {session_id}", session=session,
                  error=error, notice=request.query.get("notice", ""))


@page()
async def show_session(request: web.Request) -> web.StreamResponse:
    return _session_page(request, _session_id(request))


@action("technician", "multicast go")
async def go_session(request: web.Request) -> web.StreamResponse:
    session_id = _session_id(request)
    try:
        request.app[MULTICAST].go(session_id)
    except ApiError as exc:
        if exc.status == 404:
            raise
        return _session_page(request, session_id, exc.status, exc.message)
    return redirect_after_post(f"/multicast/{session_id}",
                               f"Session {session_id} sends as soon as one machine is ready.")


@action("technician", "cancel multicast session")
async def cancel_session(request: web.Request) -> web.StreamResponse:
    session_id = _session_id(request)
    try:
        await request.app[MULTICAST].cancel(session_id)
    except ApiError as exc:
        if exc.status == 404:
            raise
        return _session_page(request, session_id, exc.status, exc.message)
    return redirect_after_post(f"/multicast/{session_id}", f"Session {session_id} canceled with its tasks.")


def routes() -> list[web.RouteDef]:
    return [
        web.get("/multicast", sessions_index),
        web.post("/multicast", start_session),
        web.get("/multicast/{id:\\d+}", show_session),
        web.post("/multicast/{id:\\d+}/go", go_session),
        web.post("/multicast/{id:\\d+}/cancel", cancel_session),
    ]
