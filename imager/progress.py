"""Progress of one op: counted in bytes, shown on the console, sent to the server."""
from __future__ import annotations

import logging
import os
import time
from typing import Callable

log = logging.getLogger(__name__)

Sink = Callable[[dict], None]


class Progress:
    """Counts bytes; every ``interval`` seconds tells each sink where we are.

    Sinks are the console and the server; a sink raising (e.g. TaskCanceled)
    stops the op, which is how a cancel on the server reaches the data path.

    Two figures: the step (one partition, from zero at each ``set_stage``) and, once
    ``expect`` was told the whole task's bytes, the overall % and ETA across every step.
    """

    def __init__(self, sinks: list[Sink] | None = None, interval: float = 3.0) -> None:
        self.sinks = sinks or []
        self.interval = interval
        self._total = 0
        self.done = 0
        self.stored = 0  # compressed bytes of the step, when the data path counts them (compression ratio)
        self.stage = ""
        self.started = time.monotonic()
        self._last_sent = 0.0
        self.overall_total = 0   # 0: unknown, no overall figure
        self.overall_done = 0
        self.overall_started = self.started
        self.figures: Callable[[], dict[str, int]] | None = None  # a chunked deploy's reused/fetched/wrote

    @property
    def total(self) -> int:
        return self._total

    @total.setter
    def total(self, value: int) -> None:
        # A step's total revised while it runs (partclone's header: the used blocks, not the partition's size)
        # revises the overall total by as much: the overall figure becomes exact step by step.
        if self.overall_total:
            self.overall_total = max(self.overall_done, self.overall_total + value - self._total)
        self._total = value

    def expect(self, total: int) -> None:
        """The whole task's bytes (every stream, from the manifest; or an estimate a step's total refines)."""
        self.overall_total = max(0, total)
        self.overall_done = 0
        self.overall_started = time.monotonic()

    def set_stage(self, stage: str, *, total: int) -> None:
        """Start counting a new step (one partition) from zero."""
        if self.overall_total and self.stage and self.done != self._total:
            # the step that ended moved more or fewer bytes than it announced: the overall total follows
            self.overall_total = max(self.overall_done, self.overall_total + self.done - self._total)
        self.stage = stage
        self._total = total
        self.done = 0
        self.stored = 0
        self.started = time.monotonic()
        self._emit()

    def add_stored(self, n: int) -> None:
        """Compressed bytes written (capture) or read (deploy); reported with the next ``add``."""
        self.stored += n

    def add(self, n: int) -> None:
        self.done += n
        self.overall_done += n
        now = time.monotonic()
        if now - self._last_sent >= self.interval:
            self._emit(now)

    def flush(self) -> None:
        """Report now (the end of a step), whatever the interval."""
        self._emit()

    def snapshot(self) -> dict:
        now = time.monotonic()
        elapsed = max(now - self.started, 1e-6)
        rate = self.done / elapsed
        percent = min(100.0, 100.0 * self.done / self.total) if self.total else 0.0
        eta = (self.total - self.done) / rate if rate > 0 and self.total > self.done else 0.0
        snap = {"stage": self.stage, "bytes_done": self.done, "bytes_total": self.total,
                "percent": round(percent, 1), "rate_bps": int(rate), "eta_s": int(eta)}
        if self.stored:  # raw bytes per stored byte, e.g. 2.4 (the image is 2.4× smaller than the data)
            snap.update(stored_bytes=self.stored, ratio=round(self.done / self.stored, 2))
        if self.figures is not None:
            snap.update(self.figures())
        if self.overall_total:
            left = self.overall_total - self.overall_done
            overall_rate = self.overall_done / max(now - self.overall_started, 1e-6)
            snap.update(overall_percent=round(min(100.0, 100.0 * self.overall_done / self.overall_total), 1),
                        overall_eta_s=int(left / overall_rate) if overall_rate > 0 and left > 0 else 0)
        return snap

    def _emit(self, now: float | None = None) -> None:
        self._last_sent = now or time.monotonic()
        snap = self.snapshot()
        for sink in self.sinks:
            sink(snap)


def console_sink(snap: dict) -> None:
    overall = ""
    if "overall_percent" in snap:
        overall = f"  | overall {snap['overall_percent']:5.1f}%  ETA {duration(snap['overall_eta_s'])}"
    if "reused_bytes" in snap:
        overall += (f"  | reused {human(snap['reused_bytes'])}, fetched {human(snap['fetched_bytes'])}, "
                    f"wrote {human(snap['wrote_bytes'])}")
    log.info("%s: %5.1f%%  %s / %s  %s/s  ETA %s%s", snap["stage"] or "working", snap["percent"],
             human(snap["bytes_done"]), human(snap["bytes_total"]), human(snap["rate_bps"]),
             duration(snap["eta_s"]), overall)


def duration(seconds: float) -> str:
    """1h02m, 4m05s, 9s: an ETA a person reads at a glance."""
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def partition_bytes(disk_path: str) -> int:
    """The sum of a disk's partition sizes (sysfs): what a capture streams at most.

    An estimate for ``Progress.expect``: partclone's header then tells each step's real bytes.
    """
    name = os.path.basename(os.path.realpath(disk_path))
    sys_dir = f"/sys/class/block/{name}"
    total = 0
    try:
        entries = os.listdir(sys_dir)
    except OSError:
        return 0
    for entry in entries:
        try:
            if entry.startswith(name) and os.path.exists(os.path.join(sys_dir, entry, "partition")):
                with open(os.path.join(sys_dir, entry, "size")) as f:
                    total += int(f.read()) * 512  # sysfs counts 512-byte units whatever the sector size
        except (OSError, ValueError):  # a partition the kernel is removing meanwhile
            continue
    return total


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"
