"""The one connection to the server's SQLite file, and the one way to write through it: ``transaction()``."""
from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from server_stub.store import schema

Row = dict[str, Any]
T = TypeVar("T")


class Database:
    def __init__(self, path: str) -> None:
        # Autocommit mode (isolation_level=None): transactions are only the ones transaction() opens.
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: no fsync per commit (progress reports are frequent), still crash-consistent.
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        schema.migrate(self.conn)
        self._depth = 0

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together or not at all. Nested use is a savepoint: an inner block that
        fails is undone alone (its caller may recover); the outermost block alone commits."""
        if self._depth == 0:
            begin, commit, rollback = "BEGIN IMMEDIATE", "COMMIT", "ROLLBACK"
        else:
            name = f"nested_{self._depth}"
            begin, commit, rollback = f"SAVEPOINT {name}", f"RELEASE {name}", f"ROLLBACK TO {name}; RELEASE {name}"
        self.conn.execute(begin)
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            for statement in rollback.split("; "):
                self.conn.execute(statement)
            raise
        self._depth -= 1
        self.conn.execute(commit)

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        return self.conn.execute(sql, args)

    def one(self, sql: str, *args: Any) -> Row | None:
        row = self.conn.execute(sql, args).fetchone()
        return dict(row) if row else None

    def all(self, sql: str, *args: Any) -> list[Row]:
        return [dict(r) for r in self.conn.execute(sql, args).fetchall()]

    def scalar(self, sql: str, *args: Any) -> Any:
        row = self.conn.execute(sql, args).fetchone()
        return row[0] if row else None

    def all_as(self, shape: type[T], sql: str, *args: Any) -> list[T]:
        """Rows of a known shape (a TypedDict of server_stub.store.models)."""
        return cast(list[T], self.all(sql, *args))
