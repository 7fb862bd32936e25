"""The web console: server-rendered pages at ``/`` on the API's own port, for admins and technicians.

Every page is HTML from Jinja2 templates (templates/), styled and scripted only by files served from
static/ (no CDN: imaging networks are often isolated). Forms post to the console's own routes, which call
the same store methods and checks as the JSON API, so a refusal reads the same in both; the script only
turns times into the browser's local time and applies live updates (server_stub/console/live.py).
Who may see and do what: server_stub/accounts.py.
"""
from __future__ import annotations

from aiohttp import web

from server_stub.console import dashboard, live, signin
from server_stub.console import audit, settings
from server_stub.console import images, multicast, storage
from server_stub.console import hosts, tasks
from server_stub.console import reports
from server_stub.console import schedules
from server_stub.console import scripts
from server_stub.console import hostgroups
from server_stub.console import setup
from server_stub.console import chunkgc
from server_stub.console.render import STATIC_DIR


def routes() -> list[web.AbstractRouteDef]:
    return [
        *signin.routes(),
        *dashboard.routes(),
        *images.routes(), *multicast.routes(), *storage.routes(),
        *hosts.routes(), *tasks.routes(),
        *settings.routes(), *audit.routes(),
        *reports.routes(),
        *schedules.routes(),
        *scripts.routes(),
        *hostgroups.routes(),
        *setup.routes(),
        *chunkgc.routes(),
        *live.routes(),
        web.static("/static", STATIC_DIR, name="static", append_version=True),
    ]
