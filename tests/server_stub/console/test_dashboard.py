"""The dashboard: active tasks with their progress, multicast sessions' clients, storage nodes' free space and
clients in use, recent failures with code, message, hint and log tail."""
from __future__ import annotations

import os
from pathlib import Path

from server_stub.console.render import human_bytes
from server_stub.store import Store
from tests.server_stub.console.conftest import Browser
from tests.server_stub.console.pagetools import Element


def find(parent: Element, tag: str | None = None, **attrs: str) -> Element:
    found = parent.find(tag, **attrs)
    assert found is not None, f"no {tag or 'element'} {attrs} in {parent.tag}"
    return found


def running_task(store: Store, host: str, mac: str) -> int:
    store.add_host(mac, host)
    task_id = store.add_task(host, "deploy", "win10")["id"]
    store.start_task(task_id)
    return task_id


def setup_images(store: Store, target: Path) -> None:
    target.mkdir(exist_ok=True)
    store.add_storage("main", "10.0.0.1:/images", max_clients=4, rsync_target=str(target))
    store.add_group("remote")
    store.add_storage("far", "10.0.0.2:/images", group="remote", rsync_target="backup@far.example:/images")
    store.add_image("win10", "main")
    store.images_repo.captured(store.image("win10")["id"], 1000, store.storage("main")["id"])


def test_active_task_shows_its_progress_in_words(console: Browser, tmp_path: Path) -> None:
    setup_images(console.store, tmp_path / "images")
    task_id = running_task(console.store, "pc1", "52:54:00:00:00:01")
    console.store.add_host("52:54:00:00:00:02", "pc2")
    queued = console.store.add_task("pc2", "inventory", None)["id"]
    console.store.record_progress(task_id, {"stage": "partition 2/3", "bytes_done": 3 * 2**30,
                                            "bytes_total": 4 * 2**30, "percent": 75.0, "rate_bps": 100 * 2**20,
                                            "eta_s": 10, "stored_bytes": 2**30, "ratio": 3.0})
    page = console.get("/")
    assert page.status == 200
    row = page.by_id(f"task-{task_id}")
    assert row.get("data-task") == str(task_id)
    assert find(row, class_="percent").text == "75.0 %"
    assert find(row, "progress").get("value") == "75.0"
    assert find(row, class_="bytes").text == "3.0 GiB / 4.0 GiB"
    assert find(row, class_="rate").text == "100.0 MiB/s"
    assert find(row, class_="eta").text == "10 s"
    assert find(row, class_="stage").text == "partition 2/3"
    assert find(row, class_="ratio").text == "3.00×"
    assert find(page.by_id(f"task-{queued}"), class_="state").text == "queued"
    # Running before queued.
    ids = [r.get("id") for r in page.by_id("active-tasks").find_all("tr") if r.get("data-task")]
    assert ids == [f"task-{task_id}", f"task-{queued}"]
    assert find(page.doc, "main").get("data-live") == "/events"


def test_storage_nodes_show_free_space_and_clients_in_use(console: Browser, tmp_path: Path) -> None:
    setup_images(console.store, tmp_path / "images")
    running_task(console.store, "pc1", "52:54:00:00:00:01")
    page = console.get("/")
    main = page.by_id("node-main")
    assert find(main, class_="clients").text == "1 / 4"
    fs = os.statvfs(tmp_path / "images")
    free, size = human_bytes(fs.f_bavail * fs.f_frsize).split(), human_bytes(fs.f_blocks * fs.f_frsize)
    shown = find(main, class_="free").text.split(" of ")  # "12.3 GiB of 40.0 GiB"
    assert shown[1] == size
    assert shown[0].split()[1] == free[1] and abs(float(shown[0].split()[0]) - float(free[0])) < 0.5, shown
    assert find(page.by_id("node-far"), class_="free").text == "unknown"


def test_multicast_session_lists_each_clients_state(console: Browser, tmp_path: Path) -> None:
    store = console.store
    setup_images(store, tmp_path / "images")
    store.add_host("52:54:00:00:00:01", "pc1")
    store.add_host("52:54:00:00:00:02", "pc2")
    session = store.add_session(store.image("win10"), ["pc1", "pc2"], min_receivers=2, max_wait=600, rate=None,
                                interface=None, image_dir="/images/win10", version="v1", files=["a.img"],
                                storage_id=store.storage("main")["id"])
    first = session["clients"][0]["task_id"]
    store.multicast_checkin(store.task(first), "10.0.0.5")
    page = console.get("/")
    card = page.by_id(f"session-{session['id']}")
    assert card.get("data-session") == str(session["id"])
    assert find(card, class_="session-state").text == "waiting"
    states = {find(row, "td").text: find(row, class_="client-state").text for row in card.find_all("tr")
              if row.get("data-client")}
    assert states == {"pc1": "joined", "pc2": "queued"}


def test_recent_failures_show_reason_hint_and_log_tail(console: Browser, tmp_path: Path) -> None:
    setup_images(console.store, tmp_path / "images")
    task_id = running_task(console.store, "pc1", "52:54:00:00:00:01")
    log = "\n".join(f"line {n}" for n in range(1, 31))
    console.store.fail_task(task_id, {"code": "disk_too_small", "message": "the disk holds 10 GiB, the image 20",
                                      "hint": "Use a bigger disk."}, log)
    page = console.get("/")
    failure = page.by_id(f"failure-{task_id}")
    assert find(failure, class_="code").text == "disk_too_small"
    assert find(failure, class_="message").text == "the disk holds 10 GiB, the image 20"
    assert find(failure, class_="hint").text == "Use a bigger disk."
    tail = find(failure, "pre").text
    assert "line 30" in tail and "line 23" in tail and "line 22" not in tail
    assert find(failure, "time").get("datetime")
    assert not page.doc.has_id(f"task-{task_id}")  # no longer active


def test_empty_dashboard_says_what_to_do(console: Browser) -> None:
    page = console.get("/")
    assert page.status == 200
    text = find(page.doc, "main").text
    assert "Nothing is running or queued" in text
    assert "No storage node yet" in text
    assert "No task has failed" in text
    assert "No multicast session" in text


def test_dashboard_needs_sign_in(anonymous: Browser) -> None:
    page = anonymous.get("/")
    assert page.status == 302 and page.location.startswith("/signin")


def test_every_dashboard_link_opens_a_page(console: Browser, tmp_path: Path) -> None:
    store = console.store
    setup_images(store, tmp_path / "images")
    task_id = running_task(store, "pc1", "52:54:00:00:00:01")
    failed = running_task(store, "pc2", "52:54:00:00:00:02")
    store.fail_task(failed, {"code": "disk_too_small", "message": "too small", "hint": None, "details": {}}, "log")
    store.add_host("52:54:00:00:00:03", "pc3")
    store.add_session(store.image("win10"), ["pc3"], min_receivers=1, max_wait=600, rate=None, interface=None,
                      image_dir="/images/win10", version="v1", files=["a.img"], storage_id=store.storage("main")["id"])
    links = {a.get("href").split("#")[0] for a in find(console.get("/").doc, "main").find_all("a")}
    assert {f"/tasks/{task_id}", f"/tasks/{failed}", "/hosts/pc1", "/storage"} <= links
    for link in sorted(links):
        assert console.get(link).status == 200, link
