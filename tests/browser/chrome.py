"""Headless Chromium for the console's browser tests, the lab's watcher and `make screenshots`:
Debian's chromium and chromium-driver driven by selenium (python3-selenium), all from `make setup`."""
from __future__ import annotations

import os
from typing import Any, Callable

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
WAIT_S = 10.0

try:
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support.ui import WebDriverWait
    HAVE_SELENIUM = True
except ImportError:  # pragma: no cover - make setup installs python3-selenium
    HAVE_SELENIUM = False


def missing_browser() -> str:
    """Why a browser cannot run here ('' when it can)."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if not HAVE_SELENIUM:
        missing.append("python3-selenium")
    return ", ".join(missing)


def new_browser(width: int = 1280, height: int = 800) -> "WebDriver":
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
                f"--window-size={width},{height}", "--lang=en-GB"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(15)
    return driver


def wait_for(driver: "WebDriver", condition: Callable[["WebDriver"], Any], timeout: float = WAIT_S,
             message: str = "") -> Any:
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition, message)


def page_text(driver: "WebDriver") -> str:
    """The page's visible text (the start of it), for failure messages."""
    try:
        return str(driver.find_element(By.TAG_NAME, "body").text)[:500]
    except WebDriverException:  # the page may be mid-navigation
        return "(no page text)"


def sign_in_with(driver: "WebDriver", url: str, name: str, password: str, path: str = "/") -> None:
    """Sign in through the form, as a person would (any earlier session is dropped first)."""
    driver.get(url + "/signin")
    driver.delete_all_cookies()
    driver.get(url + "/signin?next=" + path)
    driver.find_element(By.ID, "name").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "form[action='/signin'] button[type=submit]").click()
    try:
        wait_for(driver, lambda d: "/signin" not in d.current_url)
    except WebDriverException as exc:
        raise AssertionError(f"sign-in as {name} stayed on the sign-in page: {page_text(driver)}") from exc
