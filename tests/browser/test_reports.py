"""In a real browser: the Reports page's filters narrow the history, a bad date is said next to its field, the
CSV link downloads the same selection with the signed-in session, and the page fits a phone's screen."""
from __future__ import annotations

from typing import Any

from selenium.webdriver.common.by import By

from tests.browser.conftest import sign_in_technician, wait_for
from tests.browser.serverproc import ConsoleServer
from tests.browser.test_layout import OVERFLOW, PHONE

# The CSV the page links to, fetched by the page itself (its cookie, its origin): [status, type, body].
FETCH_LINK = """
const done = arguments[arguments.length - 1];
fetch(document.getElementById("history-csv").href, {credentials: "same-origin"})
  .then(r => r.text().then(t => done([r.status, r.headers.get("Content-Type"), t])))
  .catch(e => done([0, "", String(e)]));
"""


def prepare_store(store: Any) -> None:
    store.add_storage("main", "10.0.0.1:/images")
    store.add_image("win10", "main")
    for number in range(1, 4):
        store.add_host(f"52:54:00:0c:00:0{number}", f"lab-{number}")
        task = store.add_task(f"lab-{number}", "inventory", None, queued_by=f"=user{number}")
        store.start_task(task["id"])
        store.finish_task(task["id"], {})


def rows(browser) -> list[list[str]]:
    return [[cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
            for row in browser.find_elements(By.CSS_SELECTOR, "#history tbody tr")]


def test_filter_the_history_and_download_it(server: ConsoleServer, browser) -> None:
    sign_in_technician(browser, server, path="/reports")
    assert browser.find_element(By.CSS_SELECTOR, "nav a[aria-current=page]").text == "Reports"
    assert [r[3] for r in rows(browser)] == ["lab-3", "lab-2", "lab-1"]
    browser.find_element(By.ID, "history-host").send_keys("lab-2")
    browser.find_element(By.CSS_SELECTOR, "#history-filter button[type=submit]").click()
    wait_for(browser, lambda d: "host=lab-2" in d.current_url)
    assert [(r[3], r[5]) for r in rows(browser)] == [("lab-2", "=user2")]  # shown as typed on the page
    status, kind, body = browser.execute_async_script(FETCH_LINK)
    assert (status, kind) == (200, "text/csv; charset=utf-8")
    lines = body.split("\r\n")
    assert lines[0].startswith("id,host,mac,type,") and len(lines) == 3 and lines[2] == ""
    assert ",lab-2," in lines[1] and ",'=user2," in lines[1]  # a formula-looking cell defused in the file

    since = browser.find_element(By.ID, "history-since")
    since.send_keys("next tuesday")
    browser.find_element(By.CSS_SELECTOR, "#history-filter button[type=submit]").click()
    error = wait_for(browser, lambda d: d.find_elements(By.ID, "history-error"))[0]
    assert "since must be a date" in error.text
    assert browser.find_element(By.ID, "history-since").get_attribute("aria-invalid") == "true"
    assert browser.find_element(By.ID, "history-since").get_attribute("value") == "next tuesday"  # kept as typed


def test_the_reports_page_fits_a_phone(server: ConsoleServer, browser) -> None:
    sign_in_technician(browser, server, path="/reports")
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
    try:
        browser.get(server.url + "/reports")
        scroll_width, width, sticking_out = browser.execute_script(OVERFLOW)
        assert scroll_width <= width and not sticking_out, sticking_out
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
