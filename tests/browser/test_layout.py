"""In a real browser: every page fits a phone-sized screen (only tables scroll, inside their .table-wrap),
and the keyboard reaches the content first ("Skip to content")."""
from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.browser.conftest import sign_in
from tests.browser.screenshots import HOST_SHOWN, demo_data
from tests.browser.serverproc import ConsoleServer

PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True}
PAGES = ["/", "/hosts", f"/hosts/{HOST_SHOWN}", "/tasks", "/tasks/1", "/images", "/storage", "/multicast",
         "/settings", "/audit"]

# What sticks out past the screen's right edge, tables' own scrolling boxes aside.
OVERFLOW = """
const width = document.documentElement.clientWidth, out = [];
for (const el of document.querySelectorAll("body *")) {
  if (el.closest(".table-wrap")) continue;
  const right = el.getBoundingClientRect().right;
  if (right > width + 1) out.push(`${el.tagName.toLowerCase()}#${el.id} ends at ${Math.round(right)} px`);
}
return [document.documentElement.scrollWidth, width, out.slice(0, 5)];
"""


@pytest.fixture(scope="module")
def demo(server: ConsoleServer) -> ConsoleServer:
    demo_data(server)  # the screenshots' data: deploys mid-way, one queued, one failed, a host's inventory
    return server


@pytest.fixture
def phone(browser):
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
    try:
        yield browser
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_every_page_fits_a_phone_screen(demo, phone):
    sign_in(phone, demo)
    too_wide = {}
    for path in PAGES:
        phone.get(demo.url + path)
        assert phone.find_elements(By.TAG_NAME, "h1"), f"{path}: no page"
        scroll_width, width, sticking_out = phone.execute_script(OVERFLOW)
        assert width == PHONE["width"]
        if scroll_width > width or sticking_out:
            too_wide[path] = sticking_out or [f"page {scroll_width} px wide"]
    assert not too_wide, f"wider than a {PHONE['width']} px screen: {too_wide}"


def test_the_keyboard_reaches_the_content_first(demo, browser):
    sign_in(browser, demo)
    browser.get(demo.url + "/hosts")
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    first = browser.switch_to.active_element
    assert first.get_attribute("class") == "skip" and first.get_attribute("href").endswith("#main")
    first.send_keys(Keys.ENTER)
    assert browser.switch_to.active_element.get_attribute("id") == "main", "focus moved to the content"
    # From there, Tab goes on into the page's own controls (the search field first).
    browser.switch_to.active_element.send_keys(Keys.TAB)
    assert browser.switch_to.active_element.get_attribute("id") == "hosts-q"
