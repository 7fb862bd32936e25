"""The technician's screens laid out at 80×24 and drawn by blessed for a forced terminal kind and size."""
import io
import logging

import pytest

from imager.progress import Progress
from imager.ui import console
from imager.ui.progress_screen import (_PADDING, Job, ProgressScreen, failure_lines, progress_lines,
                                       show_failure_screen, terminal)
from tests.vt100 import Screen

JOB = Job("deploy", image="lab-image (resizable)", disk="/dev/vda", task=7, host="pc-a",
          log=["mounted 10.231.0.1:/images on /images", "partition table written"])
SNAP = {"stage": "partition 2/3: vda2 (ext4)", "bytes_done": 120 * 2**20, "bytes_total": 300 * 2**20,
        "percent": 40.0, "rate_bps": 48 * 2**20, "eta_s": 75, "stored_bytes": 50 * 2**20, "ratio": 2.4}


@pytest.fixture
def vt100_80x24(monkeypatch):
    """blessed asks the tty for its size (TIOCGWINSZ), else LINES/COLUMNS: no tty here, so 80×24."""
    import blessed

    def no_tty(fd):
        raise OSError("not a terminal")
    monkeypatch.setattr(blessed.Terminal, "_winsize", staticmethod(no_tty))
    monkeypatch.setenv("LINES", "24")
    monkeypatch.setenv("COLUMNS", "80")
    stream = io.StringIO()
    return terminal(stream, kind="vt100"), stream


def test_the_progress_screen_shows_every_figure_at_80x24():
    lines = progress_lines(JOB, SNAP)
    assert len(lines) == 24 and all(len(line) == 80 for line in lines)
    text = [line.rstrip() for line in lines]
    assert text[0].startswith(" imager - deploy") and text[0].endswith("pc-a task 7")
    assert text[1] == "=" * 80
    assert "  Image        lab-image (resizable)" in text
    assert "  Disk         /dev/vda" in text
    assert "  Step         partition 2 of 3" in text
    assert "               partition 2/3: vda2 (ext4)" in text
    bar = next(line for line in text if line.startswith("  ["))
    assert bar.endswith("]  40.0 %") and bar.count("#") == int(64 * 0.4) and len(bar) <= 80
    assert "  Done         120.0 MiB of 300.0 MiB" in text
    assert "  Rate         48.0 MiB/s" in text
    assert "  Time left    1:15" in text
    assert "  Compression  2.40 : 1   (50.0 MiB stored)" in text
    assert "  partition table written" in text  # the log's tail, under the figures
    assert text[23].startswith(" Do not power off")


def test_the_screen_renders_the_snapshot_progress_computes():
    """No arithmetic of its own: the figures are Progress.snapshot()'s, which the server also gets."""
    progress = Progress()
    progress.set_stage("partition 1/1: vda1 (ext4)", total=1000)
    progress.add(250)
    progress.add_stored(100)
    snap = progress.snapshot()
    assert snap["ratio"] == 2.5 and snap["percent"] == 25.0
    text = [line.rstrip() for line in progress_lines(JOB, snap)]
    assert "  Done         250 B of 1000 B" in text and "  Compression  2.50 : 1   (100 B stored)" in text
    assert any(line.endswith("]  25.0 %") for line in text)


def test_a_wipe_without_partitions_or_compression_says_so():
    text = [line.rstrip() for line in progress_lines(Job("wipe (fast)", disk="/dev/sda"),
                                                     {"stage": "zeroing the first and last MiB", "percent": 50.0,
                                                      "bytes_done": 2**20, "bytes_total": 2 * 2**20,
                                                      "rate_bps": 2**20, "eta_s": 1})]
    assert "  Step         zeroing the first and last MiB" in text
    assert "  Image        -" in text and "  Compression  -" in text


def test_the_failure_screen_says_what_happened_and_what_to_do():
    message = ("The target disk /dev/vda holds 128.0 MiB; the image needs 194.0 MiB for its partitions "
               "and their data, which is more than this disk can take.")
    lines = failure_lines("disk_too_small", message, "Deploy onto a disk at least as large as the image needs.",
                          job=JOB, footer="The server has the reason and the log. The machine reboots in 120 s.")
    assert len(lines) == 24 and all(len(line) == 80 for line in lines)
    text = [line.rstrip() for line in lines]
    assert text[0].startswith(" imager - TASK FAILED (disk_too_small)")
    assert "  deploy of image lab-image (resizable) on /dev/vda" in text
    happened = text.index("  What happened:")
    assert text[happened + 1].startswith("    The target disk /dev/vda holds 128.0 MiB;")
    assert all(len(line) <= 78 for line in text[happened + 1:happened + 3])  # wrapped, not cut
    assert "    Deploy onto a disk at least as large as the image needs." in text
    assert "    partition table written" in text
    assert text[23] == " The server has the reason and the log. The machine reboots in 120 s."


