"""The Setup page (issue 16): what ``imager-server init`` prints (DHCP per client architecture, NFS export,
firewall ports) for this server's address, to copy into the site's DHCP, NFS and firewall. A GET form picks
the address, the clients' network, the images directory and Secure Boot; a bad value is said next to its field.
Technicians and admins, as GET /api/setup."""
from __future__ import annotations

from typing import Any

from aiohttp import web

from server_stub.appkeys import CONFIG
from server_stub.console.render import page, render
from server_stub.errors import ApiError
from server_stub.setupapi import local_address_of, settings_for

FIELDS = ("server_ip", "clients", "images_dir", "secure_boot")


@page()
async def setup_page(request: web.Request) -> web.StreamResponse:
    form = {key: request.query.get(key, "").strip() for key in FIELDS}
    values: dict[str, Any] = {"title": "Setup", "form": form, "settings": None, "error": "", "error_field": ""}
    try:
        settings = await settings_for(request.query, request.app[CONFIG], local_address_of(request))
    except ApiError as exc:
        field = exc.details.get("field")
        return render(request, "setup.html", exc.status, **{**values, "error": exc.message,
                                                           "error_field": field if isinstance(field, str) else ""})
    return render(request, "setup.html", **{**values, "settings": settings})


def routes() -> list[web.RouteDef]:
    return [web.get("/setup", setup_page)]
