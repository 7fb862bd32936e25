"""The one place imager starts other programs.

Everything external (partclone, sfdisk, sgdisk, mount, udhcpc …) goes through
``run`` (wait for it, capture output) or ``spawn`` (stream through its pipes).
Both log the command line and the program's stderr, and turn a non-zero exit
into ``CommandFailed`` carrying the tail of stderr.  Unit tests patch
``_popen`` to make accidental shelling-out impossible.

Children never outlive imager: each gets PR_SET_PDEATHSIG (SIGKILL when the
imager thread that started it dies, even by SIGKILL) and its own process group,
so a Ctrl-C on the terminal reaches imager alone, which then stops them in order.
``interruptible()`` turns SIGINT, SIGTERM and SIGHUP into ``Interrupted`` so an
op's cleanup (grow the source back, drop the staging version, blank a half
written disk) runs; a program started with ``run`` (resize2fs, sfdisk …) is left
to finish first, since killing it midway could damage what it is changing.
"""
from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from types import FrameType
from typing import IO, Any, Iterator, Sequence, TypeVar

from imager.errors import CommandFailed, Interrupted

log = logging.getLogger(__name__)
T = TypeVar("T")

# Locale-independent output from the tools whose text we parse.
_ENV = {**os.environ, "LC_ALL": "C"}
_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent(parent: int) -> None:
    """In the child before exec: SIGKILL when imager dies; exit if it is gone already."""
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # imager died between fork and prctl
        os._exit(1)


def _popen(argv: Sequence[str], *, own_group: bool = True, **kwargs: Any) -> subprocess.Popen[Any]:
    kwargs.setdefault("env", _ENV)
    parent = os.getpid()
    if own_group:  # the terminal's Ctrl-C goes to imager only
        kwargs["process_group"] = 0
    return subprocess.Popen(list(argv), preexec_fn=lambda: _die_with_parent(parent), **kwargs)


# --- signals: SIGINT, SIGTERM, SIGHUP become Interrupted --------------------------------

INTERRUPTING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_state = threading.local()
_critical = 0                  # depth of uninterrupted() blocks (main thread only)
_pending: list[int] = []       # a signal that came during one, raised when it ends
_interrupted = False           # the first signal raised; later ones are ignored so cleanup completes


def _raise_interrupted(signum: int) -> None:
    global _interrupted
    _interrupted = True
    raise Interrupted(signum)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    name = signal.Signals(signum).name
    if _interrupted or _pending:
        log.warning("%s received while stopping: cleaning up, please wait", name)
        return
    if _critical:
        log.warning("%s received: stopping once the running program finishes", name)
        _pending.append(signum)
        return
    _raise_interrupted(signum)


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Within this block SIGINT/SIGTERM/SIGHUP raise ``Interrupted`` (main thread only; elsewhere nothing changes)."""
    global _interrupted
    if threading.current_thread() is not threading.main_thread() or getattr(_state, "active", False):
        yield
        return
    previous = {sig: signal.signal(sig, _on_signal) for sig in INTERRUPTING}
    _state.active = True
    _interrupted = False
    _pending.clear()
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _state.active = False
        _pending.clear()


@contextlib.contextmanager
def exits_uninterrupted(manager: contextlib.AbstractContextManager[T]) -> Iterator[T]:
    """Enter ``manager`` as usual; its exit (a cleanup: grow the source back …) runs whole, whatever signal comes."""
    value = manager.__enter__()
    try:
        yield value
    except BaseException:
        with uninterrupted():
            if not manager.__exit__(*sys.exc_info()):
                raise
    else:
        with uninterrupted():
            manager.__exit__(None, None, None)


@contextlib.contextmanager
def uninterrupted() -> Iterator[None]:
    """A step that must not be cut in half: a signal meanwhile is raised when it ends."""
    global _critical
    _critical += 1
    try:
        yield
    finally:
        _critical -= 1
        if not _critical and _pending and not _interrupted:
            _raise_interrupted(_pending.pop())


@dataclass
class Result:
    argv: list[str]
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def text(self) -> str:
        return self.stdout.decode(errors="replace")


# A line that says what went wrong, as against progress lines and partclone's closing
# "Partclone fail, please check /var/log/partclone.log !" which never names the cause.
_CAUSE = re.compile(r"error|fail|can't|cannot|invalid|corrupt|too small|not enough|no space|bad ", re.I)
_NOT_CAUSE = re.compile(r"^(partclone fail|total time)", re.I)
# partclone's progress, which an error message may follow on the same line (no newline before it).
_PROGRESS = re.compile(r"Elapsed: [^,]*, Remaining: [^,]*, Completed: [^,]*,[^,]*,|current block:[^%]*%|\x1b\[[0-9;]*[A-Za-z]")


def cause(said: str, otherwise: str) -> str:
    """The program's own reason in what it said on stderr (its last error line), or ``otherwise``."""
    lines = (_PROGRESS.sub("", line).strip() for line in said.splitlines())
    reasons = [line for line in lines if _CAUSE.search(line) and not _NOT_CAUSE.match(line)]
    return reasons[-1] if reasons else otherwise


