"""The console the technician looks at: which terminal it is, and its size.

/dev/console is the last ``console=`` on the kernel command line. A serial port (ttyS*, ttyAMA*,
hvc*) speaks vt100 to whatever terminal is on the other end; a virtual console (tty0, tty1 …) is the
Linux console on VGA. A serial line knows no size (0×0): it is set to 80×24, the size every screen
here is laid out for, so dialog and blessed agree with each other.
"""
from __future__ import annotations

import fcntl
import os
import re
import struct
import sys
import termios
from typing import IO

SERIAL = re.compile(r"^(ttyS|ttyAMA|ttyUSB|hvc|ttysclp)\d*")
COLUMNS, LINES = 80, 24


def console_device(cmdline: str) -> str:
    """The device behind /dev/console: the last console= (without its options), 'tty0' if none."""
    devices = [w.split("=", 1)[1].split(",", 1)[0] for w in cmdline.split() if w.startswith("console=")]
    return devices[-1] if devices else "tty0"


def terminal_kind(cmdline: str) -> str:
    return "vt100" if SERIAL.match(console_device(cmdline)) else "linux"


def setup(cmdline: str | None = None, stream: IO | None = None) -> str:
    """Set TERM from the console and give a sizeless serial line 80×24; returns TERM."""
    if cmdline is None:
        try:
            with open("/proc/cmdline") as f:
                cmdline = f.read()
        except OSError:
            cmdline = ""
    kind = terminal_kind(cmdline)
    os.environ["TERM"] = kind
    stream = stream or sys.stdout
    try:
        rows, cols = struct.unpack("hhhh", fcntl.ioctl(stream.fileno(), termios.TIOCGWINSZ, bytes(8)))[:2]
        if rows <= 0 or cols <= 0:
            fcntl.ioctl(stream.fileno(), termios.TIOCSWINSZ, struct.pack("hhhh", LINES, COLUMNS, 0, 0))
    except (OSError, ValueError, AttributeError):  # not a terminal (tests, a pipe): nothing to size
        pass
    return kind


def is_terminal(stream: IO | None = None) -> bool:
    stream = stream or sys.stdout
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
