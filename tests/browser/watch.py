"""Watching a task in the console as a person would: one page load, then only what live updates change.

Used by the simulated-client browser test, the QEMU lab (tests/qemu/test_spine.py runs it inside the lab's
network namespace, where the server is) and `make screenshots`. As a program it prints a JSON report:

    python -m tests.browser.watch --url http://10.231.0.1:8080 --token-file …/admin.token --task 3
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

# What the task's page shows (server_stub/console/templates/tasks_detail.html).
TASK_PROGRESS_CSS = "#task-progress"
TASK_STATE_CSS = "#task-state"
FINAL_STATES = ("done", "failed", "canceled")

# One poll of the page: the progress and state texts, and whether the page is still the one first loaded.
READ_PAGE = """
const [progressCss, stateCss] = arguments;
const progress = document.querySelector(progressCss), state = document.querySelector(stateCss);
return [progress ? progress.textContent.trim() : null, state ? state.textContent.trim() : null,
        window.imagerWatchMarker === 1];
"""


@dataclass
class Watched:
    progress: list[str] = field(default_factory=list)  # each distinct progress text, in the order seen
    states: list[str] = field(default_factory=list)
    reloaded: bool = False  # the page was reloaded (the marker set on the first load was lost)
    seconds: float = 0.0

    @property
    def final(self) -> str:
        return self.states[-1] if self.states else ""


def mark_page(driver: "WebDriver") -> None:
    """A marker that a reload would lose: live updates must change the page in place."""
    driver.execute_script("window.imagerWatchMarker = 1;")


def watch(driver: "WebDriver", timeout: float, progress_css: str = TASK_PROGRESS_CSS,
          state_css: str = TASK_STATE_CSS, until: tuple[str, ...] = FINAL_STATES, interval: float = 0.2) -> Watched:
    """Poll the open page until its state text is one of ``until`` or ``timeout`` s pass."""
    seen = Watched()
    started = time.monotonic()
    mark_page(driver)
    while time.monotonic() - started < timeout:
        progress, state, same_page = driver.execute_script(READ_PAGE, progress_css, state_css)
        if not same_page:
            seen.reloaded = True
            mark_page(driver)
        if progress and (not seen.progress or seen.progress[-1] != progress):
            seen.progress.append(progress)
        if state and (not seen.states or seen.states[-1] != state):
            seen.states.append(state)
        if state in until:
            break
        time.sleep(interval)
    seen.seconds = time.monotonic() - started
    return seen


def main(argv: list[str] | None = None) -> int:
    from tests.browser.chrome import new_browser, sign_in_with

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--token-file", type=Path, required=True, help="the admin token: admin's password")
    parser.add_argument("--task", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args(argv)
    driver = new_browser()
    try:
        sign_in_with(driver, args.url, "admin", args.token_file.read_text().strip(), f"/tasks/{args.task}")
        seen = watch(driver, args.timeout)
    finally:
        driver.quit()
    print(json.dumps({**asdict(seen), "final": seen.final}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
