"""The server's state in one SQLite file, in dependency order:

validate (checks, errors from server_stub.errors) → schema (SCHEMA + MIGRATIONS) → database (the connection,
``transaction()``) → storage → images → hosts, placement, replication_jobs → tasks (the one state
transition) → multicast, menu → facade (``Store``). Every write is inside a ``transaction()``.
"""
from __future__ import annotations

from server_stub.store.facade import Store

__all__ = ["Store"]
