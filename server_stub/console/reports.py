"""The Reports page (issue 16): the task history with its filters (host, image, since, until), 50 a page, a link
to the same selection as CSV (GET /api/reports/tasks.csv), and the storage report. ``history_of`` gives a host's
or an image's latest tasks to their own pages (templates/_history.html). Technicians and admins, as the API."""
from __future__ import annotations

import urllib.parse
from typing import Any

from aiohttp import web

from server_stub.appkeys import STORE
from server_stub.console.render import page, render
from server_stub.errors import ApiError
from server_stub.reportsapi import history_filter, reports_of
from server_stub.store import Store
from server_stub.store.reports import HistoryFilter

PAGE_SIZE = 50
DETAIL_ROWS = 50  # a host's or an image's page shows its latest tasks; the Reports page has them all
FILTERS = ("host", "image", "since", "until")


def history_of(store: Store, host: str | None = None, image: str | None = None) -> dict[str, Any]:
    """The template values of _history.html for one host's or one image's page."""
    rows, total = reports_of(store).task_history(HistoryFilter(host=host, image=image), 0, DETAIL_ROWS)
    query = urllib.parse.urlencode({"host": host} if host else {"image": image or ""})
    return {"history": rows, "history_total": total, "history_all": f"/reports?{query}",
            "history_csv": f"/api/reports/tasks.csv?{query}"}


def _field_of(error: ApiError) -> str:
    """The filter a refusal is about: its field, else an unknown image or host by the message."""
    field = error.details.get("field")
    if isinstance(field, str):
        return field
    return "image" if error.message.startswith("no image") else "host"


def _link(filters: dict[str, str], offset: int) -> str:
    query = {k: v for k, v in filters.items() if v}
    if offset:
        query["offset"] = str(offset)
    return "/reports" + ("?" + urllib.parse.urlencode(query) if query else "")


@page()
async def reports_page(request: web.Request) -> web.StreamResponse:
    store = request.app[STORE]
    filters = {k: request.query.get(k, "").strip() for k in FILTERS}
    text = request.query.get("offset", "0")
    values: dict[str, Any] = {"title": "Reports", "filters": filters, "history": [], "history_total": 0,
                              "offset": 0, "newer": "", "older": "", "error": "", "error_field": "",
                              "storage": reports_of(store).storage_report(), "size": PAGE_SIZE}
    try:
        if not (text.isascii() and text.isdigit() and len(text) <= 18):
            raise ApiError("offset must be a whole number, 0 or more", field="offset")
        offset = int(text)
        selection = history_filter(filters)
        rows, total = reports_of(store).task_history(selection, offset, PAGE_SIZE)
    except ApiError as exc:  # a bad filter: said next to its field, the storage report still shown
        return render(request, "reports.html", exc.status, **{**values, "error": exc.message,
                                                             "error_field": _field_of(exc)})
    query = urllib.parse.urlencode({k: v for k, v in filters.items() if v})
    return render(request, "reports.html", **{
        **values, "history": rows, "history_total": total, "offset": offset,
        "newer": _link(filters, max(0, offset - PAGE_SIZE)) if offset > 0 else "",
        "older": _link(filters, offset + PAGE_SIZE) if offset + PAGE_SIZE < total else "",
        "history_csv": "/api/reports/tasks.csv" + (f"?{query}" if query else "")})


def routes() -> list[web.RouteDef]:
    return [web.get("/reports", reports_page)]
