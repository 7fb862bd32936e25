"""The application's shared objects, by key: what every route module (API, console) reads from the app."""
from __future__ import annotations

from aiohttp import web

from server_stub.config import ServerConfig
from server_stub.store import Store

STORE = web.AppKey("store", Store)
CONFIG = web.AppKey("config", ServerConfig)
