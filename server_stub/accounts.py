"""Who is calling: the admin token, or a console user signed in with a password; what each role may do.

- Passwords are hashed with Argon2id (argon2-cffi, RFC 9106's second profile scaled to 64 MiB), in a worker
  thread, at most two at once, so a burst of sign-ins neither blocks the event loop nor eats the memory.
- Failed sign-ins are counted per account and per source address *before* the hash is checked: past the
  limit a sign-in is refused (429) without looking at the password.
- A session is a random token in an HttpOnly, SameSite=Strict cookie (Secure under TLS), stored as its
  SHA-256, expiring after SESSION_HOURS; every state-changing request in a session carries its
  anti-forgery token (form field ``csrf`` or header ``X-CSRF-Token``).
- The admin token (``<data-dir>/admin.token``) is an admin for the API (Bearer) and signs in to the console
  as user ``admin``: the first sign-in, before any account exists.
- Every state-changing call, API or console, is written to the audit log with who, what and the outcome.
"""
from __future__ import annotations

import asyncio
import collections
import secrets
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Literal

import argon2
from aiohttp import web

from server_stub.errors import ApiError, Forbidden, Invalid, RateLimited, Unauthorized
from server_stub.http import FORM_TYPES, bearer_token, read_form, same_secret, secret_bytes
from server_stub.store import Store
from server_stub.store.accounts import ROLES

Role = Literal["admin", "technician"]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SESSION_COOKIE = "imager_session"
SESSION_HOURS = 8
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
TOKEN_ACTOR = "admin"            # the name the admin token signs in with
MIN_PASSWORD = 10
MAX_PASSWORD = 1024              # bytes hashed: bounds the work one request can ask for
FAILURE_WINDOW_S = 300
FAILURES_PER_ACCOUNT = 5         # within the window, then 429 until the oldest failure ages out
FAILURES_PER_ADDRESS = 20
_RANK = {"technician": 1, "admin": 2}
_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")

_HASHER = argon2.PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=2, hash_len=32, salt_len=16)


@dataclass(frozen=True)
class Principal:
    actor: str                   # the user's name ("admin" for the token)
    role: Role
    via: Literal["token", "session"]
    csrf: str | None = None      # the session's anti-forgery token
    session_token: str | None = None


PRINCIPAL_KEY = web.RequestKey("imager.principal", Principal)  # the caller, once checked
AUDIT_TARGET = web.RequestKey("imager.audit_target", str)  # what a handler acted on, when the path does not say


def check_password(password: object) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD or len(secret_bytes(password)) > MAX_PASSWORD \
            or not password.isprintable():
        raise Invalid(f"a password must be {MIN_PASSWORD} or more printable characters (at most {MAX_PASSWORD} bytes)",
                      field="password")
    return password


def check_role(role: object) -> Role:
    if role not in ROLES:
        raise Invalid(f"role must be one of {', '.join(ROLES)}", field="role")
    return "admin" if role == "admin" else "technician"


class FailureCounter:
    """Failed sign-ins in a sliding window, per key (an account, an address); memory bounded by MAX_KEYS."""

    MAX_KEYS = 10_000

    def __init__(self, limit: int, window: float = FAILURE_WINDOW_S) -> None:
        self.limit, self.window = limit, window
        self.failures: dict[str, collections.deque[float]] = {}

    def _recent(self, key: str) -> collections.deque[float]:
        times = self.failures.get(key, collections.deque())
        while times and times[0] < time.monotonic() - self.window:
            times.popleft()
        return times

    def retry_after(self, key: str) -> int:
        """Seconds until the next try is allowed; 0: allowed now."""
        times = self._recent(key)
        if len(times) < self.limit:
            return 0
        return max(1, int(times[0] + self.window - time.monotonic()) + 1)

    def fail(self, key: str) -> None:
        if key not in self.failures and len(self.failures) >= self.MAX_KEYS:
            self.failures.pop(next(iter(self.failures)))
        times = self._recent(key)
        times.append(time.monotonic())
        self.failures[key] = times

    def clear(self, key: str) -> None:
        self.failures.pop(key, None)


