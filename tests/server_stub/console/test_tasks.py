"""The console's tasks pages: the history (filters, pages), queueing every task type for one host or several,
a task's page (progress, error, log, result) and cancelling, a stale cancel included."""
import pytest

MAC1, MAC2 = "52:54:00:aa:bb:01", "52:54:00:aa:bb:02"


@pytest.fixture
def lab(console):
    store = console.store
    store.add_storage("main", "10.0.0.1:/images", rsync_target="/srv/images")
    store.add_image("win10", "main")
    store.add_host(MAC1, "pc1")
    store.add_host(MAC2, "pc2")
    return console


def run_to_done(store, host, type_, image=None, result=None, **options):
    task = store.add_task(host, type_, image, **options)
    store.start_task(task["id"])
    return store.finish_task(task["id"], result or {})


def ids_in(page):
    return [int(row[0]) for row in page.by_id("tasks-table").rows()]


def test_every_cli_task_type_can_be_queued_from_the_tasks_page(lab):
    run_to_done(lab.store, "pc2", "capture", "win10", {"stored_bytes": 1 << 30})
    forms = {"capture": {"image": "win10", "disk": "/dev/sda"},
             "deploy": {"image": "win10", "partition": "3", "after": "poweroff"},
             "inventory": {}, "wipe": {"mode": "full", "disk": "wwn=0x5000c500a1b2c3d4"},
             "disktest": {"disk": "model=WDC WD10EZEX"}, "debug": {}}
    for type_, fields in forms.items():
        done = lab.post("/tasks", {"hosts": "pc1", "type": type_, **fields})
        assert done.status == 303, (type_, done.text[:500])
        task = lab.store.task(int(done.location.split("?")[0].rsplit("/", 1)[1]))
        assert (task["host"], task["type"], task["state"]) == ("pc1", type_, "queued")
        assert task["image"] == fields.get("image") and task["disk"] == fields.get("disk")
        assert task["after"] == fields.get("after", "reboot")
        assert task["options"] == ({"mode": "full"} if type_ == "wipe" else None)
        assert task["partition"] == (3 if type_ == "deploy" else None)
        lab.store.cancel_task(task["id"])


def test_typed_hosts_get_one_task_each_or_none(lab):
    done = lab.post("/tasks", {"hosts": "pc1, " + MAC2, "type": "inventory"})
    assert done.status == 303 and done.location.startswith("/tasks?state=active")
    assert sorted(t["host"] for t in lab.store.tasks(include_finished=False)) == ["pc1", "pc2"]
    refused = lab.post("/tasks", {"hosts": "pc1,pc1", "type": "inventory"})
    assert refused.status == 400 and "each host once" in refused.by_id("task-new-hosts-error").text
    assert refused.by_id("task-new-hosts").get("value") == "pc1,pc1"


def test_the_form_page_offers_every_type_and_the_images(lab):
    page = lab.get("/tasks/new", {"hosts": "pc1,pc2", "type": "wipe"})
    form = page.form("task-new")
    types = [o.get("value") for o in page.by_id("task-new-type").find_all("option")]
    assert types == ["capture", "deploy", "inventory", "wipe", "disktest", "debug"]
    assert form.form_values()["hosts"] == "pc1,pc2" and form.form_values()["type"] == "wipe"
    assert "win10 (not captured yet)" in page.by_id("task-new-image").text


def test_the_history_filters_by_state_type_host_and_image(lab):
    store = lab.store
    capture = run_to_done(store, "pc1", "capture", "win10", {"stored_bytes": 1 << 30})
    inventory = run_to_done(store, "pc2", "inventory")
    canceled = store.cancel_task(store.add_task("pc1", "wipe", None, options={"mode": "fast"})["id"])
    deploy = store.add_task("pc2", "deploy", "win10")
    assert ids_in(lab.get("/tasks")) == [deploy["id"], canceled["id"], inventory["id"], capture["id"]]
    assert ids_in(lab.get("/tasks", {"state": "active"})) == [deploy["id"]]
    assert ids_in(lab.get("/tasks", {"state": "done"})) == [inventory["id"], capture["id"]]
    assert ids_in(lab.get("/tasks", {"type": "wipe"})) == [canceled["id"]]
    assert ids_in(lab.get("/tasks", {"host": "pc1"})) == [canceled["id"], capture["id"]]
    assert ids_in(lab.get("/tasks", {"host": MAC2, "image": "win10"})) == [deploy["id"]]
    none = lab.get("/tasks", {"type": "debug"})
    assert none.status == 200 and "No task matches" in none.by_id("tasks-empty").text


