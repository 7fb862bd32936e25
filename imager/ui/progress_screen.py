"""The progress screen (blessed) and the failure screen a technician reads at the machine.

``progress_lines`` and ``failure_lines`` lay a screen out as plain text lines (pure functions, unit
tested at 80×24); ``ProgressScreen`` draws them on the console.  The figures are the snapshot that
``imager.progress.Progress`` computes and sends to the server: nothing is recomputed here.  Only
ASCII is drawn, so a serial console (vt100) shows the same screen as the VGA console.
"""
from __future__ import annotations

import logging
import re
import sys
import textwrap
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from imager.progress import human

if TYPE_CHECKING:  # blessed is imported only when a screen is drawn
    from blessed import Terminal

WIDTH, HEIGHT = 80, 24
_PART = re.compile(r"partition (\d+)/(\d+)")
# terminfo padding (vt100: clear=\E[H\E[J$<50>) is for tputs to turn into delays; a terminal prints it.
_PADDING = re.compile(r"\$<[0-9.]+[*/]*>")


def _write(stream: IO[str], text: str) -> None:
    stream.write(_PADDING.sub("", text))
    stream.flush()


@dataclass
class Job:
    """What the screen's header says: the op, the image, the disk, the task."""
    op: str
    image: str = ""
    disk: str = ""
    task: int | None = None
    host: str = ""
    log: list[str] = field(default_factory=list)  # the last log lines, shown at the bottom


def clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def bar(percent: float, width: int) -> str:
    inner = width - 2
    filled = int(inner * min(100.0, max(0.0, percent)) / 100)
    return "[" + "#" * filled + "." * (inner - filled) + "]"


def _header(title: str, right: str, width: int) -> list[str]:
    left = f" imager - {title}"
    return [left + right.rjust(width - len(left) - 1)[: max(0, width - len(left) - 1)] + " ", "=" * width]


def _fit(lines: list[str], width: int, height: int) -> list[str]:
    lines = [line[:width].ljust(width) for line in lines[:height]]
    return lines + [" " * width] * (height - len(lines))


def progress_lines(job: Job, snap: dict[str, Any], width: int = WIDTH, height: int = HEIGHT) -> list[str]:
    """The progress screen as ``height`` lines of ``width`` characters."""
    stage = snap.get("stage") or "starting"
    step = ""
    match = _PART.search(stage)
    if match:
        step = f"partition {match.group(1)} of {match.group(2)}"
    total, done = snap.get("bytes_total", 0), snap.get("bytes_done", 0)
    right = " ".join(x for x in (job.host, f"task {job.task}" if job.task else "") if x)
    lines = _header(job.op, right, width)
    lines += ["", f"  Image        {job.image or '-'}", f"  Disk         {job.disk or '-'}",
              f"  Step         {step or stage}"]
    lines.append(f"               {stage}" if step else "")
    lines += ["", "  " + bar(snap.get("percent", 0.0), width - 14) + f" {snap.get('percent', 0.0):5.1f} %", ""]
    lines.append(f"  Done         {human(done)} of {human(total)}" if total else f"  Done         {human(done)}")
    lines.append(f"  Rate         {human(snap.get('rate_bps', 0))}/s")
    lines.append(f"  Time left    {clock(snap.get('eta_s', 0))}" if total else "  Time left    -")
    if "overall_percent" in snap:  # across every partition of the task
        lines.append(f"  Overall      {snap['overall_percent']:5.1f} %   {clock(snap.get('overall_eta_s', 0))} left")
    if snap.get("ratio"):
        lines.append(f"  Compression  {snap['ratio']:.2f} : 1   ({human(snap.get('stored_bytes', 0))} stored)")
    else:
        lines.append("  Compression  -")
    if "reused_bytes" in snap:  # a chunked deploy: what the disk already held, what came, what was written
        lines.append(f"  Reused {human(snap['reused_bytes'])}, fetched {human(snap['fetched_bytes'])}, "
                     f"wrote {human(snap['wrote_bytes'])}")
    lines.append("")
    log_room = height - len(lines) - 2
    lines.append("-" * width)
    lines += ["  " + line for line in job.log[-log_room:]] if log_room > 0 else []
    lines = _fit(lines, width, height - 1)
    return lines + [" Do not power off: the disk is in use. The server sees these figures too."[:width].ljust(width)]


