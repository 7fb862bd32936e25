"""What the technician's menu (issue 5) adds to the server's state.

- Task options: a wipe's mode ({"mode": "fast|normal|full"}); and who created a task: ``origin`` is
  "admin" (the API / CLI) or "menu" (a technician at the machine). Everything else about a task from
  the menu is the same record an unattended run leaves.
- The technician password: a PBKDF2 hash in ``settings``; the menu exchanges it (or the admin token)
  for a short-lived session (webapp.py keeps the sessions).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
from typing import Any

from contract.vocabulary import ORIGINS, WIPE_MODES

MIGRATION = """
ALTER TABLE tasks ADD COLUMN options TEXT;
ALTER TABLE tasks ADD COLUMN origin TEXT NOT NULL DEFAULT 'admin';
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


_ITERATIONS = 200_000
MIN_PASSWORD = 8


class Invalid(ValueError):
    """Raised as db.Invalid by the caller's module (kept here to avoid an import cycle)."""


def check_options(type_: str, options: Any) -> str | None:
    """The task's options as stored (JSON), or an error message."""
    if type_ == "wipe":
        if not isinstance(options, dict) or options.get("mode") not in WIPE_MODES or set(options) != {"mode"}:
            raise Invalid(f"a wipe task needs options {{\"mode\": one of {', '.join(WIPE_MODES)}}}")
        return json.dumps(options)
    if options not in (None, {}):
        raise Invalid(f"a {type_} task takes no options")
    return None


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


def set_technician_password(conn: sqlite3.Connection, password: str | None) -> None:
    """None removes it (then only the admin token opens the menu)."""
    if password is None:
        conn.execute("DELETE FROM settings WHERE key = 'technician_password'")
        return
    if not isinstance(password, str) or len(password) < MIN_PASSWORD or not password.isprintable():
        raise Invalid(f"the technician password must be at least {MIN_PASSWORD} printable characters")
    conn.execute("INSERT OR REPLACE INTO settings(key, value) VALUES ('technician_password', ?)",
                 (hash_password(password),))


def technician_password(conn: sqlite3.Connection) -> str | None:
    row = conn.execute("SELECT value FROM settings WHERE key = 'technician_password'").fetchone()
    return row[0] if row else None
