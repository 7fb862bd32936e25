"""HTTP routes of the history and reports (issue 16), read only, for technicians and admins:

- ``GET /api/reports/tasks?host=&image=&since=&until=&offset=&limit=``: a page of the task history
  (``{"rows", "total", "offset", "limit"}``, at most 1000 rows a page, default 100);
- ``GET /api/reports/tasks.csv?host=&image=&since=&until=``: the whole selection as CSV (server_stub/reports_csv.py),
  at most MAX_EXPORT_ROWS rows, else 400 saying how to narrow it;
- ``GET /api/reports/storage``: images, their versions, stored size, free space per node.
"""
from __future__ import annotations

import asyncio
import re
from typing import Callable, Mapping

from aiohttp import web

from server_stub.appkeys import STORE
from server_stub.errors import Invalid
from server_stub.http import Handler, json_response
from server_stub.reports_csv import MEDIA_TYPE, history_csv
from server_stub.store import Store
from server_stub.store.reports import HistoryFilter, Reports, parse_when

DEFAULT_PAGE = 100


def reports_of(store: Store) -> Reports:
    return Reports(store.db, store.hosts_repo, store.versions_repo)


def history_filter(query: Mapping[str, str]) -> HistoryFilter:
    """The query's host, image, since and until (empty ones ignored); a bad time: 400 naming the field."""
    return HistoryFilter(host=query.get("host") or None, image=query.get("image") or None,
                         since=parse_when(query.get("since"), "since"),
                         until=parse_when(query.get("until"), "until", end_of_day=True))


def _whole(query: Mapping[str, str], key: str, default: int) -> int:
    text = query.get(key) or ""
    if not text:
        return default
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise Invalid(f"{key} must be a whole number ≥ 0", field=key)
    return int(text)


def csv_name(selection: HistoryFilter) -> str:
    """The download's file name: tasks[-host][-image].csv, only safe characters."""
    parts = ["tasks", *(p for p in (selection.host, selection.image) if p)]
    return re.sub(r"[^A-Za-z0-9._-]", "_", "-".join(parts))[:100] + ".csv"


async def task_history(request: web.Request) -> web.Response:
    offset, limit = _whole(request.query, "offset", 0), _whole(request.query, "limit", DEFAULT_PAGE)
    rows, total = reports_of(request.app[STORE]).task_history(history_filter(request.query), offset, limit)
    return json_response({"rows": rows, "total": total, "offset": offset, "limit": limit})


async def task_history_csv(request: web.Request) -> web.Response:
    selection = history_filter(request.query)
    rows = reports_of(request.app[STORE]).history_export(selection)
    text = await asyncio.to_thread(history_csv, rows)  # ~0.14 s for 10,000 rows: off the event loop
    return web.Response(text=text, content_type=MEDIA_TYPE, charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{csv_name(selection)}"'})


async def storage_report(request: web.Request) -> web.Response:
    return json_response(reports_of(request.app[STORE]).storage_report())


def routes(read_only: Callable[[Handler], Handler]) -> list[web.RouteDef]:
    """``read_only``: who may read reports (technicians and admins)."""
    return [web.get("/api/reports/tasks", read_only(task_history)),
            web.get("/api/reports/tasks.csv", read_only(task_history_csv)),
            web.get("/api/reports/storage", read_only(storage_report))]