def test_a_filter_not_offered_is_a_message_not_a_500(lab):
    for params, status in (({"state": "exploded"}, 400), ({"type": "nap"}, 400), ({"page": "-1"}, 400),
                           ({"host": "ghost"}, 404)):
        page = lab.get("/tasks", params)
        assert page.status == status, params
        assert page.by_id("tasks-error").text


def test_the_history_pages_by_50(lab):
    store = lab.store
    for _ in range(60):
        store.cancel_task(store.add_task("pc1", "inventory", None)["id"])
    first, second = lab.get("/tasks"), lab.get("/tasks", {"page": "2", "host": "pc1"})
    assert ids_in(first) == list(range(60, 10, -1))
    assert ids_in(second) == list(range(10, 0, -1))
    assert first.by_id("tasks-total").text == "60 tasks, newest first, page 1 of 2."
    assert first.by_id("tasks-next").get("href") == "/tasks?page=2"
    assert lab.get("/tasks").by_id("tasks-new-link").get("href") == "/tasks/new"


def test_an_empty_history_says_what_to_do(lab):
    page = lab.get("/tasks")
    assert "No tasks yet" in page.by_id("tasks-empty").text
    assert page.by_id("tasks-empty").find("a", href="/tasks/new") is not None


def test_the_task_page_shows_progress(lab):
    store = lab.store
    run_to_done(store, "pc2", "capture", "win10", {"stored_bytes": 1 << 30})
    task = store.add_task("pc1", "deploy", "win10", disk="serial=XYZ")
    store.start_task(task["id"])
    store.record_progress(task["id"], {"stage": "partition 2 of 3", "bytes_done": 3 << 30, "bytes_total": 12 << 30,
                                       "percent": 25.0, "rate_bps": 110 << 20, "eta_s": 84})
    page = lab.get(f"/tasks/{task['id']}")
    assert page.status == 200
    assert page.by_id("task-state").text == "running"
    assert page.by_id("task-percent").text == "25.0 %"
    assert page.by_id("task-stage").text == "partition 2 of 3"
    assert page.by_id("task-bytes").text == "3.0 GiB / 12.0 GiB"
    assert page.by_id("task-rate").text == "110.0 MiB/s"
    assert page.by_id("task-eta").text == "1 min 24 s"
    assert page.doc.has_id(f"cancel-{task['id']}")


def test_a_server_written_error_without_a_hint_shows_its_page(lab):
    # What the server itself writes when it cancels a multicast client: code and message, no hint.
    store = lab.store
    task = store.add_task("pc1", "wipe", None, options={"mode": "fast"})
    store.start_task(task["id"])
    store.fail_task(task["id"], {"code": "multicast_canceled", "message": "the session was canceled"}, "")
    page = lab.get(f"/tasks/{task['id']}")
    assert page.by_id("task-error-code").text == "multicast_canceled"
    assert not page.doc.has_id("task-error-hint")


def test_the_task_page_shows_the_error_the_log_and_the_result(lab):
    store = lab.store
    task = store.add_task("pc1", "wipe", None, options={"mode": "fast"})
    store.start_task(task["id"])
    log = "\n".join(f"line {i}" for i in range(100))
    store.fail_task(task["id"], {"code": "disk_not_found", "message": "no disk matches serial=XYZ",
                                 "hint": "run an inventory task to see the disks"}, log)
    page = lab.get(f"/tasks/{task['id']}")
    assert page.by_id("task-error-code").text == "disk_not_found"
    assert page.by_id("task-error-message").text == "no disk matches serial=XYZ"
    assert page.by_id("task-error-hint").text == "run an inventory task to see the disks"
    lines = page.by_id("task-log").text.split(" ")
    assert "line 99" in page.by_id("task-log").text and "line 59" not in page.by_id("task-log").text
    assert len(lines) == 80  # the last 40 lines, two words each
    assert not page.doc.has_id(f"cancel-{task['id']}")  # nothing to cancel
    done = run_to_done(store, "pc2", "capture", "win10", {"stored_bytes": 5 << 30, "version": "20260101"})
    result = lab.get(f"/tasks/{done['id']}").by_id("task-result").text
    assert "stored bytes 5.0 GiB" in result and "version 20260101" in result


