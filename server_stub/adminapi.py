"""Admin API routes for the lists, edits and removals the console and the CLI share (issue 12): hosts and
tasks a page at a time, editing and removing hosts, images (their versions too), storage nodes and groups,
and the server's settings. Each handler calls one Store method; the store checks and refuses.
"""
from __future__ import annotations

from typing import Any, Callable

from aiohttp import web

from server_stub.accounts import AUDIT_TARGET
from server_stub.config import ServerConfig
from server_stub.errors import Invalid
from server_stub.http import Handler, json_response, optional_str, read_json, require_str
from server_stub.store import Store
from server_stub.store.models import Task

Wrap = Callable[[Handler], Handler]


def _public_task(task: Task) -> dict[str, Any]:
    return {k: v for k, v in task.items() if k != "token"}


def _query_int(request: web.Request, key: str, default: int | None) -> int | None:
    text = request.query.get(key)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise Invalid(f"{key} must be a whole number", field=key) from None


def _query_bool(request: web.Request, key: str) -> bool:
    text = request.query.get(key, "0")
    if text not in ("0", "1", "false", "true"):
        raise Invalid(f"{key} must be 0 or 1", field=key)
    return text in ("1", "true")


def _field_str(body: dict[str, Any], key: str) -> str | None:
    """A string or null, its refusal naming the form field."""
    try:
        return optional_str(body, key)
    except Invalid as exc:
        exc.details.setdefault("field", key)
        raise


def _page(rows: list[Any], total: int, offset: int, limit: int | None) -> web.Response:
    return json_response({"rows": rows, "total": total, "offset": offset, "limit": limit})


class AdminApi:
    def __init__(self, store: Store, config: ServerConfig) -> None:
        self.store, self.config = store, config

    # --- hosts -----------------------------------------------------------------

    async def hosts_page(self, request: web.Request) -> web.Response:
        offset, limit = _query_int(request, "offset", 0) or 0, _query_int(request, "limit", 50)
        rows, total = self.store.hosts_page(request.query.get("q", ""), request.query.get("sort", "name"),
                                            _query_bool(request, "desc"), offset, limit)
        return _page(rows, total, offset, limit)

    async def edit_host(self, request: web.Request) -> web.Response:
        """Only the fields present change; image or group null (or "") clears it."""
        body = await read_json(request)
        changes = {key: _field_str(body, key) for key in body}
        return json_response(self.store.edit_host(request.match_info["key"], changes))

    async def remove_host(self, request: web.Request) -> web.Response:
        return json_response(self.store.remove_host(request.match_info["key"]))

    # --- tasks -----------------------------------------------------------------

    async def tasks_page(self, request: web.Request) -> web.Response:
        offset, limit = _query_int(request, "offset", 0) or 0, _query_int(request, "limit", 50)
        query = request.query
        rows, total = self.store.tasks_page(
            state=query.get("state") or None, type_=query.get("type") or None, host=query.get("host") or None,
            image=query.get("image") or None, sort=query.get("sort", "id"),
            descending=_query_bool(request, "desc") if "desc" in query else True, offset=offset, limit=limit)
        return _page([_public_task(t) for t in rows], total, offset, limit)

    # --- images ----------------------------------------------------------------

    async def show_image(self, request: web.Request) -> web.Response:
        """The image, the host whose capture made its current version, and its versions on the local nodes."""
        image = self.store.image(request.match_info["name"])
        return json_response({**image, "source_host": self.store.image_source_host(image["id"]),
                              "versions": self.store.image_versions(image["name"])})

    async def edit_image(self, request: web.Request) -> web.Response:
        """Only the fields present change: description, type and format (what the next capture writes)."""
        body = await read_json(request)
        unknown = sorted(set(body) - {"description", "type", "format"})
        if unknown:
            raise Invalid(f"an image has no editable field {', '.join(unknown)} (description, type, format; "
                          "an image keeps its name and group)", field=unknown[0])
        return json_response(self.store.edit_image(
            request.match_info["name"], description=optional_str(body, "description"),
            type_=optional_str(body, "type"), format_=optional_str(body, "format")))

    async def remove_image(self, request: web.Request) -> web.Response:
        return json_response(self.store.remove_image(request.match_info["name"]))

    async def image_versions(self, request: web.Request) -> web.Response:
        return json_response(self.store.image_versions(request.match_info["name"]))

    async def remove_image_version(self, request: web.Request) -> web.Response:
        removed = self.store.remove_image_version(request.match_info["name"], request.match_info["version"])
        return json_response({"removed": removed})

    async def adopt_images(self, request: web.Request) -> web.Response:
        """The FOG or Clonezilla image directories on a group's master become its images (issue 14)."""
        body = await read_json(request)
        unknown = sorted(set(body) - {"group"})
        if unknown:
            raise Invalid(f"unknown field {unknown[0]} (adopt takes only group)", field=unknown[0])
        group = require_str(body, "group")
        request[AUDIT_TARGET] = group[:100]
        return json_response(self.store.adopt_images(group))

    # --- storage ---------------------------------------------------------------

    async def remove_storage(self, request: web.Request) -> web.Response:
        return json_response(self.store.remove_storage(request.match_info["name"]))

    async def edit_group(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        return json_response(self.store.rename_group(request.match_info["name"], require_str(body, "name")))

    async def remove_group(self, request: web.Request) -> web.Response:
        return json_response(self.store.remove_group(request.match_info["name"]))

    # --- settings --------------------------------------------------------------

    async def show_settings(self, request: web.Request) -> web.Response:
        return json_response(self.store.settings(self.config.unknown_hosts))

    async def set_settings(self, request: web.Request) -> web.Response:
        """The settings present change (today: unknown_hosts; the technician password has its own route)."""
        body = await read_json(request)
        unknown = sorted(set(body) - {"unknown_hosts"})
        if unknown:
            raise Invalid(f"no setting {', '.join(unknown)} (settings: unknown_hosts; the technician password: "
                          "POST /api/technician-password)", field=unknown[0])
        if "unknown_hosts" in body:
            self.store.set_unknown_hosts(require_str(body, "unknown_hosts"))
        return json_response(self.store.settings(self.config.unknown_hosts))

    def routes(self, admin_only: Wrap, read_only: Wrap | None = None) -> list[web.RouteDef]:
        """``read_only`` guards the reads (default: ``admin_only``)."""
        reader = read_only or admin_only
        return [
            web.get("/api/pages/hosts", reader(self.hosts_page)),
            web.post("/api/hosts/{key}", admin_only(self.edit_host)),
            web.delete("/api/hosts/{key}", admin_only(self.remove_host)),
            web.get("/api/pages/tasks", reader(self.tasks_page)),
            web.post("/api/images/adopt", admin_only(self.adopt_images)),
            web.get("/api/images/{name}", reader(self.show_image)),
            web.post("/api/images/{name}", admin_only(self.edit_image)),  # after adopt: its path is not a name
            web.delete("/api/images/{name}", admin_only(self.remove_image)),
            web.get("/api/images/{name}/versions", reader(self.image_versions)),
            web.delete("/api/images/{name}/versions/{version}", admin_only(self.remove_image_version)),
            web.delete("/api/storage/{name}", admin_only(self.remove_storage)),
            web.post("/api/storage-groups/{name}", admin_only(self.edit_group)),
            web.delete("/api/storage-groups/{name}", admin_only(self.remove_group)),
            web.get("/api/settings", reader(self.show_settings)),
            web.post("/api/settings", admin_only(self.set_settings)),
        ]
