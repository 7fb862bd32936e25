"""Turning a template and its values into a page: the Jinja2 environment, the filters every page uses
(sizes, durations, times), and the decorators that make a handler a page or a form action."""
from __future__ import annotations

import datetime
import functools
import urllib.parse
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping

import jinja2
from aiohttp import web

from server_stub.accounts import AUDIT_TARGET, AUTH, PRINCIPAL_KEY, Principal, Role, allows
from server_stub.errors import ApiError

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
Page = Callable[[web.Request], Awaitable[web.StreamResponse]]


def human_bytes(value: int | float | None) -> str:
    if value is None:
        return "–"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def human_duration(seconds: int | float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def iso_time(timestamp: float | None) -> str:
    """UTC ISO 8601: the page's script shows it in the browser's local time."""
    if timestamp is None:
        return ""
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).isoformat(timespec="seconds")


def utc_text(timestamp: float | None) -> str:
    """What a page shows before (or without) its script: UTC, said so."""
    if timestamp is None:
        return "–"
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


ENVIRONMENT = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                                 autoescape=jinja2.select_autoescape(default=True),
                                 # A field missing from stored JSON (an error without a hint …) renders empty, not a 500.
                                 undefined=jinja2.ChainableUndefined,
                                 trim_blocks=True, lstrip_blocks=True)
ENVIRONMENT.filters.update(bytes=human_bytes, duration=human_duration, iso=iso_time, utc=utc_text)


def static_url(request: web.Request, name: str) -> str:
    """The URL of a static file with its content hash, so browsers never run a stale script."""
    return str(request.app.router["static"].url_for(filename=name))


def render(request: web.Request, template: str, status: int = 200, **values: Any) -> web.Response:
    principal: Principal | None = request.get(PRINCIPAL_KEY)
    page = ENVIRONMENT.get_template(template).render(
        principal=principal, csrf=principal.csrf if principal else "", path=request.path,
        static=lambda name: static_url(request, name), **values)
    response = web.Response(text=page, status=status, content_type="text/html", charset="utf-8")
    # Pages hold live data and anti-forgery tokens: never cached, never framed, no outside scripts.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = ("default-src 'self'; script-src 'self'; style-src 'self'; "
                                                   "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'")
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def signin_redirect(request: web.Request) -> web.HTTPFound:
    return web.HTTPFound("/signin?" + urllib.parse.urlencode({"next": request.path_qs}))


def _authorize(request: web.Request, role: Role) -> Principal | web.StreamResponse:
    principal = request.app[AUTH].principal(request)
    if principal is None or principal.via != "session":
        raise signin_redirect(request)
    request[PRINCIPAL_KEY] = principal
    if not allows(principal, role):
        return render(request, "error.html", 403, title="Not allowed",
                      message=f"This page needs the {role} role; you are signed in as a {principal.role}.")
    return principal


def page(role: Role = "technician") -> Callable[[Page], Page]:
    """A GET page: signed-in users of ``role`` or above; others are sent to sign in, or shown 403."""
    def wrap(handler: Page) -> Page:
        @functools.wraps(handler)
        async def checked(request: web.Request) -> web.StreamResponse:
            allowed = _authorize(request, role)
            if isinstance(allowed, web.StreamResponse):
                return allowed
            return await handler(request)
        return checked
    return wrap


def action(role: Role = "admin", what: str = "") -> Callable[[Page], Page]:
    """A form's POST: the role, the anti-forgery token, and an audit entry with the outcome. A refusal the
    handler does not turn into a form with its errors is shown as a page with the message (never a 500)."""
    def wrap(handler: Page) -> Page:
        @functools.wraps(handler)
        async def checked(request: web.Request) -> web.StreamResponse:
            allowed = _authorize(request, role)
            if isinstance(allowed, web.StreamResponse):
                return allowed
            auth = request.app[AUTH]
            try:
                await auth.check_csrf(request, allowed)
            except ApiError as exc:
                return render(request, "error.html", exc.status, title="Form expired", message=exc.message)
            label = f"console: {what or handler.__name__.replace('_', ' ')}"
            target = "/".join(v for v in request.match_info.values())
            try:
                response = await handler(request)
            except ApiError as exc:
                auth.audit(request, allowed, label, request.get(AUDIT_TARGET) or target, f"{exc.status} {exc.code}")
                return render(request, "error.html", exc.status, title="Not done", message=exc.message,
                              back=request.headers.get("Referer", "/"))
            auth.audit(request, allowed, label, request.get(AUDIT_TARGET) or target, str(response.status))
            return response
        return checked
    return wrap


def field_errors(error: ApiError) -> Mapping[str, str]:
    """{field: message} for a form: the field the store named, else the form as a whole ('')."""
    return {str(error.details.get("field", "")): error.message}


def redirect_after_post(location: str, notice: str | None = None) -> web.Response:
    """Post/redirect/get: a reload never sends the form twice; ``notice`` is shown once on the next page."""
    if notice:
        location += ("&" if "?" in location else "?") + urllib.parse.urlencode({"notice": notice})
    return web.Response(status=303, headers={"Location": location})


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this server only (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
