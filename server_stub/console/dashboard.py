"""The dashboard: what runs now, what waits, and what failed lately."""
from __future__ import annotations

from aiohttp import web

from server_stub.console.render import page, render
from server_stub.appkeys import STORE


@page()
async def dashboard(request: web.Request) -> web.StreamResponse:
    store = request.app[STORE]
    active = store.tasks(include_finished=False)
    return render(request, "dashboard.html", title="Dashboard", active=active,
                  notice=request.query.get("notice", ""))


def routes() -> list[web.RouteDef]:
    return [web.get("/", dashboard)]
