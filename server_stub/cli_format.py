"""How every ``imager-server`` admin command prints: with ``--json`` the API's answer as it came (pretty
JSON, nothing added); otherwise for a person, tables and ``key: value`` records with local times and sizes
in KiB/MiB/GiB. One rule decides how a field looks, by its name: ``TIME_FIELDS`` are times (the API sends
epoch seconds), ``bytes`` and ``*_bytes`` are sizes.
"""
from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from typing import Any, Callable, Sequence

TIME_FIELDS = frozenset({"created", "started", "finished", "captured", "time", "updated", "collected", "waited",
                         "first_ready", "password_changed", "expires"})
SIZE_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB")


def local_time(value: Any) -> str:
    """Epoch seconds, or an ISO 8601 text (UTC when it names no zone), as local time; '' for none."""
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        moment = datetime.datetime.fromtimestamp(value, datetime.timezone.utc)
    else:
        try:
            moment = datetime.datetime.fromisoformat(str(value))
        except ValueError:
            return str(value)  # not a time after all: show it as it came
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def human_size(value: Any) -> str:
    """Bytes in binary units, one decimal: 6005 → '5.9 KiB'; '' for none."""
    if value is None or value == "" or isinstance(value, bool):
        return ""
    if not isinstance(value, (int, float)):
        return str(value)
    size, unit = float(value), "B"
    for bigger in SIZE_UNITS:
        if abs(size) < 1024:
            break
        size, unit = size / 1024, bigger
    return f"{int(value)} B" if unit == "B" else f"{size:.1f} {unit}"


def cell(key: str, value: Any) -> str:
    """One value as a person reads it; the field's name says whether it is a time or a size."""
    if value is None:
        return ""
    if key in TIME_FIELDS:
        return local_time(value)
    if key == "bytes" or key.endswith("_bytes"):
        return human_size(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list) and not any(isinstance(v, (dict, list)) for v in value):
        return ", ".join(str(v) for v in value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


@dataclass(frozen=True)
class Column:
    """A table column: its heading and how a row gives its cell."""
    title: str
    value: Callable[[dict], str]


def field(key: str, title: str = "") -> Column:
    """The row's ``key``, shown by ``cell``'s rule."""
    return Column(title or key, lambda row: cell(key, row.get(key)))


def computed(title: str, value: Callable[[dict], Any]) -> Column:
    return Column(title, lambda row: "" if value(row) is None else str(value(row)))


def table(rows: Sequence[dict], columns: Sequence[Column | str]) -> str:
    """Rows under upper-case headings, columns two spaces apart; a str column is ``field(str)``."""
    cols = [field(c) if isinstance(c, str) else c for c in columns]
    cells = [[" ".join(c.value(r).split()) for c in cols] for r in rows]  # one line a row, whatever a cell holds
    widths = [max([len(c.title)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
    lines = ["  ".join(c.title.upper().ljust(w) for c, w in zip(cols, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def record(data: dict, keys: Sequence[str] | None = None) -> str:
    """One object as ``key: value`` lines (every key, in the API's order, unless ``keys`` are given)."""
    shown = list(keys) if keys is not None else list(data)
    width = max((len(k) for k in shown), default=0) + 2
    return "\n".join(f"{(k + ':').ljust(width)}{cell(k, data.get(k)) or '-'}" for k in shown)


def as_text(data: Any) -> str:
    """Any answer without a view of its own: a record, a table of records, or the value."""
    if isinstance(data, dict):
        return record(data)
    if isinstance(data, list) and data and all(isinstance(r, dict) for r in data):
        keys = [k for k in data[0] if not isinstance(data[0][k], (dict, list))]
        return table(data, keys)
    if isinstance(data, list) and not data:
        return "(none)"
    return str(data)


@dataclass
class Answer:
    """A command's result: ``data``, the API's answer (``--json`` prints it); ``text()``, the view for people
    (default ``as_text``)."""
    data: Any
    view: Callable[[], str] | None = None

    def text(self) -> str:
        return self.view() if self.view is not None else as_text(self.data)


def to_json(data: Any, compact: bool = False) -> str:
    """Strict JSON (the API's answers are): pretty, or one line each (``task list --watch --json``)."""
    if compact:
        return json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return json.dumps(data, ensure_ascii=False, allow_nan=False, indent=2)


def output(result: Any, as_json: bool) -> str:
    """What a command prints: an ``Answer`` as JSON or text; anything else (an API answer) the same way."""
    answer = result if isinstance(result, Answer) else Answer(result)
    return to_json(answer.data) if as_json else answer.text()
