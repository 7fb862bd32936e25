"""The fuzz suite's figures after the run (profiles: tests/fuzz/profiles.py)."""
from __future__ import annotations

from tests.fuzz.profiles import FIGURES, PROFILE


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # type: ignore[no-untyped-def]
    if FIGURES:
        terminalreporter.write_line(
            f"fuzz ({PROFILE}): {FIGURES['route cases']} route cases ({FIGURES['route 5xx']} answered 5xx), "
            f"{FIGURES['tftp parser cases']} TFTP parser cases, {FIGURES['tftp server cases']} TFTP server cases "
            f"({FIGURES['tftp unanswered']} unanswered)")
        statuses = sorted((k.split()[1], n) for k, n in FIGURES.items() if k.startswith("status "))
        if statuses:
            terminalreporter.write_line("fuzz: route answers by status: " + ", ".join(f"{s}×{n}" for s, n in statuses))
