"""GET /api/openapi.yaml: the hand-written description of the HTTP API (docs/openapi.yaml).

It is read from the source tree, like the boot files; tests/server_stub/test_openapi.py keeps it
in step with the routes of webapp.make_app.
"""
from __future__ import annotations

from pathlib import Path

from aiohttp import web

from server_stub.errors import NotFound

SPEC = Path(__file__).resolve().parent.parent / "docs" / "openapi.yaml"


async def openapi_yaml(request: web.Request) -> web.Response:
    try:
        text = SPEC.read_text()
    except OSError:
        raise NotFound(f"{SPEC} is missing from this installation") from None
    return web.Response(text=text, content_type="application/yaml")
