"""The console's people: user accounts, their signed-in sessions, and the audit log of what they did.

Passwords arrive here already hashed (server_stub/accounts.py owns the KDF); session tokens are stored as
their SHA-256 only, so a copy of the database opens no session.
"""
from __future__ import annotations

import hashlib
import time

from server_stub.errors import Conflict, Invalid, NotFound
from server_stub.store.database import Database
from server_stub.store.models import AuditEntry, User, WebSession
from server_stub.store.validate import check_choice, check_name

ROLES = ("admin", "technician")
AUDIT_PAGE_MAX = 500
TOKEN_NAME = "admin"  # the admin token signs in under this name: no account may take it (the log would blur)


def _check_user_name(name: object) -> str:
    try:
        check_name(name, "user")
    except Invalid as exc:
        raise Invalid(exc.message, field="name") from None
    if str(name).lower() == TOKEN_NAME:
        raise Invalid(f"the name {TOKEN_NAME} is the admin token's (it signs in with it): choose another",
                      field="name")
    return str(name)


def _check_role(role: object) -> str:
    try:
        return check_choice(role, ROLES, "role")
    except Invalid as exc:
        raise Invalid(exc.message, field="role") from None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Accounts:
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- users -------------------------------------------------------------------------------------
    def check_new_name(self, name: str) -> str:
        """A name a new user may take: well-formed, not the token's, not taken (in any letter case)."""
        _check_user_name(name)
        if self.db.one("SELECT id FROM users WHERE name = ? COLLATE NOCASE", name):
            raise Conflict(f"user {name} exists already", field="name")
        return name

    def add_user(self, name: str, role: str, password_hash: str) -> User:
        _check_role(role)
        now = time.time()
        with self.db.transaction():
            self.check_new_name(name)
            self.db.execute("INSERT INTO users(name, role, password_hash, created, password_changed) "
                            "VALUES (?, ?, ?, ?, ?)", name, role, password_hash, now, now)
        return self.user(name)

    def user(self, name: str) -> User:
        row = self.db.one("SELECT id, name, role, created, password_changed FROM users WHERE name = ?", name)
        if row is None:
            raise NotFound(f"no user {name}")
        return row  # type: ignore[return-value]

    def users(self) -> list[User]:
        return self.db.all_as(User, "SELECT id, name, role, created, password_changed FROM users ORDER BY name")

    def password_hash(self, name: str) -> str | None:
        """The stored hash of a user, or None for no such user (sign-in compares it)."""
        return self.db.scalar("SELECT password_hash FROM users WHERE name = ?", name)

    def set_password(self, name: str, password_hash: str) -> User:
        """A new password also signs the user out everywhere."""
        with self.db.transaction():
            user = self.user(name)
            self.db.execute("UPDATE users SET password_hash = ?, password_changed = ? WHERE id = ?",
                            password_hash, time.time(), user["id"])
            self.db.execute("DELETE FROM web_sessions WHERE user_id = ?", user["id"])
        return self.user(name)

    def set_role(self, name: str, role: str) -> User:
        _check_role(role)
        with self.db.transaction():
            user = self.user(name)
            if user["role"] == "admin" and role != "admin":
                self._keep_one_admin(user["id"], field="role")
            self.db.execute("UPDATE users SET role = ? WHERE id = ?", role, user["id"])
            self.db.execute("UPDATE web_sessions SET role = ? WHERE user_id = ?", role, user["id"])
        return self.user(name)

    def remove_user(self, name: str) -> None:
        with self.db.transaction():
            user = self.user(name)
            if user["role"] == "admin":
                self._keep_one_admin(user["id"])
            self.db.execute("DELETE FROM web_sessions WHERE user_id = ?", user["id"])
            self.db.execute("DELETE FROM users WHERE id = ?", user["id"])

    def _keep_one_admin(self, user_id: int, field: str = "") -> None:
        others = self.db.scalar("SELECT COUNT(*) FROM users WHERE role = 'admin' AND id != ?", user_id)
        if not others:
            raise Conflict("the last admin account cannot be removed or demoted (the admin token still signs in)",
                           field=field)

    # --- sessions ----------------------------------------------------------------------------------
    def open_session(self, token: str, csrf: str, actor: str, role: str, user_id: int | None, address: str | None,
                     lifetime: float) -> None:
        now = time.time()
        with self.db.transaction():
            self.db.execute("DELETE FROM web_sessions WHERE expires < ?", now)
            self.db.execute("INSERT INTO web_sessions(token_hash, user_id, actor, role, csrf, address, created, "
                            "expires) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            token_hash(token), user_id, actor, role, csrf, address, now, now + lifetime)

    def session(self, token: str) -> WebSession | None:
        """The live session this cookie opens, or None (unknown or expired)."""
        row = self.db.one("SELECT token_hash, user_id, actor, role, csrf, address, created, expires "
                          "FROM web_sessions WHERE token_hash = ? AND expires >= ?", token_hash(token), time.time())
        return row  # type: ignore[return-value]

    def close_session(self, token: str) -> None:
        with self.db.transaction():
            self.db.execute("DELETE FROM web_sessions WHERE token_hash = ?", token_hash(token))

    # --- audit log ---------------------------------------------------------------------------------
    def audit(self, actor: str, role: str, via: str, action: str, target: str, outcome: str,
              address: str | None) -> None:
        with self.db.transaction():
            self.db.execute("INSERT INTO audit_log(time, actor, role, via, action, target, outcome, address) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", time.time(), actor, role, via, action[:200],
                            target[:200], outcome[:200], address)

    def audit_page(self, offset: int = 0, limit: int = 100, actor: str | None = None) -> tuple[list[AuditEntry], int]:
        """Newest first; ``actor`` filters by who."""
        if not 0 <= offset or not 1 <= limit <= AUDIT_PAGE_MAX:
            raise Invalid(f"offset ≥ 0 and limit 1-{AUDIT_PAGE_MAX}")
        where, args = ("WHERE actor = ?", [actor]) if actor else ("", [])
        total = self.db.scalar(f"SELECT COUNT(*) FROM audit_log {where}", *args)
        rows = self.db.all_as(AuditEntry, f"SELECT id, time, actor, role, via, action, target, outcome, address "
                              f"FROM audit_log {where} ORDER BY id DESC LIMIT ? OFFSET ?", *args, limit, offset)
        return rows, int(total)