def _tail(data: bytes, lines: int = 8) -> str:
    return "\n".join(data.decode(errors="replace").strip().splitlines()[-lines:])


def run(argv: Sequence[str], *, input: bytes | None = None, check: bool = True,
        timeout: float | None = None) -> Result:
    """Run a program to completion and return what it printed."""
    log.debug("run: %s", " ".join(argv))
    with uninterrupted():  # resize2fs, sfdisk …: a signal waits until the program is done
        try:
            proc = _popen(argv, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except FileNotFoundError as exc:
            raise CommandFailed(f"{argv[0]} is not installed", hint="The boot image lacks this tool.") from exc
        try:
            out, err = proc.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise CommandFailed(f"{argv[0]} did not finish within {timeout} s", argv=list(argv))
    if err.strip():
        log.debug("%s stderr: %s", argv[0], _tail(err, 20))
    result = Result(list(argv), proc.returncode, out, err)
    if check and proc.returncode != 0:
        raise CommandFailed(f"{' '.join(argv)} failed with exit status {proc.returncode}: {_tail(err) or _tail(out)}",
                            argv=list(argv), returncode=proc.returncode)
    return result


class Spawned:
    """A running program whose stdin or stdout we stream through ourselves.

    Its stderr goes to a temporary file so a chatty program (partclone prints
    progress constantly) can never block on a full pipe.
    """

    def __init__(self, argv: Sequence[str], *, stdin: IO | int | None = None, stdout: IO | int | None = None) -> None:
        import tempfile
        self.argv = list(argv)
        self._stderr = tempfile.TemporaryFile()
        log.debug("spawn: %s", " ".join(self.argv))
        try:
            self.proc = _popen(self.argv, stdin=stdin, stdout=stdout, stderr=self._stderr)
        except FileNotFoundError as exc:
            raise CommandFailed(f"{self.argv[0]} is not installed", hint="The boot image lacks this tool.") from exc

    @property
    def stdin(self) -> IO[bytes]:
        assert self.proc.stdin is not None
        return self.proc.stdin

    @property
    def stdout(self) -> IO[bytes]:
        assert self.proc.stdout is not None
        return self.proc.stdout

    def stderr_tail(self, lines: int = 8) -> str:
        self._stderr.seek(0)
        # partclone redraws its progress line with \r: keep only the last state of each line.
        text = self._stderr.read().decode(errors="replace").replace("\r", "\n")
        kept = [line.rstrip() for line in text.splitlines() if line.strip()]
        return "\n".join(kept[-lines:])

    def wait(self, check: bool = True) -> int:
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None and not pipe.closed:
                try:
                    pipe.close()
                except BrokenPipeError:
                    pass
        code = self.proc.wait()
        said = self.stderr_tail(400)  # the cause may lie above the last progress lines
        tail = "\n".join(said.splitlines()[-8:])
        if tail:
            log.debug("%s stderr: %s", self.argv[0], tail)
        self._stderr.close()
        if check and code != 0:
            raise CommandFailed(f"{' '.join(self.argv)} failed with exit status {code}: {cause(said, tail)}",
                                argv=self.argv, returncode=code)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.wait(check=False)
        except (OSError, ValueError):
            pass


def interactive(argv: Sequence[str], env: dict[str, str] | None = None) -> int:
    """Run a program on our own terminal (a shell for the technician) and wait; its exit status."""
    log.debug("interactive: %s", " ".join(argv))
    try:
        proc = _popen(argv, own_group=False, **({"env": {**_ENV, **env}} if env else {}))  # owns the terminal
    except FileNotFoundError as exc:
        raise CommandFailed(f"{argv[0]} is not installed", hint="The boot image lacks this tool.") from exc
    return proc.wait()


def run_bounded(argv: Sequence[str], *, env: dict[str, str], cwd: str, timeout: float, output: IO[bytes]) -> int | None:
    """A program that is not ours (a post-deploy script): ``env`` is its whole environment, stdout and stderr go
    to ``output``. Past ``timeout`` seconds its process group is killed and None returned; after it ends, what
    it left running in its group is killed too, so nothing it started outlives it."""
    log.debug("run bounded (%.0f s): %s", timeout, " ".join(argv))
    try:
        proc = _popen(argv, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    except OSError as exc:  # not executable, a missing interpreter
        raise CommandFailed(f"{argv[0]} could not be started: {exc.strerror or exc}", argv=list(argv)) from exc
    deadline, timed_out = time.monotonic() + timeout, False
    # Wait without reaping (WNOWAIT): while it is a zombie its PID, so its group's ID, cannot be reused.
    while os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is None:
        if time.monotonic() >= deadline:
            timed_out = True
            break
        time.sleep(0.05)
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # own group (_popen): the program and whatever it started
    except ProcessLookupError:
        pass
    code = proc.wait()
    return None if timed_out else code


def spawn(argv: Sequence[str], *, stdin: IO | int | None = None, stdout: IO | int | None = None) -> Spawned:
    return Spawned(argv, stdin=stdin, stdout=stdout)


PIPE = subprocess.PIPE
DEVNULL = subprocess.DEVNULL
