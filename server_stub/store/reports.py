"""History and reports (issue 16): every task of a host or an image with its duration, bytes, rate, result and
who queued it; and the storage report (images, their versions on the nodes, stored size, free space per node).

Read only. A history is paged (at most MAX_PAGE rows a call) and an export holds at most MAX_EXPORT_ROWS rows,
refused beyond with a message that says how to narrow it: one request never makes the server hold more.
"""
from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass
from typing import Any, TypedDict

from contract.chunkindex import CHUNKS_DIR
from server_stub.deployfigures import figures_of
from server_stub.errors import Invalid, NotFound
from server_stub.store.database import Database, Row
from server_stub.store.hosts import Hosts
from server_stub.store.models import ImageVersion, StorageNode
from server_stub.store.storage import NODES
from server_stub.store.validate import check_page
from server_stub.store.versions import ImageVersions, bytes_under

MAX_EXPORT_ROWS = 10_000  # rows of one CSV export; more: narrow it by date
UNKNOWN = "unknown"       # who queued a task from before migration 9
MAX_WHEN = 40             # characters of a since/until value

_HISTORY = ("SELECT t.id, t.type, t.state, t.origin, t.queued_by, t.created, t.started, t.finished, t.progress, "
            "t.result, t.error, h.name AS host, h.mac, COALESCE(i.name, t.image_name) AS image FROM tasks t "
            "JOIN hosts h ON h.id = t.host_id LEFT JOIN images i ON i.id = t.image_id ")


class HistoryRow(TypedDict):
    id: int
    host: str
    mac: str
    type: str
    image: str | None
    state: str
    queued_by: str            # a console user, "admin" (the admin token), "menu (…)", or "unknown" (older tasks)
    origin: str
    created: float
    started: float | None
    finished: float | None
    duration_s: float | None  # started → finished
    bytes: int | None         # the data the task moved (its result; a failed one's last progress)
    rate_bps: float | None    # bytes per second of the duration
    reused_bytes: int | None  # a deploy's (issue 17, server_stub/deployfigures.py): read from the disk and kept,
    fetched_bytes: int | None  # fetched from the image's store,
    wrote_bytes: int | None   # written to the disk; its result's, else its last progress report's
    error_code: str | None
    error: str | None


@dataclass(frozen=True)
class HistoryFilter:
    """Which tasks: of a host (name or MAC), of an image (a deleted one's too), queued in [since, until)."""
    host: str | None = None
    image: str | None = None
    since: float | None = None
    until: float | None = None


class NodeSpace(TypedDict):
    name: str
    group: str | None
    master: bool
    target: str | None
    free_bytes: int | None    # None: unknown (not a directory on this server, or not there)
    total_bytes: int | None
    chunk_store_bytes: int | None   # its .chunks/ (shared by its chunked versions); None: none here


class ImageStorage(TypedDict):
    name: str
    group: str | None
    type: str
    captured: float | None
    stored_bytes: int | None       # the current version, as its capture reported
    versions: list[ImageVersion]   # every version on every node this server reaches
    versions_bytes: int            # their stored_bytes, summed (the chunks each names counted for each)


class StorageReport(TypedDict):
    images: list[ImageStorage]
    nodes: list[NodeSpace]
    stored_bytes: int              # every version's files, and each node's chunk store once


def parse_when(text: str | None, field: str, end_of_day: bool = False) -> float | None:
    """``YYYY-MM-DD`` or an ISO 8601 time (without an offset: the server's time zone) → a timestamp. A bare date
    is its day's start, or with ``end_of_day`` the next day's start (``until`` a date includes that day)."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    try:
        if len(text) > MAX_WHEN:
            raise ValueError
        if len(text) == 10:
            day = datetime.datetime.combine(datetime.date.fromisoformat(text), datetime.time())
            return (day + datetime.timedelta(days=1 if end_of_day else 0)).astimezone().timestamp()
        return datetime.datetime.fromisoformat(text).astimezone().timestamp()
    except ValueError:
        raise Invalid(f"{field} must be a date (2026-12-01) or a time (2026-12-01T08:30, 2026-12-01T08:30+01:00)",
                      field=field) from None


def _count(value: Any) -> int | None:
    """A byte count a client reported, if it is one."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def moved_bytes(result: dict[str, Any] | None, progress: dict[str, Any] | None) -> int | None:
    """The bytes a task moved: an image's raw bytes (capture, deploy, multicast), a wipe's written, a disk test's
    read; a task that did not finish: its last progress report's."""
    if isinstance(result, dict):
        surface = result.get("surface")
        for value in (result.get("raw_bytes"), result.get("bytes_written"),
                      surface.get("bytes_read") if isinstance(surface, dict) else None):
            if _count(value) is not None:
                return _count(value)
    if isinstance(progress, dict):
        return _count(progress.get("bytes_done"))
    return None