class Authenticator:
    def __init__(self, store: Store, admin_token: str, secure_cookies: bool) -> None:
        self.store = store
        self.admin_token = admin_token
        self.secure_cookies = secure_cookies
        self.by_account = FailureCounter(FAILURES_PER_ACCOUNT)
        self.by_address = FailureCounter(FAILURES_PER_ADDRESS)
        self._hashing = asyncio.Semaphore(2)

    # --- passwords -----------------------------------------------------------------------------------
    async def hash_password(self, password: str) -> str:
        check_password(password)
        async with self._hashing:
            return await asyncio.to_thread(_HASHER.hash, password)

    async def _verify(self, stored: str, password: str) -> bool:
        async with self._hashing:
            try:
                return await asyncio.to_thread(_HASHER.verify, stored, password)
            except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHash):
                return False

    # --- signing in and out --------------------------------------------------------------------------
    async def sign_in(self, name: str, password: str, address: str | None) -> tuple[str, Principal]:
        """(cookie value, principal); Unauthorized for a wrong name or password, RateLimited past the limits."""
        account_key, address_key = f"user:{name.lower()}", f"addr:{address}"
        wait = max(self.by_account.retry_after(account_key), self.by_address.retry_after(address_key))
        if wait:
            raise RateLimited("too many failed sign-ins; wait and try again", retry_after=wait)
        role: Role | None = None
        user_id: int | None = None
        if name == TOKEN_ACTOR and same_secret(password, self.admin_token):
            role = "admin"
        elif len(secret_bytes(password)) <= MAX_PASSWORD and password.isprintable():
            stored = self.store.accounts.password_hash(name)
            # An unknown name costs the same hash as a known one: timing does not tell which names exist.
            if await self._verify(stored or _DUMMY_HASH, password) and stored is not None:
                user = self.store.accounts.user(name)
                role, user_id = check_role(user["role"]), user["id"]
        if role is None:
            self.by_account.fail(account_key)
            self.by_address.fail(address_key)
            self.store.accounts.audit(name[:100], "-", "session", "sign in", "", "refused", address)
            raise Unauthorized("wrong user name or password")
        self.by_account.clear(account_key)
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self.store.accounts.open_session(token, csrf, name, role, user_id, address, SESSION_HOURS * 3600)
        self.store.accounts.audit(name, role, "session", "sign in", "", "ok", address)
        return token, Principal(name, role, "session", csrf, token)

    def sign_out(self, principal: Principal, address: str | None) -> None:
        if principal.session_token:
            self.store.accounts.close_session(principal.session_token)
            self.store.accounts.audit(principal.actor, principal.role, "session", "sign out", "", "ok", address)

    def set_cookie(self, response: web.StreamResponse, token: str) -> None:
        response.set_cookie(SESSION_COOKIE, token, max_age=SESSION_HOURS * 3600, httponly=True, samesite="Strict",
                            secure=self.secure_cookies, path="/")

    def clear_cookie(self, response: web.StreamResponse) -> None:
        response.del_cookie(SESSION_COOKIE, path="/")

    # --- who is calling ------------------------------------------------------------------------------
    def principal(self, request: web.Request) -> Principal | None:
        given = bearer_token(request)
        if given:
            if same_secret(given, self.admin_token):
                return Principal(TOKEN_ACTOR, "admin", "token")
            return None
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie or not cookie.isascii():  # ours are ASCII; others name no session (401, not a 500)
            return None
        session = self.store.accounts.session(cookie)
        if session is None:
            return None
        return Principal(session["actor"], check_role(session["role"]), "session", session["csrf"], cookie)

    async def check_csrf(self, request: web.Request, principal: Principal) -> None:
        """A session's state-changing request must carry its anti-forgery token (a bearer token cannot be forged
        by another site: browsers never add it)."""
        if principal.via != "session" or request.method in _SAFE_METHODS:
            return
        given = request.headers.get(CSRF_HEADER)
        if given is None and request.content_type in FORM_TYPES:
            given = str((await read_form(request)).get(CSRF_FIELD, ""))
        if not given or not principal.csrf or not same_secret(given, principal.csrf):
            raise Forbidden("the form's anti-forgery token is missing or stale: reload the page and try again")

    def audit(self, request: web.Request, principal: Principal, action: str, target: str, outcome: str) -> None:
        self.store.accounts.audit(principal.actor, principal.role, principal.via, action, target, outcome,
                                  request.remote)


_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))
AUTH = web.AppKey("authenticator", Authenticator)


def allows(principal: Principal, role: Role) -> bool:
    return _RANK[principal.role] >= _RANK[role]


def audit_target(request: web.Request) -> str:
    """What the audit log names as acted on: the handler's word, else the path's name (or key, or id)."""
    named = request.get(AUDIT_TARGET)
    if named:
        return str(named)
    return next((request.match_info[k] for k in ("name", "key", "id") if k in request.match_info), "")


def require(role: Role) -> Callable[[Handler], Handler]:
    """API handlers: 401 without a caller, 403 for a lower role or a forged session request; state-changing
    calls are audited with their outcome."""
    def wrap(handler: Handler) -> Handler:
        async def checked(request: web.Request) -> web.StreamResponse:
            auth = request.app[AUTH]
            principal = auth.principal(request)
            if principal is None:
                raise Unauthorized("admin credential missing or wrong (see <data-dir>/admin.token, or sign in)")
            if not allows(principal, role):
                raise Forbidden(f"this needs the {role} role; {principal.actor} is a {principal.role}")
            await auth.check_csrf(request, principal)
            request[PRINCIPAL_KEY] = principal
            if request.method in _SAFE_METHODS:
                return await handler(request)
            action = f"{request.method} {request.path}"
            try:
                response = await handler(request)
            except ApiError as exc:
                auth.audit(request, principal, action, audit_target(request), f"{exc.status} {exc.code}")
                raise
            auth.audit(request, principal, action, audit_target(request), str(response.status))
            return response
        return checked
    return wrap
