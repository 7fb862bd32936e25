"""A task history as CSV (RFC 4180: a header row, fields quoted when needed, CRLF line ends), the same bytes from
the API (``GET /api/reports/tasks.csv``) and the CLI (``report tasks --csv``).

Safe to open in a spreadsheet: a cell a spreadsheet would read as a formula (starting with = + - @, or a tab or
carriage return, OWASP's list) gets a leading ``'``; host names, error messages and user names come from
outside. Times are ISO 8601 in the server's time zone with their offset; sizes in bytes, rates in bytes/s.
Standard library only: the CLI imports it without aiohttp.
"""
from __future__ import annotations

import csv
import datetime
import io
from typing import Any, Iterable, Mapping

COLUMNS = ("id", "host", "mac", "type", "image", "state", "queued_by", "origin", "created", "started", "finished",
           "duration_s", "bytes", "rate_bps", "reused_bytes", "fetched_bytes", "wrote_bytes", "error_code", "error")
TIME_COLUMNS = frozenset({"created", "started", "finished"})
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
MEDIA_TYPE = "text/csv"


def safe_cell(value: Any, key: str = "") -> str:
    """One value as CSV text: times in ISO 8601, text that a spreadsheet would run as a formula defused."""
    if value is None:
        return ""
    if key in TIME_COLUMNS and isinstance(value, (int, float)):
        return datetime.datetime.fromtimestamp(value).astimezone().isoformat(timespec="seconds")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return str(value)  # numbers stay numbers (our counts are never negative)
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def history_csv(rows: Iterable[Mapping[str, Any]]) -> str:
    """The header row, then one line a task."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([safe_cell(row.get(key), key) for key in COLUMNS])
    return out.getvalue()
