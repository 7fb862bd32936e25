"""Attempt limits that outlive the process (table ``limit_attempts``): menu logins and registrations.

An attempt is *taken* before the work it guards (a password hash, a registration): counting and recording
happen in one ``BEGIN IMMEDIATE`` transaction, so concurrent requests, even from several server processes,
cannot all pass the count before any is recorded. Times are wall-clock (``time.time()``): a restart keeps
the window. A caller may ``give_back`` an attempt that turned out fine (a correct password).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

from server_stub.store.database import Database


@dataclass(frozen=True)
class Limit:
    """At most ``count`` attempts for one key within any ``window`` seconds."""

    key: str        # "menu-mac:52:54:…", "menu-addr:10.0.0.7", "register-all" …
    count: int
    window: float


@dataclass(frozen=True)
class Taken:
    """The outcome of ``take``: ``retry_after`` 0 means allowed, and ``ids`` are the rows recorded."""

    retry_after: int
    ids: tuple[int, ...] = ()


class AttemptLimits:
    def __init__(self, db: Database) -> None:
        self.db = db

    def take(self, limits: list[Limit], now: float | None = None) -> Taken:
        """Record one attempt under every key, or none when any key is full (then: seconds until it is not)."""
        now = time.time() if now is None else now
        with self.db.transaction():
            longest = max((limit.window for limit in limits), default=0.0)
            self.db.execute("DELETE FROM limit_attempts WHERE time < ?", now - longest)  # the table stays small
            wait = 0
            for limit in limits:
                row = self.db.one("SELECT COUNT(*) AS n, MIN(time) AS oldest FROM limit_attempts "
                                  "WHERE key = ? AND time > ?", limit.key, now - limit.window)
                if row is not None and row["n"] >= limit.count:
                    wait = max(wait, max(1, math.floor(row["oldest"] + limit.window - now) + 1))
            if wait:
                return Taken(wait)
            ids = tuple(int(self.db.execute("INSERT INTO limit_attempts(key, time) VALUES (?, ?)",
                                            limit.key, now).lastrowid or 0) for limit in limits)
        return Taken(0, ids)

    def give_back(self, taken: Taken) -> None:
        """Forget the attempts ``take`` recorded (the attempt succeeded: it should not count against anyone)."""
        if taken.ids:
            with self.db.transaction():
                self.db.execute(f"DELETE FROM limit_attempts WHERE id IN ({','.join('?' * len(taken.ids))})",
                                *taken.ids)

    def attempts(self, key: str, window: float, now: float | None = None) -> int:
        now = time.time() if now is None else now
        return int(self.db.scalar("SELECT COUNT(*) FROM limit_attempts WHERE key = ? AND time > ?", key,
                                  now - window))
