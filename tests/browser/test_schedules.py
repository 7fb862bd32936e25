"""In a real browser: add a weekly deploy for a host group from the Schedules page, see its next run in the
list, pause and resume it with the row's buttons, and a refused rule shown next to its field."""
from __future__ import annotations

import re

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from tests.browser.conftest import sign_in, wait_for
from tests.browser.test_groups import notice  # read inside the wait: no stale element
from tests.browser.serverproc import ConsoleServer
from tests.browser.test_layout import OVERFLOW, PHONE


def fleet(server: ConsoleServer) -> None:
    server.api("POST", "/api/storage", expect=201, name="main", export="10.0.0.1:/images")
    server.api("POST", "/api/images", expect=201, name="win10", storage="main")
    for n in (1, 2):
        server.api("POST", "/api/hosts", expect=201, mac=f"52:54:00:0c:00:0{n}", name=f"lab3-pc{n}")
        server.api("POST", f"/api/hosts/lab3-pc{n}", expect=200, group="lab3")


def test_add_pause_resume_and_a_refusal(server, browser):
    fleet(server)
    sign_in(browser, server, path="/schedules")
    browser.find_element(By.ID, "add-schedule-name").send_keys("lab3-nightly")
    Select(browser.find_element(By.ID, "add-schedule-type")).select_by_visible_text("deploy")
    Select(browser.find_element(By.ID, "add-schedule-image")).select_by_visible_text("win10")
    Select(browser.find_element(By.ID, "add-schedule-group")).select_by_visible_text("lab3")
    browser.find_element(By.ID, "add-schedule-rule").send_keys("0 2 * * sun")
    assert browser.find_element(By.ID, "add-schedule-wake").is_selected()  # waking is the default
    browser.find_element(By.CSS_SELECTOR, "#add-schedule button[type=submit]").click()
    added = re.compile(r"Schedule lab3-nightly added; next run \d{4}-\d\d-\d\d 02:00 \w+\.")
    assert added.search(notice(browser, added))
    [schedule] = server.api("GET", "/api/schedules", expect=200)["schedules"]
    assert (schedule["group"], schedule["rule"], schedule["wake"]) == ("lab3", "0 2 * * sun", True)

    browser.get(server.url + "/schedules")
    row = browser.find_element(By.ID, f"schedule-{schedule['id']}")
    assert "active" in row.text and "group lab3" in row.text and "02:00" in row.text
    row.find_element(By.CSS_SELECTOR, f"#pause-schedule-{schedule['id']} button").click()
    assert notice(browser, "paused")  # waits until it says so
    assert server.api("GET", "/api/schedules/lab3-nightly", expect=200)["state"] == "paused"
    browser.get(server.url + "/schedules")
    browser.find_element(By.CSS_SELECTOR, f"#resume-schedule-{schedule['id']} button").click()
    assert notice(browser, "resumed")  # waits until it says so
    assert server.api("GET", "/api/schedules/lab3-nightly", expect=200)["state"] == "active"

    browser.get(server.url + "/schedules")
    browser.find_element(By.ID, "add-schedule-name").send_keys("broken")
    Select(browser.find_element(By.ID, "add-schedule-type")).select_by_visible_text("inventory")
    Select(browser.find_element(By.ID, "add-schedule-group")).select_by_visible_text("lab3")
    browser.find_element(By.ID, "add-schedule-rule").send_keys("0 25 * * *")
    browser.find_element(By.CSS_SELECTOR, "#add-schedule button[type=submit]").click()
    error = wait_for(browser, lambda d: d.find_elements(By.ID, "add-schedule-rule-error"))[0]
    assert "hour: 25 is outside 0-23" in error.text
    assert browser.find_element(By.ID, "add-schedule-name").get_attribute("value") == "broken"
    assert len(server.api("GET", "/api/schedules", expect=200)["schedules"]) == 1


def test_the_pages_fit_a_phone_screen(server, browser):
    """(After the test above: a schedule with a run-less page exists.) As tests/browser/test_layout.py checks the
    other pages: nothing but tables' own scrolling boxes sticks out of a phone's width."""
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
    try:
        sign_in(browser, server, path="/schedules")
        for path in ("/schedules", "/schedules/lab3-nightly"):
            browser.get(server.url + path)
            assert browser.find_elements(By.TAG_NAME, "h1"), path
            scroll_width, width, sticking_out = browser.execute_script(OVERFLOW)
            assert width == PHONE["width"] and scroll_width <= width and not sticking_out, (path, sticking_out)
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