def failure_lines(code: str, message: str, hint: str, *, job: Job | None = None, footer: str = "",
                  width: int = WIDTH, height: int = HEIGHT) -> list[str]:
    """The failure screen: what happened and what to do, filling the screen."""
    wrap = textwrap.TextWrapper(width=width - 6, initial_indent="    ", subsequent_indent="    ")
    right = " ".join(x for x in ((job.host if job else ""), f"task {job.task}" if job and job.task else "") if x)
    lines = _header(f"TASK FAILED ({code})", right, width)
    if job:
        lines += ["", f"  {job.op}" + (f" of image {job.image}" if job.image else "")
                  + (f" on {job.disk}" if job.disk else "")]
    lines += ["", "  What happened:"] + wrap.wrap(message or "-")
    lines += ["", "  What to do:"] + wrap.wrap(hint or "See the log lines below.")
    body = lines + [""]
    log_room = height - len(body) - 3
    if job and job.log and log_room > 1:
        body += ["  Last log lines:"] + ["    " + line for line in job.log[-(log_room - 1):]]
    body = _fit(body, width, height - 2)
    return body + ["=" * width, f" {footer}"[:width].ljust(width)]


class ScreenLog(logging.Handler):
    """While a screen is up, log lines go into its log area instead of scrolling over it."""

    def __init__(self, job: Job, keep: int = 40) -> None:
        super().__init__()
        self.job, self.keep = job, keep
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.job.log.append(self.format(record).splitlines()[0][:200])
        del self.job.log[:-self.keep]


def terminal(stream: IO[str] | None = None, kind: str | None = None) -> Terminal:
    import blessed  # imported here: the plain-text fallback must work without it
    return blessed.Terminal(kind=kind, stream=stream or sys.stdout, force_styling=True)


def screen_size(term: Terminal) -> tuple[int, int]:
    """The console's size; a serial console does not know its own (0×0): assume 80×24."""
    try:
        width, height = term.width, term.height
    except Exception:  # noqa: BLE001 - no size is not an error here
        width = height = 0
    return (width if width > 0 else WIDTH), (height if height > 0 else HEIGHT)


class ProgressScreen:
    """A sink for ``Progress``: redraws the screen on every snapshot, and captures the log meanwhile."""

    def __init__(self, job: Job, term: Terminal | None = None, stream: IO[str] | None = None) -> None:
        self.job = job
        self.stream = stream or sys.stdout
        self.term = term or terminal(self.stream)
        self.handler = ScreenLog(job)
        self._muted: list[logging.Handler] = []
        self.last: dict[str, Any] = {}

    def __enter__(self) -> "ProgressScreen":
        root = logging.getLogger()
        # The console handlers would scroll over the screen; the log tail (sent to the server) stays.
        self._muted = [h for h in root.handlers if isinstance(h, logging.StreamHandler)
                       and getattr(h, "stream", None) in (sys.stdout, sys.stderr, self.stream)]
        for h in self._muted:
            root.removeHandler(h)
        root.addHandler(self.handler)
        _write(self.stream, self.term.clear)
        return self

    def __exit__(self, *exc: object) -> None:
        root = logging.getLogger()
        root.removeHandler(self.handler)
        for h in self._muted:
            root.addHandler(h)
        _write(self.stream, self.term.move_xy(0, screen_size(self.term)[1] - 1) + "\n")

    def __call__(self, snap: dict[str, Any]) -> None:
        self.last = snap
        width, height = screen_size(self.term)
        draw(self.term, progress_lines(self.job, snap, width, height), self.stream, emphasis=(0,))


def draw(term: Terminal, lines: list[str], stream: IO[str], emphasis: tuple[int, ...] = (), alert: bool = False) -> None:
    """Whole lines at their place: no scrolling, so a slow serial line shows a steady screen."""
    out: list[str] = [term.home]
    for y, line in enumerate(lines):
        text = line.rstrip() if y == len(lines) - 1 else line  # never write the last cell: it would scroll
        if alert and y in emphasis:
            text = term.reverse(text)
        elif y in emphasis:
            text = term.bold(text)
        out.append(term.move_xy(0, y) + text)
    _write(stream, "".join(out))


def show_failure_screen(code: str, message: str, hint: str, job: Job | None, footer: str,
                        stream: IO[str] | None = None, term: Terminal | None = None) -> None:
    stream = stream or sys.stdout
    term = term or terminal(stream)
    width, height = screen_size(term)
    _write(stream, term.clear)
    draw(term, failure_lines(code, message, hint, job=job, footer=footer, width=width, height=height), stream,
         emphasis=(0,), alert=True)
