"""The technician's menu's setting: the technician password, kept as a PBKDF2 hash in ``settings``.

The menu exchanges it (or the admin token) for a short-lived session (server_stub/menuapi.py keeps those).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets

from server_stub.store.database import Database
from server_stub.store.validate import check_technician_password

_ITERATIONS = 200_000
_KEY = "technician_password"


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, _ITERATIONS)
    return f"pbkdf2_sha256${_ITERATIONS}${salt.hex()}${digest.hex()}"


def password_matches(stored: str, password: str) -> bool:
    try:
        scheme, iterations, salt, digest = stored.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        given = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(given.hex(), digest)


class MenuSettings:
    def __init__(self, db: Database) -> None:
        self.db = db

    def set_technician_password(self, password: str | None) -> None:
        """None removes it (then only the admin token opens the menu)."""
        if password is None:
            with self.db.transaction():
                self.db.execute("DELETE FROM settings WHERE key = ?", _KEY)
            return
        stored = hash_password(check_technician_password(password))
        with self.db.transaction():
            self.db.execute("INSERT OR REPLACE INTO settings(key, value) VALUES (?, ?)", _KEY, stored)

    def technician_password(self) -> str | None:
        """The stored hash (compare with password_matches), or None when none is set."""
        row = self.db.one("SELECT value FROM settings WHERE key = ?", _KEY)
        return row["value"] if row else None
