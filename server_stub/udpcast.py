"""udpcast for multicast deploys on the server: the sender process and what it says (argv: contract.udpcast).

The flags are those of Debian's udpcast 20120424 (the version the server and the boot image carry).
Why the defaults are what they are — ack-based full duplex, slice size, drop policy, TTL — is measured
and explained in docs/multicast.md (numbers from bench/multicast.py).

    argv = sender_argv(SenderOptions(portbase=9010, interface="eth0", min_receivers=4), Path("d1p2.img"))
    with SenderProcess(argv) as sender:          # leaving the block stops it: SIGTERM, then SIGKILL
        result = sender.wait(timeout=3600)
    if not result.ok: ...                         # exit status 0 alone means nothing, see SenderResult.ok

Facts about this udpcast version that the code relies on (checked against the binary):
- udp-sender exits 0 when --start-timeout expires without any receiver, so success is "exit 0 and
  'Transfer complete.' on stderr", not the exit status alone;
- the rendezvous goes to the interface's broadcast address (with --ttl 1): an interface configured
  without one (`ip addr add A/P` without `brd +`) makes udp-receiver fail with "Receiver error";
- --min-wait / --max-wait / --start-timeout are whole seconds; the default packet size 1456 is the maximum;
- udp-sender ignores SIGTERM once the transfer runs (SenderProcess.stop escalates to SIGKILL);
- without --rexmit-hello-interval the HELLO goes out once, and a receiver that missed it never joins;
- --log diverts udp-sender's messages from stderr, so SenderOptions has no log (SenderProcess keeps a copy);
- full duplex is this version's default mode, but we always say which mode we want.
"""
from __future__ import annotations

import atexit
import collections
import dataclasses
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import IO, Sequence

from contract.udpcast import (DEFAULT_PORTBASE, MAX_BLOCKSIZE, MAX_SLICE_SIZE, UDP_RECEIVER, UDP_SENDER, Mode,
                              ReceiverOptions, SenderOptions, UdpcastError, receiver_argv, sender_argv)

__all__ = ["DEFAULT_PORTBASE", "MAX_BLOCKSIZE", "MAX_SLICE_SIZE", "UDP_RECEIVER", "UDP_SENDER", "Mode",
           "ReceiverOptions", "SenderOptions", "UdpcastError", "receiver_argv", "sender_argv",
           "SenderResult", "SenderProcess"]


# --- what udp-sender says on stderr --------------------------------------------------------------------

_CONNECTED = re.compile(r"^New connection from (\S+)\s+\(#(\d+)\)")
_DROPPED = re.compile(r"^Dropping client #(\d+) because of timeout")
_PROGRESS = re.compile(r"^bytes=\s*([\d ]+?)\s+re-xmits=(\d+)")


@dataclasses.dataclass
class SenderResult:
    """What one udp-sender did, from its exit status and its stderr."""

    returncode: int | None = None         # None while running; negative: killed by that signal
    stopped: bool = False                 # we stopped it (SIGTERM/SIGKILL) before it ended by itself
    started: bool = False                 # "Starting transfer"
    completed: bool = False               # "Transfer complete."
    receivers: dict[int, str] = dataclasses.field(default_factory=dict)  # participant number → address
    dropped: list[str] = dataclasses.field(default_factory=list)         # addresses dropped for not answering
    bytes_sent: int = 0
    retransmits: int = 0
    stderr_tail: str = ""

    @property
    def ok(self) -> bool:
        """Every byte went out and at least one receiver acknowledged to the end (or async finished)."""
        return self.returncode == 0 and self.completed and not self.stopped \
            and len(self.dropped) < max(len(self.receivers), 1)

    @property
    def status(self) -> str:
        if self.returncode is None:
            return "running"
        if self.returncode < 0:
            how = f"killed by {signal.Signals(-self.returncode).name}"
        else:
            how = f"exit {self.returncode}"
        if self.stopped:
            return f"stopped ({how})"
        if self.returncode == 0 and not self.started:
            return f"no transfer: no receiver in time ({how})"
        if self.returncode == 0 and self.completed and not self.receivers:
            return f"complete, receivers unknown (async) ({how})"
        if self.returncode == 0 and self.completed:
            return f"complete to {len(self.receivers) - len(self.dropped)} of {len(self.receivers)} receivers ({how})"
        return how


