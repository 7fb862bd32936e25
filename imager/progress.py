"""Progress of one op: counted in bytes, shown on the console, sent to the server."""
from __future__ import annotations

import logging
import time
from typing import Callable

log = logging.getLogger(__name__)

Sink = Callable[[dict], None]


class Progress:
    """Counts bytes; every ``interval`` seconds tells each sink where we are.

    Sinks are the console and the server; a sink raising (e.g. TaskCanceled)
    stops the op, which is how a cancel on the server reaches the data path.
    """

    def __init__(self, sinks: list[Sink] | None = None, interval: float = 3.0) -> None:
        self.sinks = sinks or []
        self.interval = interval
        self.total = 0
        self.done = 0
        self.stored = 0  # compressed bytes of the step, when the data path counts them (compression ratio)
        self.stage = ""
        self.started = time.monotonic()
        self._last_sent = 0.0

    def set_stage(self, stage: str, *, total: int) -> None:
        """Start counting a new step (one partition) from zero."""
        self.stage = stage
        self.total = total
        self.done = 0
        self.stored = 0
        self.started = time.monotonic()
        self._emit()

    def add_stored(self, n: int) -> None:
        """Compressed bytes written (capture) or read (deploy); reported with the next ``add``."""
        self.stored += n

    def add(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._last_sent >= self.interval:
            self._emit(now)

    def flush(self) -> None:
        """Report now (the end of a step), whatever the interval."""
        self._emit()

    def snapshot(self) -> dict:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = self.done / elapsed
        percent = min(100.0, 100.0 * self.done / self.total) if self.total else 0.0
        eta = (self.total - self.done) / rate if rate > 0 and self.total > self.done else 0.0
        snap = {"stage": self.stage, "bytes_done": self.done, "bytes_total": self.total,
                "percent": round(percent, 1), "rate_bps": int(rate), "eta_s": int(eta)}
        if self.stored:  # raw bytes per stored byte, e.g. 2.4 (the image is 2.4× smaller than the data)
            snap.update(stored_bytes=self.stored, ratio=round(self.done / self.stored, 2))
        return snap

    def _emit(self, now: float | None = None) -> None:
        self._last_sent = now or time.monotonic()
        snap = self.snapshot()
        for sink in self.sinks:
            sink(snap)


def console_sink(snap: dict) -> None:
    log.info("%s: %5.1f%%  %s / %s  %s/s  ETA %ds", snap["stage"] or "working", snap["percent"],
             human(snap["bytes_done"]), human(snap["bytes_total"]), human(snap["rate_bps"]), snap["eta_s"])


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"
