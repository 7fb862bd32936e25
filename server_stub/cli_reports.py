"""``imager-server report tasks|storage``: the task history (a table, or ``--csv``) and the storage report, over
the HTTP API of server_stub/reportsapi.py. The CSV is written by server_stub/reports_csv.py, as the API's export,
from the history a page at a time (each call bounded by the server's page size).
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from server_stub.cli_connection import Call, all_rows
from server_stub.cli_format import Answer, Column, computed, field, human_size, table
from server_stub.reports_csv import history_csv

HISTORY_COLUMNS: list[Column | str] = [
    "id", "host", "type", "image", "state", "queued_by", "created",
    computed("duration", lambda t: duration_text(t.get("duration_s"))), "bytes",
    computed("rate", lambda t: None if t.get("rate_bps") is None else human_size(t["rate_bps"]) + "/s"),
    computed("error", lambda t: ": ".join(p for p in (t.get("error_code"), t.get("error")) if p) or None)]
UNKNOWN = "unknown"


def duration_text(seconds: Any) -> str | None:
    if not isinstance(seconds, (int, float)):
        return None
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    return (f"{hours}h" if hours else "") + f"{rest // 60:02d}m{rest % 60:02d}s"


def add_parsers(sub: argparse._SubParsersAction) -> None:
    report = sub.add_parser("report", help="history and reports: every task of a host or an image, storage use")
    kinds = report.add_subparsers(dest="report", required=True)
    p = kinds.add_parser("tasks", help="the task history, newest first: duration, bytes, rate, result, who queued")
    p.add_argument("--host", default=None, help="this host's tasks (name or MAC)")
    p.add_argument("--image", default=None, help="this image's tasks (a removed image's too)")
    p.add_argument("--since", default=None, help="queued on or after DATE (2026-12-01, or 2026-12-01T08:30; "
                                                 "the server's time zone unless an offset is given)")
    p.add_argument("--until", default=None, help="queued before DATE (a bare date includes that day)")
    p.add_argument("--csv", action="store_true", help="print CSV (a header row; as GET /api/reports/tasks.csv)")
    kinds.add_parser("storage", help="images, their versions and stored size; free space per storage node")


def run(args: argparse.Namespace, call: Call) -> Any:
    if args.command != "report":
        return NotImplemented
    if args.report == "storage":
        report = call("GET", "/api/reports/storage")
        return Answer(report, lambda: storage_text(report))
    rows = all_rows(call, "/api/reports/tasks",
                    {"host": args.host, "image": args.image, "since": args.since, "until": args.until})
    if args.csv and not getattr(args, "json", False):
        sys.stdout.write(history_csv(rows))
        sys.stdout.flush()
        return None
    return Answer(rows, lambda: table(rows, HISTORY_COLUMNS) if rows else "(no tasks)")


def storage_text(report: dict[str, Any]) -> str:
    images = [{**i, "versions_count": len(i["versions"]),
               "current": ", ".join(sorted({v["version"] for v in i["versions"] if v["current"]})) or "-"}
              for i in report["images"]]
    image_table = table(images, ["name", "group", "type", field("versions_count", "versions"), "current",
                                 computed("stored", lambda i: human_size(i["versions_bytes"]))]) \
        if images else "(no images)"
    node_table = table(report["nodes"], [
        field("name", "node"), "group", "target",
        computed("chunks", lambda n: "-" if n["chunk_store_bytes"] is None else human_size(n["chunk_store_bytes"])),
        computed("free", lambda n: UNKNOWN if n["free_bytes"] is None else human_size(n["free_bytes"])),
        computed("size", lambda n: UNKNOWN if n["total_bytes"] is None else human_size(n["total_bytes"]))]) \
        if report["nodes"] else "(no storage nodes)"
    return (f"{image_table}\n\nstored in all: {human_size(report['stored_bytes'])} (every version on the nodes "
            f"this server reaches, shared chunks counted once)\n\n{node_table}")
