"""Real-browser tests of the web console: a real `imager-server serve` process on loopback and headless
Chromium driven by selenium (Debian's chromium, chromium-driver, python3-selenium; `make setup`).

One server and one browser per test module (the machine is small); each test signs in as it needs. A module
may define ``prepare_store(store)``: it runs on the server's store before the server starts (bulk data)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.browser.chrome import missing_browser, new_browser, sign_in_with, wait_for  # noqa: F401 (for tests)
from tests.browser.serverproc import TECH_NAME, TECH_PASSWORD, ConsoleServer, start_server, stop_server

if not missing_browser():
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = missing_browser()
    if reason:
        skip = pytest.mark.skip(reason=f"real-browser tests need Chromium, its driver and selenium "
                                       f"(make setup); missing: {reason}")
        here = Path(__file__).parent
        for item in items:
            if here in Path(str(item.fspath)).parents:
                item.add_marker(skip)


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleServer]:
    running = start_server(tmp_path_factory.mktemp("console"), getattr(request.module, "prepare_store", None))
    try:
        yield running
    finally:
        stop_server(running)


@pytest.fixture(scope="module")
def browser() -> Iterator["WebDriver"]:
    driver = new_browser()
    try:
        yield driver
    finally:
        driver.quit()  # also ends chromedriver, the process selenium started


def sign_in(driver: "WebDriver", server: ConsoleServer, name: str = "admin", password: str | None = None,
            path: str = "/") -> None:
    sign_in_with(driver, server.url, name, server.admin_token if password is None else password, path)


def sign_in_technician(driver: "WebDriver", server: ConsoleServer, path: str = "/") -> None:
    sign_in(driver, server, TECH_NAME, TECH_PASSWORD, path)


def csrf_of(driver: "WebDriver") -> str:
    return str(driver.find_element(By.CSS_SELECTOR, "input[name=csrf]").get_attribute("value"))
