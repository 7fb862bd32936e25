"""In a real browser: upload a post-deploy script by choosing a file, attach it to an image with the form's
radio and selects, see it listed, then fetch it as the deploying machine would (imager/api.py with its task
token) and find the SHA-256 the page showed; the page fits a phone screen."""
from __future__ import annotations

import hashlib
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from imager.api import TaskClient
from tests.browser.conftest import sign_in, wait_for
from tests.browser.test_groups import notice  # read inside the wait: no stale element
from tests.browser.serverproc import ConsoleServer

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "postdeploy" / "linux-machine-id-reset.sh"
MAC = "52:54:00:0c:00:01"
PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True}
OVERFLOW = """
const width = document.documentElement.clientWidth, out = [];
for (const el of document.querySelectorAll("body *")) {
  if (el.closest(".table-wrap")) continue;
  const right = el.getBoundingClientRect().right;
  if (right > width + 1) out.push(`${el.tagName.toLowerCase()}#${el.id} ends at ${Math.round(right)} px`);
}
return [document.documentElement.scrollWidth, width, out.slice(0, 5)];
"""


def test_upload_attach_and_the_machine_gets_the_same_bytes(server: ConsoleServer, browser):
    server.api("POST", "/api/storage", expect=201, name="main", export="10.0.0.1:/images")
    server.api("POST", "/api/hosts", expect=201, mac=MAC, name="pc1")
    server.api("POST", "/api/images", expect=201, name="deb12", storage="main")
    sign_in(browser, server, path="/scripts")
    browser.find_element(By.ID, "add-script-name").send_keys("machine-id-reset")
    browser.find_element(By.ID, "add-script-description").send_keys("a new machine-id at first boot")
    browser.find_element(By.ID, "add-script-file").send_keys(str(EXAMPLE))
    browser.find_element(By.CSS_SELECTOR, "#add-script-form button[type=submit]").click()
    digest = hashlib.sha256(EXAMPLE.read_bytes()).hexdigest()
    added = f"Script machine-id-reset added (SHA-256 {digest[:16]}…)."
    assert notice(browser, added) == added
    browser.find_element(By.CSS_SELECTOR, "#attach-form input[name=target][value=image]").click()
    Select(browser.find_element(By.ID, "attach-image")).select_by_visible_text("deb12")
    timeout = browser.find_element(By.ID, "attach-timeout")
    timeout.clear()
    timeout.send_keys("90")
    Select(browser.find_element(By.ID, "attach-policy")).select_by_value("warn")
    browser.find_element(By.CSS_SELECTOR, "#attach-form button[type=submit]").click()
    attached = "Script machine-id-reset runs after deploys of image deb12."
    assert notice(browser, attached) == attached
    row = browser.find_element(By.ID, "script-machine-id-reset").text
    assert "image deb12" in row and "(order 0, 90 s, warn)" in row
    shown = browser.find_element(By.CSS_SELECTOR, "#script-machine-id-reset code").get_attribute("title")
    assert shown == digest

    # The machine: a capture so the image can be deployed, then the deploy's checkin and the script itself.
    capture = server.api("POST", "/api/tasks", expect=201, host="pc1", type="capture", image="deb12")
    client = TaskClient(server.url, capture["id"], server.task_token(MAC), attempts=1)
    client.checkin()
    client.done({})
    deploy = server.api("POST", "/api/tasks", expect=201, host="pc1", type="deploy", image="deb12")
    client = TaskClient(server.url, deploy["id"], server.task_token(MAC), attempts=1)
    listed = client.checkin()["scripts"]
    assert [(s["name"], s["sha256"], s["timeout"], s["policy"]) for s in listed] == [
        ("machine-id-reset", digest, 90, "warn")]
    assert client.script(listed[0]["url"]) == EXAMPLE.read_bytes()


def test_the_scripts_page_fits_a_phone_screen(server: ConsoleServer, browser):
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
    try:
        sign_in(browser, server, path="/scripts")
        for path in ("/scripts", "/scripts/machine-id-reset"):
            browser.get(server.url + path)
            assert browser.find_elements(By.TAG_NAME, "h1"), path
            scroll_width, width, sticking_out = browser.execute_script(OVERFLOW)
            assert scroll_width <= width and not sticking_out, (path, scroll_width, sticking_out)
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