def test_a_technician_cancels_a_task(lab):
    tech = lab.user("tech", "technician")
    task = lab.store.add_task("pc1", "inventory", None)
    done = tech.post(f"/tasks/{task['id']}/cancel")
    assert done.status == 303 and done.location.startswith(f"/tasks/{task['id']}")
    assert "Canceled task" in done.notice
    assert lab.store.task(task["id"])["state"] == "canceled"


def test_cancel_from_the_host_page_goes_back_there(lab):
    task = lab.store.add_task("pc1", "inventory", None)
    done = lab.post(f"/tasks/{task['id']}/cancel", {"next": "/hosts/pc1"})
    assert done.status == 303 and done.location.startswith("/hosts/pc1?")
    elsewhere = lab.store.add_task("pc1", "inventory", None)
    offsite = lab.post(f"/tasks/{elsewhere['id']}/cancel", {"next": "//evil.example/"})
    assert offsite.status == 303 and offsite.location.startswith("/?")


def test_a_stale_cancel_says_the_task_already_finished(lab):
    task = lab.store.add_task("pc1", "inventory", None)
    stale_page = lab.get(f"/tasks/{task['id']}")  # the page still offers Cancel …
    assert stale_page.doc.has_id(f"cancel-{task['id']}")
    lab.store.start_task(task["id"])
    lab.store.finish_task(task["id"], {})           # … but the machine finished meanwhile
    refused = lab.post(f"/tasks/{task['id']}/cancel")
    assert refused.status == 409
    assert refused.by_id("task-cancel-error").text == (f"Not canceled: task {task['id']} is done; "
                                                       "it cannot become canceled.")
    assert refused.by_id("task-state").text == "done"
    assert lab.store.task(task["id"])["state"] == "done"


def test_unknown_tasks_are_404_pages(lab):
    assert lab.get("/tasks/999").status == 404
    assert lab.get("/tasks/99999999999999999999999").status == 404
    assert lab.post("/tasks/999/cancel").status == 404


def test_queue_and_cancel_need_the_anti_forgery_token(lab):
    task = lab.store.add_task("pc1", "inventory", None)
    assert lab.post(f"/tasks/{task['id']}/cancel", csrf=False).status == 403
    assert lab.post("/tasks", {"hosts": "pc2", "type": "inventory"}, csrf=False).status == 403
    assert [t["id"] for t in lab.store.tasks(include_finished=False)] == [task["id"]]


def test_signed_out_browsers_are_sent_to_sign_in(anonymous):
    page = anonymous.get("/tasks")
    assert page.status == 302 and page.location == "/signin?next=/tasks"


def test_task_figures_carry_the_live_update_hooks(lab):
    """console.js updates [data-task=ID] .state/.percent/.stage/… in place (server_stub/console/live.py)."""
    store = lab.store
    task = store.add_task("pc1", "inventory", None)
    store.start_task(task["id"])
    store.record_progress(task["id"], {"stage": "disks", "percent": 40.0})
    for path in (f"/tasks/{task['id']}", "/tasks", "/hosts/pc1"):
        page = lab.get(path)
        assert page.by_id("main").get("data-live") == "/events", path
        live = page.doc.find(data_task=str(task["id"]))
        assert live is not None and live.get("data-state") == "running", path
        assert live.find(class_="state").text == "running", path
        assert live.find(class_="percent").text == "40.0 %", path
        assert live.find(class_="stage").text == "disks", path


def test_a_done_inventory_task_points_to_the_host_page(lab):
    task = run_to_done(lab.store, "pc1", "inventory")
    link = lab.get(f"/tasks/{task['id']}").by_id("task-inventory").find("a")
    assert link.get("href") == "/hosts/pc1#host-inventory"
