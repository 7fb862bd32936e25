"""Watching a task in the console as a person would: one page load, then only what live updates change.

Used by the simulated-client browser test, the QEMU lab (tests/qemu/test_spine.py runs it inside the lab's
network namespace, where the server is) and `make screenshots`. As a program it prints a JSON report:

    python -m tests.browser.watch --url http://10.231.0.1:8080 --token-file …/admin.token --task 3

It prints one line: 'watched: ' and the JSON of a Watched.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

FINAL_STATES = ("done", "failed", "canceled")
REPORT_PREFIX = "watched: "  # the report's line in the program's output (selenium may log other lines)

# One poll of the page: the task's progress ("stage percent") and state texts (the console's convention,
# static/console.js: [data-task=ID] holding .stage, .percent, .state), and whether it is still the first load.
READ_PAGE = """
const id = arguments[0];
const text = (name) => {
  const el = document.querySelector(`[data-task="${id}"] .${name}, [data-task="${id}"].${name}`);
  return el ? el.textContent.trim() : null;
};
const progress = [text("stage"), text("percent")].filter(t => t && t !== "–").join(" ");
return [progress || null, text("state"), window.imagerWatchMarker === 1];
"""


@dataclass
class Watched:
    progress: list[str] = field(default_factory=list)  # the progress texts ("stage percent"), each change
    states: list[str] = field(default_factory=list)
    reloaded: bool = False  # the page was reloaded (the marker set on the first load was lost)
    seconds: float = 0.0

    @property
    def final(self) -> str:
        return self.states[-1] if self.states else ""


def mark_page(driver: "WebDriver") -> None:
    """A marker that a reload would lose: live updates must change the page in place."""
    driver.execute_script("window.imagerWatchMarker = 1;")


def watch(driver: "WebDriver", task_id: int, timeout: float, until: tuple[str, ...] = FINAL_STATES,
          interval: float = 0.2) -> Watched:
    """Poll the open page until the task's state reads one of ``until`` or ``timeout`` s pass."""
    seen = Watched()
    started = time.monotonic()
    mark_page(driver)
    while time.monotonic() - started < timeout:
        progress, state, same_page = driver.execute_script(READ_PAGE, task_id)
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


def read_report(output: str) -> Watched:
    """The Watched a run of this program printed (its last report line)."""
    lines = [line for line in output.splitlines() if line.startswith(REPORT_PREFIX)]
    if not lines:
        raise ValueError(f"the watcher printed no report: {output[-1500:]}")
    report = json.loads(lines[-1][len(REPORT_PREFIX):])
    report.pop("final", None)
    return Watched(**report)


def main(argv: list[str] | None = None) -> int:
    from tests.browser.chrome import new_browser, sign_in_with

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--token-file", type=Path, required=True, help="the admin token: admin's password")
    parser.add_argument("--task", type=int, required=True)
    parser.add_argument("--page", default="/", help="the page to watch it on (default: the dashboard)")
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args(argv)
    # Stopped by PID (the lab's cleanup): quit the browser and its driver on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    driver = new_browser()
    try:
        sign_in_with(driver, args.url, "admin", args.token_file.read_text().strip(), args.page)
        seen = watch(driver, args.task, args.timeout)
    finally:
        driver.quit()
    print(REPORT_PREFIX + json.dumps({**asdict(seen), "final": seen.final}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
