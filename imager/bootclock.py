"""How long this boot took, stage by stage, in seconds since the kernel started (/proc/uptime).

/init writes the first marks (``init``: the kernel handed over; ``coldplug``: udev triggered) to
``/run/imager/boot-stages``; the agent adds its own (``python``: imports done, ``devices``: udev settled,
``network``: DHCP answered, ``checkin``: the server gave the task). ``stages()`` turns the marks into
durations, which the agent prints on the console and reports with its result (``boot``), so the lab's demo
and benchmark print the breakdown (docs/boot-time.md).
"""
from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

MARKS_FILE = "/run/imager/boot-stages"
UPTIME = "/proc/uptime"
# Each stage ends at its mark and begins at the one before; "kernel" begins at 0 (kernel start).
STAGES = [("kernel to /init", "init"), ("udev start", "coldplug"), ("python start", "python"),
          ("udev settle", "devices"), ("network", "network"), ("check-in", "checkin")]


def now(uptime: str = UPTIME) -> float | None:
    try:
        with open(uptime) as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def mark(name: str, path: str = MARKS_FILE, uptime: str = UPTIME) -> None:
    """Note that ``name`` happened now; never fails the boot (timing is a nicety)."""
    seconds = now(uptime)
    if seconds is None:
        return
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "a") as f:
            f.write(f"{name} {seconds:.2f}\n")
    except OSError as exc:
        log.debug("boot mark %s not written: %s", name, exc)


def marks(path: str = MARKS_FILE) -> dict[str, float]:
    """The marks written so far, the first of each name."""
    found: dict[str, float] = {}
    try:
        with open(path) as f:
            for line in f:
                name, _, value = line.partition(" ")
                try:
                    found.setdefault(name, float(value))
                except ValueError:
                    continue
    except OSError:
        pass
    return found


def stages(found: dict[str, float]) -> dict[str, float]:
    """Durations of the stages whose marks are there, in boot order, and ``total`` (kernel start → check-in).

    Python's imports overlap udev's coldplug (init starts both), so the stages are taken in the order their
    marks came and each counts from the mark before it: they add up to the total."""
    durations: dict[str, float] = {}
    previous = 0.0
    for label, name in sorted(STAGES, key=lambda s: found.get(s[1], float("inf"))):
        if name not in found:
            continue
        durations[label] = round(max(0.0, found[name] - previous), 2)
        previous = max(previous, found[name])
    if durations:
        durations["total"] = round(previous, 2)
    return durations


def summary(durations: dict[str, float]) -> str:
    parts = [f"{label} {seconds:.1f} s" for label, seconds in durations.items() if label != "total"]
    return f"boot after the kernel started: {', '.join(parts)}; task running {durations.get('total', 0):.1f} s"
