"""The audit log page (admins only, like the API's GET /api/audit): who did what, when, with what outcome;
newest first, a page at a time, filtered by who. Admin-only because it lists every account's actions, the
addresses they came from and the names typed at failed sign-ins."""
from __future__ import annotations

import urllib.parse

from aiohttp import web

from server_stub.appkeys import STORE
from server_stub.console.render import page, render
from server_stub.errors import ApiError

PAGE_SIZE = 50


def _link(offset: int, actor: str) -> str:
    query = {k: v for k, v in (("actor", actor), ("offset", str(offset))) if v and v != "0"}
    return "/audit" + ("?" + urllib.parse.urlencode(query) if query else "")


@page("admin")
async def audit_log(request: web.Request) -> web.StreamResponse:
    actor = request.query.get("actor", "").strip()
    text = request.query.get("offset", "0")
    offset = int(text) if text.isdigit() else -1
    if offset < 0:  # a hand-made URL: say so, show the first page
        return render(request, "audit_log.html", 400, title="Audit log", rows=[], total=0, offset=0, actor=actor,
                      size=PAGE_SIZE, newer="", older="", error="offset must be a whole number, 0 or more")
    try:
        rows, total = request.app[STORE].accounts.audit_page(offset, PAGE_SIZE, actor or None)
    except ApiError as exc:
        return render(request, "audit_log.html", exc.status, title="Audit log", rows=[], total=0, offset=0,
                      actor=actor, size=PAGE_SIZE, newer="", older="", error=exc.message)
    newer = _link(max(0, offset - PAGE_SIZE), actor) if offset > 0 else ""
    older = _link(offset + PAGE_SIZE, actor) if offset + PAGE_SIZE < total else ""
    return render(request, "audit_log.html", title="Audit log", rows=rows, total=total, offset=offset, actor=actor,
                  size=PAGE_SIZE, newer=newer, older=older, error="")


def routes() -> list[web.RouteDef]:
    return [web.get("/audit", audit_log)]
