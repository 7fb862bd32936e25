"""An incremental deploy's three figures (issue 17): what it reused from the disk, fetched from the store and
wrote to the disk, in bytes. A deploy's progress reports and its result may carry them; the task record keeps
them (in its progress and result JSON) and every face shows them the same way: "reused 1.2 GiB, fetched
30.0 MiB, wrote 2.0 GiB".

Standard library and the error hierarchy only: the CLI imports it without aiohttp.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, TypedDict, cast

from server_stub.errors import Invalid

FIGURES = ("reused_bytes", "fetched_bytes", "wrote_bytes")
MAX_BYTES = 2**63 - 1  # SQLite's integers; JSON would take more, nothing reads them back then


class DeployFigures(TypedDict, total=False):
    reused_bytes: int
    fetched_bytes: int
    wrote_bytes: int


def check_figures(body: Mapping[str, Any], where: str) -> None:
    """Each figure present is a whole number of bytes ≥ 0; else Invalid naming it (``where``: result, progress)."""
    for key in FIGURES:
        if key not in body:
            continue
        value = body[key]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_BYTES:
            raise Invalid(f"{where}.{key} must be a whole number of bytes, 0 or more; got {value!r}",
                          field=f"{where}.{key}")


def figures_of(*reports: Any) -> DeployFigures:
    """The figures of the first report (a result, then a progress snapshot) that has any; {} when none does.
    Stored reports were checked when they came, but older rows or other tasks may hold anything."""
    for report in reports:
        if not isinstance(report, Mapping):
            continue
        found = {key: report[key] for key in FIGURES
                 if isinstance(report.get(key), int) and not isinstance(report.get(key), bool) and report[key] >= 0}
        if found:
            return cast(DeployFigures, found)
    return {}


def figures_text(figures: Mapping[str, Any], size: Callable[[int], str]) -> str:
    """'reused 1.2 GiB, fetched 30.0 MiB, wrote 2.0 GiB' (only those present), sizes by the face's ``size``."""
    return ", ".join(f"{key.removesuffix('_bytes')} {size(figures[key])}" for key in FIGURES if key in figures)
