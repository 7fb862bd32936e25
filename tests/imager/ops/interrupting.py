"""Helpers for the interruption tests: a real ``python -m imager.cli`` stopped by a signal at a chosen moment."""
from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time
from typing import Callable

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
MiB = 1024 * 1024


def start_cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "imager.cli", *args], cwd=REPO, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "imager.cli", *args], cwd=REPO, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"imager ended (status {proc.returncode}) before the moment came:\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the moment to interrupt never came")
        time.sleep(0.005)


def stop(proc: subprocess.Popen[str], signum: int, timeout: float = 120) -> tuple[int, str]:
    """Send ``signum``; imager's exit status and stderr."""
    os.kill(proc.pid, signum)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return proc.returncode, err


def names(arg: str, device: str) -> bool:
    """``arg`` is ``device`` or one of its partitions (/dev/loop1p2, not /dev/loop10)."""
    return arg == device or (arg.startswith(device + "p") and arg[len(device) + 1:].isdigit())


def processes_using(device: str) -> list[str]:
    """Command lines of running programs whose arguments name ``device`` (partclone, udp-receiver …)."""
    found = []
    for path in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            with open(path, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if any(names(arg.decode(errors="replace"), device) for arg in argv[1:]) and b"python" not in argv[0]:
            found.append(" ".join(a.decode(errors="replace") for a in argv if a))
    return found


def partclone_left(device: str, within: float = 5.0) -> list[str]:
    """The partclone processes still naming ``device`` after ``within`` seconds (the kernel kills them at once)."""
    deadline = time.monotonic() + within
    while (left := [p for p in processes_using(device) if "partclone" in p]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def block_count(device: str) -> int:
    out = subprocess.run(["dumpe2fs", "-h", device], capture_output=True, text=True, check=True).stdout
    return int(next(line.split(":")[1] for line in out.splitlines() if line.startswith("Block count:")))


def error_lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith("imager: error")]


SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]
