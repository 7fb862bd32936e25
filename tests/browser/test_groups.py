"""In a real browser: make a host group from the Groups page, put hosts in it, queue one task for the group with
its busy host skipped, watch a member's task state change without a reload, and press Wake (no target is set:
the page says so, and nothing is sent)."""
from __future__ import annotations

import re

from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from tests.browser.conftest import sign_in, wait_for
from tests.browser.serverproc import ConsoleServer

HOSTS = {"52:54:00:0c:00:01": "lab-pc1", "52:54:00:0c:00:02": "lab-pc2", "52:54:00:0c:00:03": "lab-pc3"}


def notice(browser, expect: str | re.Pattern[str]) -> str:
    """The page's notice once it says ``expect`` (a substring or a pattern), read inside the wait: right after a
    click the previous page's notice may still be there, and the answer page may replace the element while it is
    read (a stale element, or Chromium's "unhandled inspector error")."""
    seen: list[str] = []

    def text(driver) -> str | None:
        try:
            found = driver.find_elements(By.CSS_SELECTOR, "main .notice")
            said = found[0].text if found else ""
        except WebDriverException:  # StaleElementReferenceException is one
            return None
        seen.append(said)
        matches = expect.search(said) if isinstance(expect, re.Pattern) else expect in said
        return said if matches else None
    try:
        return str(wait_for(browser, text))
    except TimeoutException:
        raise AssertionError(f"the notice never said {expect!r}; last: {seen[-1:]!r}") from None


def test_a_group_is_made_filled_queued_for_and_woken(server: ConsoleServer, browser):
    for mac, name in HOSTS.items():
        server.api("POST", "/api/hosts", expect=201, mac=mac, name=name)
    busy = server.api("POST", "/api/tasks", expect=201, host="lab-pc3", type="inventory", wake=False)
    sign_in(browser, server, path="/groups")
    browser.find_element(By.LINK_TEXT, "Groups").click()  # the nav link
    browser.find_element(By.ID, "add-group-name").send_keys("lab3")
    browser.find_element(By.ID, "add-group-description").send_keys("room 3")
    browser.find_element(By.ID, "add-group-form").find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    assert notice(browser, "Added host group lab3")  # waits until it says so

    browser.find_element(By.ID, "members-add-hosts").send_keys("lab-pc1, lab-pc2, lab-pc3")
    browser.find_element(By.ID, "members-add").find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    assert notice(browser, "Group lab3 has 3 hosts")  # waits until it says so
    assert browser.find_element(By.ID, "group-queued").text == "1"

    Select(browser.find_element(By.ID, "group-task-type")).select_by_value("inventory")
    wake = browser.find_element(By.ID, "group-task-wake")
    assert wake.is_selected()  # hand-queued tasks wake their hosts by default, as in FOG
    wake.click()
    browser.find_element(By.ID, "group-task-submit").click()
    said = notice(browser, "Queued 2 inventory task(s)")
    assert "Queued 2 inventory task(s)" in said and "Skipped lab-pc3" in said and "Wake" not in said
    assert browser.find_element(By.ID, "group-queued").text == "3"
    tasks = {t["host"]: t for t in server.api("GET", "/api/tasks?all=0", expect=200)}
    assert sorted(tasks) == ["lab-pc1", "lab-pc2", "lab-pc3"]

    # Canceled elsewhere (the API): the member's state on this page changes without a reload.
    server.api("POST", f"/api/tasks/{tasks['lab-pc1']['id']}/cancel", expect=200)
    wait_for(browser, lambda d: d.find_element(By.ID, "member-lab-pc1").find_element(
        By.CSS_SELECTOR, ".state").text == "canceled")
    assert server.api("GET", f"/api/tasks/{busy['id']}", expect=200)["state"] == "queued"

    browser.find_element(By.ID, "group-wake").find_element(By.CSS_SELECTOR, "button").click()
    assert notice(browser, "No Wake-on-LAN target covers lab-pc1, lab-pc2, lab-pc3")  # waits until it says so
    browser.get(server.url + "/groups")
    row = browser.find_element(By.ID, "group-lab3").find_elements(By.TAG_NAME, "td")
    assert [c.text for c in row[:6]] == ["lab3", "3", "1", "2", "0", "0"]


def test_the_groups_pages_fit_a_phone_screen(server: ConsoleServer, browser):
    from tests.browser.test_layout import OVERFLOW, PHONE

    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
    try:
        sign_in(browser, server)
        for path in ("/groups", "/groups/lab3"):  # lab3 and its hosts: the test above
            browser.get(server.url + path)
            scroll_width, width, sticking_out = browser.execute_script(OVERFLOW)
            assert scroll_width <= width and not sticking_out, (path, scroll_width, sticking_out)
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
