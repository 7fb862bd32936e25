"""The console's "Collect unused chunks" button of a storage node (issue 17): the same run as
``POST /api/storage/nodes/{name}/gc`` (server_stub/chunkgcapi.py), its report shown on a page of its own.
Admins only, audited by ``action``; a refusal (not local, a run under way, an unreadable index) is shown with its
reason."""
from __future__ import annotations

from aiohttp import web

from server_stub.chunkgcapi import COLLECTOR
from server_stub.console.render import action, render


@action("admin", "collect unused chunks")
async def collect_node(request: web.Request) -> web.StreamResponse:
    report = await request.app[COLLECTOR].run(request.match_info["name"])
    return render(request, "storage_gc.html", title=f"Unused chunks of {report['node']}", report=report)


def routes() -> list[web.RouteDef]:
    return [web.post("/storage/nodes/{name}/gc", collect_node)]
