"""The server's persisted settings (table ``settings``): the technician password, kept as a PBKDF2 hash, and
the policy for unknown hosts.

The menu exchanges the password (or the admin token) for a short-lived session (server_stub/menuapi.py keeps
those). The boot path reads the unknown-host policy at each decision, so a change applies at the next boot.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets

from typing import Literal, cast, get_args

from server_stub.errors import Invalid
from server_stub.store.database import Database
from server_stub.store.validate import check_technician_password

# What a MAC the server does not know boots: the same words as bootpolicy.UnknownHosts (serve --unknown-hosts).
UnknownHostsPolicy = Literal["menu", "register", "local"]
UNKNOWN_HOSTS_POLICIES: tuple[str, ...] = get_args(UnknownHostsPolicy)
_UNKNOWN_HOSTS = "unknown_hosts"

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

    def unknown_hosts(self, default: UnknownHostsPolicy) -> UnknownHostsPolicy:
        """The stored policy; ``default`` (serve --unknown-hosts) while none was set."""
        row = self.db.one("SELECT value FROM settings WHERE key = ?", _UNKNOWN_HOSTS)
        value = row["value"] if row else default
        return cast(UnknownHostsPolicy, value if value in UNKNOWN_HOSTS_POLICIES else default)

    def set_unknown_hosts(self, policy: str) -> UnknownHostsPolicy:
        if policy not in UNKNOWN_HOSTS_POLICIES:
            raise Invalid(f"unknown-hosts must be one of {', '.join(UNKNOWN_HOSTS_POLICIES)}", field="unknown_hosts")
        with self.db.transaction():
            self.db.execute("INSERT OR REPLACE INTO settings(key, value) VALUES (?, ?)", _UNKNOWN_HOSTS, policy)
        return cast(UnknownHostsPolicy, policy)

    def settings(self, unknown_hosts_default: UnknownHostsPolicy) -> dict[str, object]:
        """What an admin sees: the policy and whether a technician password is set (never the hash)."""
        return {"unknown_hosts": self.unknown_hosts(unknown_hosts_default),
                "technician_password": self.technician_password() is not None}