def history_row(row: Row) -> HistoryRow:
    result, progress, error = (json.loads(row[k]) if row[k] else None for k in ("result", "progress", "error"))
    started, finished = row["started"], row["finished"]
    duration = finished - started if started is not None and finished is not None else None
    moved = moved_bytes(result, progress)
    figures = figures_of(result, progress)
    error = error if isinstance(error, dict) else {}
    return {"id": row["id"], "host": row["host"], "mac": row["mac"], "type": row["type"], "image": row["image"],
            "state": row["state"], "queued_by": row["queued_by"] or UNKNOWN, "origin": row["origin"],
            "created": row["created"], "started": started, "finished": finished,
            "duration_s": None if duration is None else round(duration, 3), "bytes": moved,
            "rate_bps": round(moved / duration, 1) if moved is not None and duration else None,
            "reused_bytes": figures.get("reused_bytes"), "fetched_bytes": figures.get("fetched_bytes"),
            "wrote_bytes": figures.get("wrote_bytes"),
            "error_code": _text(error.get("code")), "error": _text(error.get("message"))}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


class Reports:
    def __init__(self, db: Database, hosts: Hosts, versions: ImageVersions) -> None:
        self.db, self.hosts, self.versions = db, hosts, versions

    def _where(self, selection: HistoryFilter) -> tuple[str, list[Any]]:
        where: list[str] = []
        args: list[Any] = []
        if selection.host:
            where.append("t.host_id = ?")
            args.append(self.hosts.host(selection.host)["id"])
        if selection.image:
            row = self.db.one("SELECT id FROM images WHERE name = ?", selection.image)
            if row is None and self.db.one("SELECT 1 FROM tasks WHERE image_name = ?", selection.image) is None:
                raise NotFound(f"no image {selection.image} (nor tasks of a removed image of that name)")
            where.append("t.image_id = ?" if row else "t.image_name = ?")
            args.append(row["id"] if row else selection.image)
        for bound, test in ((selection.since, "t.created >= ?"), (selection.until, "t.created < ?")):
            if bound is not None:
                where.append(test)
                args.append(bound)
        return ("WHERE " + " AND ".join(where) + " ") if where else "", args

    def task_history(self, selection: HistoryFilter, offset: int = 0,
                     limit: int = 100) -> tuple[list[HistoryRow], int]:
        """One page of the matching tasks, newest first, and how many match in all."""
        offset, checked = check_page(offset, limit)
        clause, args = self._where(selection)
        total = int(self.db.scalar("SELECT COUNT(*) FROM tasks t " + clause, *args))
        rows = self.db.all(_HISTORY + clause + "ORDER BY t.id DESC LIMIT ? OFFSET ?", *args, checked, offset)
        return [history_row(r) for r in rows], total

    def history_export(self, selection: HistoryFilter) -> list[HistoryRow]:
        """Every matching task, newest first; more than MAX_EXPORT_ROWS: refused, saying how to narrow it."""
        clause, args = self._where(selection)
        total = int(self.db.scalar("SELECT COUNT(*) FROM tasks t " + clause, *args))
        if total > MAX_EXPORT_ROWS:
            raise Invalid(f"{total} tasks match; an export holds at most {MAX_EXPORT_ROWS}: narrow it with since "
                          "and until (a month at a time), or a host or an image", field="since",
                          reason="too_many_rows", matched=total, limit=MAX_EXPORT_ROWS)
        return [history_row(r) for r in self.db.all(_HISTORY + clause + "ORDER BY t.id DESC", *args)]

    def storage_report(self) -> StorageReport:
        """Images with their versions on the nodes this server reaches, and each node's free space."""
        nodes = self.db.all_as(StorageNode, NODES + "ORDER BY s.name")
        images: list[ImageStorage] = []
        for image in self.db.all("SELECT i.name, i.type, i.captured, i.stored_bytes, g.name AS group_name "
                                 "FROM images i LEFT JOIN storage_groups g ON g.id = i.group_id ORDER BY i.name"):
            versions = self.versions.image_versions(image["name"])
            images.append({"name": image["name"], "group": image["group_name"], "type": image["type"],
                           "captured": image["captured"], "stored_bytes": image["stored_bytes"],
                           "versions": versions, "versions_bytes": sum(v["stored_bytes"] for v in versions)})
        spaces = [node_space(n) for n in nodes]
        own_files = sum(v["stored_bytes"] - v["chunk_bytes"] for i in images for v in i["versions"])
        return {"images": images, "nodes": spaces,
                "stored_bytes": own_files + sum(n["chunk_store_bytes"] or 0 for n in spaces)}


def node_space(node: StorageNode) -> NodeSpace:
    """The node's free and total bytes when its rsync target is a directory on this server (statvfs)."""
    target = node["rsync_target"]
    free = total = chunks = None
    if target and target.startswith("/"):
        try:
            stats = os.statvfs(target)
            free, total = stats.f_bavail * stats.f_frsize, stats.f_blocks * stats.f_frsize
        except OSError:
            pass
        if os.path.isdir(os.path.join(target, CHUNKS_DIR)):
            chunks = bytes_under(os.path.join(target, CHUNKS_DIR))
    return {"name": node["name"], "group": node["group_name"], "master": bool(node["master"]), "target": target,
            "free_bytes": free, "total_bytes": total, "chunk_store_bytes": chunks}
