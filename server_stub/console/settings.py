"""The Settings page (admins only): the technician password, what unknown machines boot, and the console's
accounts. Each form calls the same store and usersapi functions as the JSON API, so a refusal reads the same;
a refused form comes back with the message next to its field and what was typed (never a password).
"""
from __future__ import annotations

from typing import Any, Mapping

from aiohttp import web

from server_stub import usersapi
from server_stub.accounts import AUDIT_TARGET, PRINCIPAL_KEY, Principal
from server_stub.appkeys import CONFIG, STORE
from server_stub.console.render import action, field_errors, page, redirect_after_post, render
from server_stub.errors import ApiError, Invalid
from server_stub.store.accounts import ROLES
from server_stub.store.menu import UNKNOWN_HOSTS_POLICIES

POLICY_TEXT = {
    "menu": "a 3-second boot menu (default: the local disk; registration; the imager menu)",
    "register": "register every unknown machine that PXE-boots, without asking",
    "local": "boot the local disk; registration is refused",
}


def settings_page(request: web.Request, status: int = 200, form: str = "", errors: Mapping[str, str] | None = None,
                  typed: Mapping[str, str] | None = None) -> web.Response:
    """The page; after a refusal ``form`` names the refused form, ``errors`` its {field: message} and ``typed``
    what the user typed in it."""
    store = request.app[STORE]
    users = store.accounts.users()
    forms = {"technician-password", "unknown-hosts", "user-add"} | {
        f"user-{u['name']}-{what}" for u in users for what in ("password", "role", "remove")}
    # A stale page's form (a user removed meanwhile) is no longer shown: its refusal goes at the top.
    page_error = next(iter((errors or {}).values()), "") if form and form not in forms else ""
    return render(request, "settings_page.html", status, title="Settings",
                  settings=store.settings(request.app[CONFIG].unknown_hosts), policies=UNKNOWN_HOSTS_POLICIES,
                  policy_text=POLICY_TEXT, users=users, roles=ROLES, refused=form, errors=errors or {},
                  typed=typed or {}, page_error=page_error, notice=request.query.get("notice", ""))


async def _form(request: web.Request) -> dict[str, str]:
    return {k: str(v) for k, v in (await request.post()).items() if k != "csrf"}


@page("admin")
async def show_settings(request: web.Request) -> web.StreamResponse:
    return settings_page(request)


@action("admin", "set technician password")
async def set_technician_password(request: web.Request) -> web.StreamResponse:
    form = await _form(request)
    remove = form.get("remove") == "1"
    try:
        request.app[STORE].set_technician_password(None if remove else form.get("password", ""))
    except ApiError as exc:  # the store names no field: there is one
        return settings_page(request, exc.status, "technician-password", {"password": exc.message})
    return redirect_after_post("/settings", "Technician password removed: only the admin token opens the menu."
                               if remove else "Technician password set.")


@action("admin", "set unknown-host policy")
async def set_unknown_hosts(request: web.Request) -> web.StreamResponse:
    form = await _form(request)
    try:
        policy = request.app[STORE].set_unknown_hosts(form.get("unknown_hosts", ""))
    except ApiError as exc:
        return settings_page(request, exc.status, "unknown-hosts", field_errors(exc), form)
    return redirect_after_post("/settings", f"Unknown machines now: {POLICY_TEXT[policy]}.")


def _checked_password(form: Mapping[str, str]) -> str:
    """The new password, typed the same twice (the console's own check: the API takes one copy)."""
    if form.get("password", "") != form.get("password_again", ""):
        raise Invalid("the two passwords differ", field="password_again")
    return form.get("password", "")


def _without_passwords(form: Mapping[str, str]) -> dict[str, Any]:
    return {k: v for k, v in form.items() if not k.startswith("password")}


@action("admin", "add user")
async def add_user(request: web.Request) -> web.StreamResponse:
    form = await _form(request)
    name = form.get("name", "").strip()
    request[AUDIT_TARGET] = name[:100]
    try:
        user = await usersapi.create_user(request.app, name, form.get("role", ""), _checked_password(form))
    except ApiError as exc:
        return settings_page(request, exc.status, "user-add", field_errors(exc), _without_passwords(form))
    return redirect_after_post("/settings", f"Added {user['name']} ({user['role']}).")


@action("admin", "change user password")
async def set_user_password(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    form = await _form(request)
    try:
        await usersapi.change_user(request.app, name, password=_checked_password(form))
    except ApiError as exc:
        return settings_page(request, exc.status, f"user-{name}-password", field_errors(exc))
    principal: Principal = request[PRINCIPAL_KEY]
    if principal.actor == name:  # their own: this session ended with the others
        return redirect_after_post("/signin", "Password changed: sign in with the new one.")
    return redirect_after_post("/settings", f"New password for {name}; their sessions are signed out.")


@action("admin", "change user role")
async def set_user_role(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    form = await _form(request)
    try:
        user = await usersapi.change_user(request.app, name, role=form.get("role", ""))
    except ApiError as exc:
        return settings_page(request, exc.status, f"user-{name}-role", field_errors(exc), form)
    principal: Principal = request[PRINCIPAL_KEY]
    # Demoting oneself leaves this page out of reach: go where a technician can.
    target = "/" if principal.actor == name and user["role"] != "admin" else "/settings"
    return redirect_after_post(target, f"{name} is now {'an admin' if user['role'] == 'admin' else 'a technician'}.")


@action("admin", "remove user")
async def remove_user(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    try:
        request.app[STORE].accounts.remove_user(name)
    except ApiError as exc:
        return settings_page(request, exc.status, f"user-{name}-remove", field_errors(exc))
    return redirect_after_post("/settings", f"Removed {name}.")


def routes() -> list[web.RouteDef]:
    return [
        web.get("/settings", show_settings),
        web.post("/settings/technician-password", set_technician_password),
        web.post("/settings/unknown-hosts", set_unknown_hosts),
        web.post("/settings/users", add_user),
        web.post("/settings/users/{name}/password", set_user_password),
        web.post("/settings/users/{name}/role", set_user_role),
        web.post("/settings/users/{name}/remove", remove_user),
    ]