def test_blessed_draws_each_line_at_its_place_on_a_vt100(vt100_80x24):
    """What a vt100 shows: blessed's output read back by tests/vt100.py, against the screen written out."""
    term, stream = vt100_80x24
    assert (term.width, term.height) == (80, 24)
    screen = ProgressScreen(Job("capture", image="x", disk="/dev/sda", task=3), term=term, stream=stream)
    with screen:
        logging.getLogger("imager.test").warning("a log line while the screen is up")
        screen(SNAP)
        shown = Screen().feed(stream.getvalue()).lines()
    assert shown == [
        " imager - capture                                                        task 3",
        "=" * 80,
        "",
        "  Image        x",
        "  Disk         /dev/sda",
        "  Step         partition 2 of 3",
        "               partition 2/3: vda2 (ext4)",
        "",
        "  [#########################.......................................]  40.0 %",
        "",
        "  Done         120.0 MiB of 300.0 MiB",
        "  Rate         48.0 MiB/s",
        "  Time left    1:15",
        "  Compression  2.40 : 1   (50.0 MiB stored)",
        "",
        "-" * 80,
        "  a log line while the screen is up",  # in the screen's log area, not scrolled over it
        "", "", "", "", "", "",
        " Do not power off: the disk is in use. The server sees these figures too.",
    ]
    out = stream.getvalue()
    assert "\x1b[H\x1b[J" in out and "$<" not in out  # vt100's clear, without terminfo's padding ($<50>)
    assert screen.handler not in logging.getLogger().handlers


def test_the_failure_screen_is_drawn_in_reverse_video(vt100_80x24):
    term, stream = vt100_80x24
    show_failure_screen("network", "no DHCP answer on eth0", "Check the cable.", None, "Reboot in 5 s.",
                        stream=stream, term=term)
    out = stream.getvalue()
    assert _PADDING.sub("", term.reverse(" imager - TASK FAILED (network)".ljust(80))) in out
    assert _PADDING.sub("", term.move_xy(0, 23)) + " Reboot in 5 s." in out


@pytest.mark.parametrize("cmdline, kind, device", [
    ("console=ttyS0,115200n8", "vt100", "ttyS0"),
    ("console=tty0 console=ttyS0,115200n8", "vt100", "ttyS0"),   # the last console= is /dev/console
    ("console=ttyS0,115200n8 console=tty0", "linux", "tty0"),
    ("quiet", "linux", "tty0"),
    ("console=ttyAMA0", "vt100", "ttyAMA0"),
])
def test_the_terminal_kind_follows_the_kernel_console(cmdline, kind, device, monkeypatch):
    monkeypatch.setenv("TERM", "xterm")
    assert console.console_device(cmdline) == device
    assert console.setup(cmdline, stream=io.StringIO()) == kind
    import os
    assert os.environ["TERM"] == kind


def test_the_readme_screenshots_are_what_the_screens_show_now():
    """The menu (dialog on a pty) and the progress screen, rendered by tests/render_screens.py through vt100."""
    pytest.importorskip("pexpect")
    from tests import render_screens
    readme = render_screens.README.read_text().split("\n")
    blocks = render_screens.readme_blocks("\n".join(readme))
    assert sorted(blocks) == ["menu", "progress"]
    for name, lines in render_screens.screens().items():
        first, end = blocks[name]
        assert readme[first:end] == lines, f"README's {name} screenshot is stale: python -m tests.render_screens --readme"


def test_a_chunked_deploy_shows_what_it_reused_fetched_and_wrote():
    snap = {**SNAP, "reused_bytes": 3 * 1024 ** 3, "fetched_bytes": 40 * 1024 ** 2, "wrote_bytes": 90 * 1024 ** 2}
    text = [line.rstrip() for line in progress_lines(JOB, snap)]
    assert "  Reused 3.0 GiB, fetched 40.0 MiB, wrote 90.0 MiB" in text
    assert not any(line.startswith("  Reused") for line in progress_lines(JOB, SNAP))
