"""Print the technician's screens as a vt100 at 80×24 shows them (the README's screenshots).

    .venv/bin/python -m tests.render_screens            # print them
    .venv/bin/python -m tests.render_screens --readme   # write them into README.md

tests/imager/ui/test_progress_screen.py checks that the README shows what this renders now.

The menu is the real one: dialog run by imager.ui.screens on a pseudo-terminal (TERM=vt100), its
output read back through tests/vt100.py. The progress screen is imager.ui.progress_screen's layout.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from imager.ui.progress_screen import Job, progress_lines
from tests.vt100 import Screen

MENU = '''
from imager.ui.menu import Menu
from imager.ui.screens import DialogScreens

class Client:
    mac, server, logged_in = "52:54:00:12:35:02", "http://10.231.0.1:8080", False

menu = Menu(DialogScreens(), Client(), register=None, run_task=None, local_disks=list, power=None)
DialogScreens().choose("imager menu", "This machine (52:54:00:12:35:02) is not registered on the server.\\n"
                       "Server: http://10.231.0.1:8080\\nChoose:", menu.items())
'''


def menu_screen() -> list[str]:
    import pexpect
    child = pexpect.spawn(sys.executable, ["-c", MENU], env={**os.environ, "TERM": "vt100"}, dimensions=(24, 80),
                          encoding="utf-8", timeout=20)
    child.expect("Back")
    seen = child.before + child.after
    for key in ("", "1"):  # until dialog has drawn everything; "1" (item 1, selected already) flushes the rest
        child.send(key)
        while True:
            try:
                seen += child.read_nonblocking(65536, timeout=1)
            except pexpect.TIMEOUT:
                break
    child.sendcontrol("[")
    child.expect(pexpect.EOF)
    seen += child.before  # dialog keeps the end of the Back button until it leaves (it does not clear)
    return Screen().feed(seen).lines()


def progress_screen() -> list[str]:
    job = Job("deploy", image="win10-2026 (resizable)", disk="/dev/nvme0n1", task=42, host="lab-pc-07",
              log=["mounted 10.231.0.1:/images on /images", "partition table written: 3 partitions on /dev/nvme0n1",
                   "partition 1/3: nvme0n1p1 (vfat) restored, 96.0 MiB"])
    snap = {"stage": "partition 2/3: nvme0n1p2 (ntfs)", "bytes_done": 9_126_805_504, "bytes_total": 22_548_578_304,
            "percent": 40.5, "rate_bps": 187_695_104, "eta_s": 71, "stored_bytes": 4_148_547_956, "ratio": 2.2}
    return [line.rstrip() for line in progress_lines(job, snap)]


README = Path(__file__).resolve().parent.parent / "README.md"


def screens() -> dict[str, list[str]]:
    """Each screenshot as the README shows it: the screen's lines without the blank ones at the bottom."""
    rendered = {"menu": menu_screen(), "progress": progress_screen()}
    return {name: "\n".join(lines).rstrip("\n").split("\n") for name, lines in rendered.items()}


def readme_blocks(text: str) -> dict[str, tuple[int, int]]:
    """Where each screenshot sits in the README: (first, end) line numbers of the code block's content,
    found by the screen's title line."""
    lines = text.split("\n")
    titles = {"menu": " imager - technician's menu", "progress": " imager - deploy "}
    found = {}
    for i, line in enumerate(lines):
        for name, title in titles.items():
            if line.startswith(title) and lines[i - 1] == "```":
                found[name] = (i, lines.index("```", i))
    return found


def write_readme() -> None:
    lines = README.read_text().split("\n")
    blocks = readme_blocks("\n".join(lines))
    for name, shown in sorted(screens().items(), key=lambda item: -blocks[item[0]][0]):  # bottom up
        first, end = blocks[name]
        lines[first:end] = shown
    README.write_text("\n".join(lines))


def main() -> None:
    if sys.argv[1:] == ["--readme"]:
        write_readme()
        return
    for name, lines in screens().items():
        print(f"--- {name} ---")
        print("\n".join(lines))


if __name__ == "__main__":
    main()
