"""Admin API for console accounts and the audit log (issue 12): list, add, change and remove users; read the
log a page at a time. The CLI (server_stub/cli_users.py) and the console's Settings and Audit pages call the
same store methods; passwords are hashed here through the Authenticator (Argon2id, in a worker thread).
"""
from __future__ import annotations

from typing import Callable

from aiohttp import web

from server_stub.accounts import AUDIT_TARGET, AUTH, check_role
from server_stub.appkeys import STORE
from server_stub.errors import Invalid
from server_stub.http import MAX_ROW_ID, Handler, json_response, optional_str, read_json, require_str
from server_stub.store.accounts import AUDIT_PAGE_MAX
from server_stub.store.models import User

Wrap = Callable[[Handler], Handler]


def query_int(request: web.Request, key: str, default: int) -> int:
    text = request.query.get(key, "")
    if text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise Invalid(f"{key} must be a whole number", field=key) from None
    if not -MAX_ROW_ID - 1 <= value <= MAX_ROW_ID:  # SQLite's integers: a bigger one is an OverflowError, a 500
        raise Invalid(f"{key} {text[:40]} is out of range", field=key)
    return value


async def list_users(request: web.Request) -> web.Response:
    return json_response(request.app[STORE].accounts.users())


async def create_user(app: web.Application, name: str, role: object, password: str) -> User:
    """The one way an account is made (API and console): the checks, then the Argon2id hash, then the row."""
    role_ = check_role(role)
    accounts = app[STORE].accounts
    accounts.check_new_name(name)  # before the hash: a taken name answers at once
    return accounts.add_user(name, role_, await app[AUTH].hash_password(password))


async def change_user(app: web.Application, name: str, role: object | None = None,
                      password: str | None = None) -> User:
    """A new role and/or password (API and console); a new password signs the user out everywhere."""
    accounts = app[STORE].accounts
    accounts.user(name)  # 404 before any work
    if role is not None:
        check_role(role)
    password_hash = await app[AUTH].hash_password(password) if password is not None else None
    if role is not None:
        accounts.set_role(name, str(role))
    if password_hash is not None:
        accounts.set_password(name, password_hash)
    return accounts.user(name)


async def add_user(request: web.Request) -> web.Response:
    """{"name", "password", "role" (default technician)}: the new user, 201."""
    body = await read_json(request)
    name = require_str(body, "name")
    request[AUDIT_TARGET] = name[:100]
    user = await create_user(request.app, name, optional_str(body, "role", "technician"),
                             require_str(body, "password"))
    return json_response(user, 201)


async def edit_user(request: web.Request) -> web.Response:
    """{"password"?, "role"?}: the fields present change."""
    body = await read_json(request)
    unknown = sorted(set(body) - {"password", "role"})
    if unknown or not body:
        raise Invalid("give password and/or role", field=unknown[0] if unknown else "")
    role = require_str(body, "role") if "role" in body else None
    password = require_str(body, "password") if "password" in body else None
    return json_response(await change_user(request.app, request.match_info["name"], role, password))


async def remove_user(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    request.app[STORE].accounts.remove_user(name)
    return json_response({"removed": name})


async def audit_page(request: web.Request) -> web.Response:
    """Newest first: {"rows", "total", "offset", "limit"}; ``actor`` filters by who."""
    offset, limit = query_int(request, "offset", 0), query_int(request, "limit", 100)
    if not 1 <= limit <= AUDIT_PAGE_MAX:
        raise Invalid(f"limit must be 1-{AUDIT_PAGE_MAX}", field="limit")
    if offset < 0:
        raise Invalid("offset must be 0 or more", field="offset")
    rows, total = request.app[STORE].accounts.audit_page(offset, limit, request.query.get("actor") or None)
    return json_response({"rows": rows, "total": total, "offset": offset, "limit": limit})


def routes(admin_only: Wrap) -> list[web.RouteDef]:
    return [
        web.get("/api/users", admin_only(list_users)),
        web.post("/api/users", admin_only(add_user)),
        web.post("/api/users/{name}", admin_only(edit_user)),
        web.delete("/api/users/{name}", admin_only(remove_user)),
        web.get("/api/audit", admin_only(audit_page)),
    ]
