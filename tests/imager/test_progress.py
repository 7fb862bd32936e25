"""Progress: the step's figures and the overall % and ETA across every step of a task."""
from __future__ import annotations

import logging

import pytest

from imager import progress as progress_module
from imager.progress import Progress, console_sink, duration
from imager.ui.progress_screen import Job, progress_lines


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(progress_module.time, "monotonic", fake)
    return fake


def test_overall_percent_and_eta_span_every_partition(clock):
    """Two partitions of 300 and 700 bytes: the overall figure counts both, the step figure restarts."""
    sent = []
    progress = Progress([sent.append], interval=0)
    progress.expect(1000)
    progress.set_stage("partition 1/2", total=300)
    clock.now += 3
    progress.add(300)
    progress.set_stage("partition 2/2", total=700)
    clock.now += 2
    progress.add(200)   # 500 of 1000 bytes in 5 s: 100 B/s overall, 500 bytes left
    snap = sent[-1]
    assert snap["percent"] == round(100 * 200 / 700, 1) and snap["eta_s"] == 5   # the step: 500 left at 100 B/s
    assert snap["overall_percent"] == 50.0 and snap["overall_eta_s"] == 5
    clock.now += 5
    progress.add(500)
    assert sent[-1]["overall_percent"] == 100.0 and sent[-1]["overall_eta_s"] == 0


def test_a_revised_step_total_revises_the_overall_total(clock):
    """A capture expects the partitions' sizes; partclone's header says the used bytes: the overall follows."""
    progress = Progress(interval=0)
    progress.expect(2000)                       # two partitions of 1000 bytes each
    progress.set_stage("partition 1/2", total=1000)
    progress.total = 400                        # the header: 400 bytes of used blocks
    progress.add(400)
    assert progress.snapshot()["overall_percent"] == round(100 * 400 / 1400, 1)
    progress.set_stage("partition 2/2", total=1000)
    progress.total = 100
    progress.add(50)
    assert progress.snapshot()["overall_percent"] == 90.0        # 450 of 500
    progress.add(60)                            # a step that moves more than it said: never past 100 %
    progress.set_stage("done", total=0)
    assert progress.snapshot()["overall_percent"] == 100.0


def test_without_an_expected_total_there_is_no_overall_figure():
    progress = Progress()
    progress.set_stage("zeroing", total=10)
    progress.add(5)
    snap = progress.snapshot()
    assert "overall_percent" not in snap and "overall_eta_s" not in snap and snap["percent"] == 50.0


def test_the_console_line_and_the_screen_show_the_overall_figure(clock, caplog):
    progress = Progress(interval=0)
    progress.expect(4000)
    progress.set_stage("partition 1/2: vda1 (ext4)", total=1000)
    clock.now += 10
    progress.add(1000)                          # 100 B/s overall, 3000 bytes left: 30 s
    snap = progress.snapshot()
    with caplog.at_level(logging.INFO, logger="imager.progress"):
        console_sink(snap)
    assert caplog.records[-1].getMessage().endswith("| overall  25.0%  ETA 30s")
    text = [line.rstrip() for line in progress_lines(Job("deploy", image="lab", disk="/dev/vda"), snap)]
    assert len(text) == 24
    assert "  Overall       25.0 %   0:30 left" in text
    assert not any("Overall" in line for line in progress_lines(Job("wipe"), {"stage": "x", "percent": 1.0}))


def test_durations_read_at_a_glance():
    assert [duration(s) for s in (0, 9, 65, 3725)] == ["0s", "9s", "1m05s", "1h02m"]


def test_a_chunked_deploys_figures_ride_along_in_every_report():
    reports: list[dict] = []
    progress = Progress([reports.append], interval=0)
    figures = {"reused_bytes": 0, "fetched_bytes": 0, "wrote_bytes": 0}
    progress.figures = lambda: dict(figures)
    progress.set_stage("partition 1", total=100)
    figures.update(reused_bytes=60, fetched_bytes=10, wrote_bytes=40)
    progress.add(100)
    assert reports[-1]["reused_bytes"] == 60 and reports[-1]["fetched_bytes"] == 10 and reports[-1]["wrote_bytes"] == 40
    assert "reused_bytes" not in Progress().snapshot()
