"""In a real browser: an incremental deploy's three figures (issue 17). A simulated client reporting through the
real client API (imager/api.py): the dashboard row and the task page show "reused …, fetched …, wrote …" as the
reports come, without a reload; the finished task's page keeps the result's figures."""
from __future__ import annotations

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from imager.api import TaskClient
from tests.browser.conftest import sign_in, wait_for
from tests.browser.serverproc import ConsoleServer
from tests.browser.watch import mark_page

IMAGE = "inc-image"
GIB, MIB = 1 << 30, 1 << 20


def deploy_running(server: ConsoleServer, mac: str, name: str) -> tuple[int, TaskClient]:
    """A deploy of IMAGE (captured once by a simulated client) for a new host, checked in by its client."""
    if not any(i["name"] == IMAGE for i in server.api("GET", "/api/images", expect=200)):
        server.api("POST", "/api/storage", expect=201, name="main", export="10.0.0.1:/images")
        server.api("POST", "/api/images", expect=201, name=IMAGE, storage="main", format="chunked")
        server.api("POST", "/api/hosts", expect=201, mac="52:54:00:0c:00:01", name="master")
        capture = server.api("POST", "/api/tasks", expect=201, host="master", type="capture", image=IMAGE)
        master = TaskClient(server.url, capture["id"], server.task_token("52:54:00:0c:00:01"), attempts=1)
        told = master.checkin()["image"]
        assert told is not None and told.get("format") == "chunked"  # the capture is told what to write
        master.done({"stored_bytes": 100 * MIB, "raw_bytes": 3 * GIB})
    server.api("POST", "/api/hosts", expect=201, mac=mac, name=name)
    task = server.api("POST", "/api/tasks", expect=201, host=name, type="deploy", image=IMAGE)
    client = TaskClient(server.url, task["id"], server.task_token(mac), attempts=1)
    client.checkin()
    return int(task["id"]), client


def figures_on(browser: WebDriver, task_id: int) -> str:
    return str(browser.find_element(By.CSS_SELECTOR, f'[data-task="{task_id}"] .figures').text)


def test_the_figures_move_live_on_the_dashboard_and_the_task_page(server: ConsoleServer, browser: WebDriver) -> None:
    task_id, client = deploy_running(server, "52:54:00:0c:00:02", "pc-inc")
    sign_in(browser, server, path="/")
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, f'[data-task="{task_id}"]'))
    mark_page(browser)
    assert figures_on(browser, task_id) == ""  # nothing reported yet: nothing said
    client.progress({"stage": "d1p1", "percent": 40.0, "bytes_done": 2 * GIB, "bytes_total": 5 * GIB,
                     "reused_bytes": 2 * GIB, "fetched_bytes": 30 * MIB, "wrote_bytes": 31 * MIB})
    wait_for(browser, lambda d: figures_on(d, task_id) == "reused 2.0 GiB, fetched 30.0 MiB, wrote 31.0 MiB",
             message=f"the dashboard row's figures: {figures_on(browser, task_id)!r}")
    assert browser.execute_script("return window.imagerWatchMarker") == 1, "the page was never reloaded"

    browser.get(f"{server.url}/tasks/{task_id}")
    wait_for(browser, lambda d: d.find_elements(By.ID, "task-figures"))
    assert browser.find_element(By.ID, "task-figures").text == "reused 2.0 GiB, fetched 30.0 MiB, wrote 31.0 MiB"
    mark_page(browser)
    client.done({"raw_bytes": 5 * GIB, "reused_bytes": 4 * GIB + 512 * MIB, "fetched_bytes": 200 * MIB,
                 "wrote_bytes": 300 * MIB})
    wait_for(browser, lambda d: d.find_element(By.ID, "task-figures").text
             == "reused 4.5 GiB, fetched 200.0 MiB, wrote 300.0 MiB",
             message=f"the task page's figures: {browser.find_element(By.ID, 'task-figures').text!r}")
    assert browser.execute_script("return window.imagerWatchMarker") == 1, "the page was never reloaded"


def test_a_finished_deploys_page_shows_its_results_figures(server: ConsoleServer, browser: WebDriver) -> None:
    task_id, client = deploy_running(server, "52:54:00:0c:00:03", "pc-done")
    client.done({"raw_bytes": 5 * GIB, "reused_bytes": 5 * GIB - 50 * MIB, "fetched_bytes": 12 * MIB,
                 "wrote_bytes": 50 * MIB})
    sign_in(browser, server, path=f"/tasks/{task_id}")
    assert browser.find_element(By.ID, "task-state").text == "done"
    assert browser.find_element(By.ID, "task-figures").text == "reused 5.0 GiB, fetched 12.0 MiB, wrote 50.0 MiB"
    result = browser.find_element(By.ID, "task-result").text
    assert "reused bytes" in result and "wrote bytes" in result  # the result as the client sent it, too
