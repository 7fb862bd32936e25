"""In a real browser: add a host and queue a deploy from the console, cancel a task, and a simulated client
reporting through the real client API (imager/api.py) while the dashboard's progress moves without a reload."""
from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from imager.api import TaskClient
from tests.browser.conftest import sign_in, wait_for
from tests.browser.serverproc import ConsoleServer
from tests.browser.watch import mark_page

IMAGE = "web-image"
MASTER_MAC = "52:54:00:0b:00:01"


def run_client(server: ConsoleServer, mac: str, task_id: int) -> TaskClient:
    """The client a machine would run, with the token its boot script's claim gets, checked in."""
    client = TaskClient(server.url, task_id, server.task_token(mac), attempts=1)
    client.checkin()
    return client


@pytest.fixture(scope="module")
def captured(server: ConsoleServer) -> str:
    """IMAGE captured once (by a simulated client), so deploys of it can be queued."""
    server.api("POST", "/api/storage", expect=201, name="main", export="10.0.0.1:/images")
    server.api("POST", "/api/hosts", expect=201, mac=MASTER_MAC, name="master")
    server.api("POST", "/api/images", expect=201, name=IMAGE, storage="main")
    task = server.api("POST", "/api/tasks", expect=201, host="master", type="capture", image=IMAGE)
    run_client(server, MASTER_MAC, task["id"]).done({"stored_bytes": 123 << 20, "raw_bytes": 300 << 20})
    return IMAGE


def notice(browser) -> str:
    return str(wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "main .notice"))[0].text)


def test_add_a_host_and_queue_a_deploy(server, browser, captured):
    sign_in(browser, server, path="/hosts")
    form = browser.find_element(By.ID, "host-add")
    browser.find_element(By.ID, "host-add-mac").send_keys("52:54:00:0b:00:02")
    browser.find_element(By.ID, "host-add-name").send_keys("pc-web")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    assert "pc-web" in notice(browser)
    host = server.api("GET", "/api/hosts/pc-web", expect=200)
    assert host["mac"] == "52:54:00:0b:00:02"

    browser.get(server.url + "/hosts/pc-web")
    Select(browser.find_element(By.ID, "host-task-type")).select_by_value("deploy")
    Select(browser.find_element(By.ID, "host-task-image")).select_by_value(captured)
    browser.find_element(By.ID, "host-task-submit").click()
    assert "Queued deploy task" in notice(browser)
    tasks = [t for t in server.api("GET", "/api/tasks", expect=200) if t["host"] == "pc-web"]
    assert [(t["type"], t["image"], t["state"]) for t in tasks] == [("deploy", captured, "queued")]


def test_a_refused_form_shows_the_error_next_to_the_field(server, browser, captured):
    sign_in(browser, server, path="/hosts")
    browser.find_element(By.ID, "host-add-mac").send_keys("not-a-mac")
    browser.find_element(By.ID, "host-add-name").send_keys("pc-typo")
    browser.find_element(By.ID, "host-add").find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    error = wait_for(browser, lambda d: d.find_elements(By.ID, "host-add-mac-error"))[0]
    assert "MAC" in error.text or "mac" in error.text
    assert browser.find_element(By.ID, "host-add-name").get_attribute("value") == "pc-typo", "what was typed stays"
    assert all(h["name"] != "pc-typo" for h in server.api("GET", "/api/hosts", expect=200))


def queued_deploy(server: ConsoleServer, mac: str, name: str, image: str) -> int:
    server.api("POST", "/api/hosts", expect=201, mac=mac, name=name)
    return int(server.api("POST", "/api/tasks", expect=201, host=name, type="deploy", image=image)["id"])


def test_cancel_a_task(server, browser, captured):
    task_id = queued_deploy(server, "52:54:00:0b:00:03", "pc-cancel", captured)
    sign_in(browser, server, path=f"/tasks/{task_id}")
    assert browser.find_element(By.ID, "task-state").text == "queued"
    browser.find_element(By.ID, f"cancel-{task_id}").find_element(By.CSS_SELECTOR, "button").click()
    assert f"Canceled task {task_id}" in notice(browser)
    assert server.api("GET", f"/api/tasks/{task_id}", expect=200)["state"] == "canceled"


def test_cancelling_from_a_stale_page_says_why(server, browser, captured):
    task_id = queued_deploy(server, "52:54:00:0b:00:05", "pc-stale", captured)
    sign_in(browser, server, path=f"/tasks/{task_id}")
    server.api("POST", f"/api/tasks/{task_id}/cancel", expect=200)  # someone else was quicker
    browser.find_element(By.ID, f"cancel-{task_id}").find_element(By.CSS_SELECTOR, "button").click()
    error = wait_for(browser, lambda d: d.find_elements(By.ID, "task-cancel-error"))[0]
    assert "Not canceled" in error.text
    assert browser.find_element(By.ID, "task-state").text == "canceled"


def dashboard_progress(browser, task_id: int) -> tuple[str, str]:
    row = browser.find_element(By.CSS_SELECTOR, f'[data-task="{task_id}"]')
    return row.find_element(By.CSS_SELECTOR, ".percent").text, row.find_element(By.CSS_SELECTOR, ".state").text


def bar_value(browser, task_id: int) -> float:
    bar = browser.find_element(By.CSS_SELECTOR, f'[data-task="{task_id}"] progress')
    return float(browser.execute_script("return arguments[0].value", bar))


def test_a_client_moves_the_progress_without_a_reload(server, browser, captured):
    server.api("POST", "/api/hosts", expect=201, mac="52:54:00:0b:00:04", name="pc-live")
    task = server.api("POST", "/api/tasks", expect=201, host="pc-live", type="deploy", image=captured)
    sign_in(browser, server, path="/")
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, f'[data-task="{task["id"]}"]'))
    mark_page(browser)
    client = run_client(server, "52:54:00:0b:00:04", task["id"])
    wait_for(browser, lambda d: dashboard_progress(d, task["id"])[1] == "running",
             message="the check-in shows as running")
    for percent in (12.5, 48.0, 91.3):
        client.progress({"stage": "d1p1", "percent": percent, "bytes_done": int(percent * 1e7),
                         "bytes_total": int(1e9), "rate_bps": 50_000_000, "eta_s": 20})
        wait_for(browser, lambda d: dashboard_progress(d, task["id"])[0] == f"{percent:.1f} %",
                 message=f"{percent} % shown: {dashboard_progress(browser, task['id'])}")
        assert bar_value(browser, task["id"]) == percent, "the bar moved with the figure"
    client.done({"stored_bytes": 1, "raw_bytes": 1})
    wait_for(browser, lambda d: dashboard_progress(d, task["id"])[1] == "done", message="done shown")
    assert browser.execute_script("return window.imagerWatchMarker") == 1, "the page was never reloaded"
