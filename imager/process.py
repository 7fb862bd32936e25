"""The one place imager starts other programs.

Everything external (partclone, sfdisk, sgdisk, mount, udhcpc …) goes through
``run`` (wait for it, capture output) or ``spawn`` (stream through its pipes).
Both log the command line and the program's stderr, and turn a non-zero exit
into ``CommandFailed`` carrying the tail of stderr.  Unit tests patch
``_popen`` to make accidental shelling-out impossible.
"""
from __future__ import annotations

import logging
import os
import subprocess
from dataclasses import dataclass
from typing import IO, Any, Sequence

from imager.errors import CommandFailed

log = logging.getLogger(__name__)

# Locale-independent output from the tools whose text we parse.
_ENV = {**os.environ, "LC_ALL": "C"}


def _popen(argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
    kwargs.setdefault("env", _ENV)
    return subprocess.Popen(list(argv), **kwargs)


@dataclass
class Result:
    argv: list[str]
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def text(self) -> str:
        return self.stdout.decode(errors="replace")


def _tail(data: bytes, lines: int = 8) -> str:
    return "\n".join(data.decode(errors="replace").strip().splitlines()[-lines:])


def run(argv: Sequence[str], *, input: bytes | None = None, check: bool = True,
        timeout: float | None = None) -> Result:
    """Run a program to completion and return what it printed."""
    log.debug("run: %s", " ".join(argv))
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
        tail = self.stderr_tail()
        if tail:
            log.debug("%s stderr: %s", self.argv[0], tail)
        self._stderr.close()
        if check and code != 0:
            raise CommandFailed(f"{' '.join(self.argv)} failed with exit status {code}: {tail}",
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
        proc = _popen(argv, **({"env": {**_ENV, **env}} if env else {}))
    except FileNotFoundError as exc:
        raise CommandFailed(f"{argv[0]} is not installed", hint="The boot image lacks this tool.") from exc
    return proc.wait()


def spawn(argv: Sequence[str], *, stdin: IO | int | None = None, stdout: IO | int | None = None) -> Spawned:
    return Spawned(argv, stdin=stdin, stdout=stdout)


PIPE = subprocess.PIPE
DEVNULL = subprocess.DEVNULL
