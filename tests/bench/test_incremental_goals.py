"""bench/incremental.py's goals: each figure against the issue's threshold, PASS/FAIL as the numbers say."""
from __future__ import annotations

import pytest

from bench import incremental as bench
from bench.incremental import Deploy

MB = 1_000_000


def rows(redeploy_bytes: int, redeploy_s: float, chunked_s: float, exact: bool = True) -> list[Deploy]:
    return [Deploy("http", 200, "full stream", 30.0, 700 * MB, None, None, None, True),
            Deploy("http", 200, "full chunked", chunked_s, 750 * MB, 0, 730 * MB, 2000 * MB, True),
            Deploy("http", 200, "redeploy chunked", redeploy_s, redeploy_bytes, 1900 * MB, 40 * MB, 90 * MB, exact)]


@pytest.fixture(autouse=True)
def http_at_200(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench, "TRANSPORTS", ["http"])
    monkeypatch.setattr(bench, "RATES", [200])


def goals(capsys: pytest.CaptureFixture[str], deploys: list[Deploy], sizes: dict[str, tuple[int, int]]) -> tuple[bool, dict[str, str]]:
    ok = bench.report(deploys, sizes, {"stream": 8.0, "chunked": 20.0}, 1882 * MB, "v2", "")
    lines = capsys.readouterr().out.split("\ngoals:\n")[1].splitlines()
    return ok, {line.split(None, 1)[1].split(" (")[0].split(": ", 1)[-1]: line.split()[0] for line in lines if line.strip()}


def test_every_goal_met_passes(capsys: pytest.CaptureFixture[str]) -> None:
    ok, verdicts = goals(capsys, rows(45 * MB, 6.8, 31.0), {"stream": (646 * MB, 678 * MB), "chunked": (660 * MB, 58 * MB)})
    assert ok and set(verdicts.values()) == {"PASS"} and len(verdicts) == 6, verdicts


def test_each_threshold_is_the_issues(capsys: pytest.CaptureFixture[str]) -> None:
    # just past each limit: growth 10.1 %, size 1.06×, link 10.1 %, wall 0.36×, chunked time 1.06×, one inexact
    ok, verdicts = goals(capsys, rows(71 * MB, 10.8, 31.8, exact=False),
                         {"stream": (1000 * MB, 1000 * MB), "chunked": (1060 * MB, 107 * MB)})
    assert not ok
    assert set(verdicts.values()) == {"FAIL"} and len(verdicts) == 6, verdicts
