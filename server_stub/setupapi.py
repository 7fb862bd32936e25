"""``GET /api/setup``: the settings ``imager-server init`` prints (sitesettings.py), for the console's Setup page
and scripts; read only, technicians and admins (nothing in it is secret: addresses, ports, the service's ids).

    GET /api/setup?server_ip=&clients=&images_dir=&secure_boot=1

The server's address: ``server_ip``, else the host of ``serve --public-url`` when it is an IPv4 address, else the
address the request came in on (not loopback: the clients cannot reach that). The HTTP port is the one serve
listens on; the NFS squash ids are the server process's own (the service's user when installed).
"""
from __future__ import annotations

import asyncio
import ipaddress
import os
import time
import urllib.parse
from typing import Any, Callable, Mapping

from aiohttp import web

from server_stub import siteinit, sitesettings
from server_stub.appkeys import CONFIG
from server_stub.config import ServerConfig
from server_stub.errors import Invalid
from server_stub.http import Handler, json_response

FIELD_OF_OPTION = {"--server-ip": "server_ip", "--clients": "clients", "--images-dir": "images_dir",
                   "--http-port": "http_port"}
MAX_FIELD = 200  # a longer value is no address, network or path
NETWORKS_FRESH_FOR = 10.0  # seconds one `ip -j -4 addr` answers for: a page reloaded in a loop starts no process each
_networks: tuple[float, str] = (float("-inf"), "[]")
_networks_lock = asyncio.Lock()


async def local_networks() -> str:
    global _networks
    async with _networks_lock:  # one `ip` at a time, whoever asks
        if time.monotonic() - _networks[0] > NETWORKS_FRESH_FOR:
            _networks = (time.monotonic(), await asyncio.to_thread(siteinit.local_networks))
        return _networks[1]


def default_server_ip(config: ServerConfig, local_address: str | None) -> str | None:
    """The public URL's host if it is an IPv4 address, else the connection's own address if clients can reach it."""
    for candidate in (urllib.parse.urlsplit(config.public_url).hostname or "", local_address or ""):
        try:
            address = ipaddress.ip_address(candidate)
        except ValueError:
            continue
        if isinstance(address, ipaddress.IPv4Address) and not address.is_loopback:
            return str(address)
    return None


def _field(query: Mapping[str, str], key: str) -> str | None:
    value = query.get(key, "").strip()
    if len(value) > MAX_FIELD:
        raise Invalid(f"{key}: at most {MAX_FIELD} characters", field=key)
    return value or None


async def settings_for(query: Mapping[str, str], config: ServerConfig, local_address: str | None) -> dict[str, Any]:
    """The site's settings as JSON, or Invalid (400) naming the field that is wrong."""
    server_ip = _field(query, "server_ip") or default_server_ip(config, local_address)
    if server_ip is None:
        raise Invalid("give server_ip: the address the clients reach this server at (this request came over "
                      "loopback and serve has no --public-url with an IPv4 address)", field="server_ip")
    clients = _field(query, "clients")
    ip_json = "[]" if clients else await local_networks()
    try:
        site = siteinit.make_site(server_ip, clients, config.http_port,
                                  _field(query, "images_dir") or siteinit.IMAGES_DIR, os.getuid(), os.getgid(),
                                  query.get("secure_boot", "") in ("1", "true", "on"), ip_json)
    except siteinit.InitError as exc:
        message = str(exc)
        field = next((f for option, f in FIELD_OF_OPTION.items() if message.startswith(option)), "server_ip")
        raise Invalid(message, field=field) from None
    return sitesettings.as_json(site)


def local_address_of(request: web.Request) -> str | None:
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    return str(sockname[0]) if isinstance(sockname, tuple) and sockname else None


async def site_settings(request: web.Request) -> web.Response:
    return json_response(await settings_for(request.query, request.app[CONFIG], local_address_of(request)))


def routes(technician: Callable[[Handler], Handler]) -> list[web.RouteDef]:
    return [web.get("/api/setup", technician(site_settings))]