class SenderProcess:
    """Owns one udp-sender: starts it, watches its stderr, stops it by PID, reports how it ended.

    ``argv`` is what sender_argv() built; ``wrapper`` goes in front of it and must exec, not fork
    (for example ``ip netns exec NS``), so that the PID we hold is udp-sender's own.
    ``stdin`` is the data when the argv has no --file (a file object or descriptor), else /dev/null.
    As a context manager it starts on entry and guarantees on exit that the process is gone.

    udp-sender 20120424 dies at once on SIGTERM while it waits for receivers, but ignores SIGTERM once
    the transfer runs (measured: it kept sending until SIGKILL), hence the short default grace.
    """

    _live: "set[SenderProcess]" = set()    # started and not yet reaped: what the atexit hook stops

    def __init__(self, argv: Sequence[str], *, wrapper: Sequence[str] = (), stdin: IO[bytes] | int | None = None,
                 stderr_log: Path | None = None, tail_lines: int = 40, term_timeout: float = 2.0,
                 cwd: str | None = None) -> None:
        if not argv:
            raise ValueError("empty argv")
        self.argv = [*wrapper, *argv]
        self._cwd = cwd   # a sender fed on stdin runs in its image's directory: how a restarted server knows it
        self._stdin = stdin
        self._stderr_log = stderr_log
        self._term_timeout = term_timeout
        self._tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
        self._result = SenderResult()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self.started_at: float | None = None
        self.transfer_started_at: float | None = None   # monotonic time of "Starting transfer"
        self.ended_at: float | None = None

    # lifecycle
    def start(self) -> "SenderProcess":
        if self._proc is not None:
            raise RuntimeError("this SenderProcess was already started")
        self._proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL if self._stdin is None else self._stdin,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=self._cwd,
                                      start_new_session=True)  # a terminal's ^C reaches us, and we stop it
        self.started_at = time.monotonic()
        SenderProcess._live.add(self)
        self._reader = threading.Thread(target=self._read_stderr, name=f"udp-sender-{self._proc.pid}", daemon=True)
        self._reader.start()
        return self

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def poll(self) -> int | None:
        if self._proc is None:
            return None
        rc = self._proc.poll()
        if rc is not None:
            self._finish(rc)
        return rc

    def running(self) -> bool:
        return self._proc is not None and self.poll() is None

    def wait(self, timeout: float | None = None) -> SenderResult:
        """Waits for udp-sender to end by itself; raises subprocess.TimeoutExpired (it keeps running)."""
        if self._proc is None:
            raise RuntimeError("not started")
        self._finish(self._proc.wait(timeout))
        return self.result()

    def stop(self, term_timeout: float | None = None) -> SenderResult:
        """SIGTERM, then SIGKILL after ``term_timeout`` seconds; only our own child, only while unreaped."""
        if self._proc is None:
            return self.result()
        grace = self._term_timeout if term_timeout is None else term_timeout
        if self._proc.poll() is None:
            with self._lock:
                self._result.stopped = True
            # Popen.send_signal signals only a child it has not reaped yet: the PID cannot be someone else's.
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(grace)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._finish(self._proc.returncode)
        return self.result()

    def result(self) -> SenderResult:
        self.poll()
        with self._lock:
            r = dataclasses.replace(self._result, receivers=dict(self._result.receivers),
                                    dropped=list(self._result.dropped))
            r.stderr_tail = "\n".join(self._tail)
        return r

    def __enter__(self) -> "SenderProcess":
        return self.start() if self._proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # internals
    def _finish(self, returncode: int) -> None:
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(2.0)   # stderr hits EOF once udp-sender is gone
        with self._lock:
            self._result.returncode = returncode
        if self.ended_at is None:
            self.ended_at = time.monotonic()
        SenderProcess._live.discard(self)

    def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        pending = b""
        fd = self._proc.stderr.fileno()
        log = open(self._stderr_log, "ab") if self._stderr_log is not None else None
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            if log is not None:
                log.write(chunk)
                log.flush()
            pending += chunk
            *lines, pending = re.split(rb"[\r\n]", pending)
            for raw in lines:
                self._line(raw.decode("utf-8", "replace").strip())
        if pending:
            self._line(pending.decode("utf-8", "replace").strip())
        if log is not None:
            log.close()
        self._proc.stderr.close()

    def _line(self, line: str) -> None:
        if not line:
            return
        with self._lock:
            r = self._result
            m = _PROGRESS.match(line)
            if m:
                r.bytes_sent = int(m.group(1).replace(" ", ""))
                r.retransmits = int(m.group(2))
                if self._tail and self._tail[-1].startswith("bytes="):
                    self._tail[-1] = line      # progress overwrites itself, like on a terminal
                else:
                    self._tail.append(line)
                return
            self._tail.append(line)
            if line.startswith("Starting transfer"):
                r.started = True
                self.transfer_started_at = time.monotonic()
            elif line.startswith("Transfer complete."):
                r.completed = True
            elif m := _CONNECTED.match(line):
                r.receivers[int(m.group(2))] = m.group(1)
            elif m := _DROPPED.match(line):
                address = r.receivers.get(int(m.group(1)), f"#{m.group(1)}")
                if address not in r.dropped:
                    r.dropped.append(address)


@atexit.register
def _stop_leftover_senders() -> None:
    """A sender that outlives the interpreter is the 'stray udp-sender' FOG sites know: never leave one."""
    for sender in list(SenderProcess._live):
        sender.stop(term_timeout=2.0)
