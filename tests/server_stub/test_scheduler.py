"""The schedule runner over a real Store (SQLite in tmp_path), its time from a fake clock the tests advance; no
sleeps. Restarts are a new Store and Scheduler on the same file."""
import datetime as dt
import time
from zoneinfo import ZoneInfo

import pytest

from server_stub.cron import parse_local_time
from server_stub.errors import Conflict, Invalid, NotFound
from server_stub.scheduler import Scheduler
from server_stub.store import Store
from server_stub.store.schedules import MAX_SCHEDULES, RUNS_KEPT, ScheduleSpec

BERLIN = ZoneInfo("Europe/Berlin")
MACS = {"pc1": "52:54:00:aa:bb:01", "pc2": "52:54:00:aa:bb:02", "pc3": "52:54:00:aa:bb:03"}


class FakeClock:
    def __init__(self, start: str) -> None:
        self.now = parse_local_time(start, BERLIN)

    def __call__(self) -> float:
        return self.now

    def at(self, text: str) -> None:
        self.now = parse_local_time(text, BERLIN)


class Waker:
    """Records what it was asked to wake (the real one sends magic packets: server_stub/wol.py)."""

    def __init__(self) -> None:
        self.woken: list[list[str]] = []

    def __call__(self, macs: list[str], image: str | None) -> str:
        self.woken.append(macs)
        self.image = image
        return f"woke {len(macs)}"


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "imager.sqlite3")


@pytest.fixture
def store(path):
    s = Store(path)
    s.add_storage("main", "10.0.0.1:/images", rsync_target="/srv/images")
    for name, mac in MACS.items():
        s.add_host(mac, name)
    s.add_image("win10", "main")
    s.db.execute("UPDATE images SET captured = ?", time.time())
    yield s
    s.close()


@pytest.fixture
def clock():
    return FakeClock("2026-12-02 12:00")   # a Wednesday


@pytest.fixture
def waker():
    return Waker()


@pytest.fixture
def scheduler(store, clock, waker):
    return Scheduler(store, BERLIN, clock, waker)


def nightly(**changes):
    spec = ScheduleSpec(name="lab3-nightly", type="deploy", image="win10", hosts=["pc1", "pc2"], rule="0 2 * * sun")
    for key, value in changes.items():
        setattr(spec, key, value)
    return spec


def local(instant):
    return dt.datetime.fromtimestamp(instant, BERLIN).strftime("%Y-%m-%d %H:%M")


def test_a_weekly_deploy_runs_at_its_time_wakes_first_and_records_the_run(store, scheduler, clock, waker):
    schedule = scheduler.add(nightly(), actor="alice")
    assert (schedule["state"], local(schedule["next_run"]), schedule["created_by"]) == \
        ("active", "2026-12-06 02:00", "alice")
    clock.at("2026-12-06 01:59")
    assert scheduler.tick() == [] and store.tasks() == []
    clock.at("2026-12-06 02:00:05")
    [run] = scheduler.tick()
    tasks = store.tasks()
    assert [(t["host"], t["type"], t["image"], t["queued_by"]) for t in tasks] == \
        [("pc1", "deploy", "win10", "schedule lab3-nightly"), ("pc2", "deploy", "win10", "schedule lab3-nightly")]
    assert (run["outcome"], local(run["due"]), run["task_ids"]) == ("queued", "2026-12-06 02:00",
                                                                    [t["id"] for t in tasks])
    assert run["detail"].startswith("woke 2; pc1: task")
    assert waker.woken == [[MACS["pc1"], MACS["pc2"]]] and waker.image == "win10"
    assert local(store.schedules_repo.schedule("lab3-nightly")["next_run"]) == "2026-12-13 02:00"
    assert scheduler.tick() == []  # the same minute again: nothing more
    audit, _ = store.accounts.audit_page()
    assert (audit[0]["actor"], audit[0]["action"], audit[0]["target"], audit[0]["outcome"]) == \
        ("scheduler", "run schedule", "lab3-nightly", "queued")


def test_a_busy_host_is_skipped_with_its_task_named(store, scheduler, clock, waker):
    busy = store.add_task("pc2", "inventory", None)
    store.start_task(busy["id"])
    scheduler.add(nightly(), actor="alice")
    scheduler.add(nightly(name="pc2-only", hosts=["pc2"]), actor="alice")
    clock.at("2026-12-06 02:00")
    by_name = {store.schedules_repo.schedule(str(r["schedule_id"]))["name"]: r for r in scheduler.tick()}
    assert by_name["pc2-only"]["outcome"] == "skipped"
    assert by_name["pc2-only"]["detail"] == f"skipped: host busy (task {busy['id']} running)"
    assert by_name["lab3-nightly"]["outcome"] == "partial"
    assert f"pc2: skipped: host busy (task {busy['id']} running)" in by_name["lab3-nightly"]["detail"]
    assert [t["host"] for t in store.tasks(include_finished=False) if t["id"] != busy["id"]] == ["pc1"]
    assert waker.woken == [[MACS["pc1"]]]  # only the idle host is woken, and only once (pc2-only woke nobody)


def test_no_wake_when_the_schedule_says_so(store, scheduler, clock, waker):
    scheduler.add(nightly(wake=False), actor="alice")
    clock.at("2026-12-06 02:00")
    [run] = scheduler.tick()
    assert run["outcome"] == "queued" and waker.woken == [] and run["detail"].startswith("pc1: task")


def test_wake_failure_is_recorded_and_the_tasks_queued(store, clock):
    def broken(macs, image):
        raise OSError("Network is unreachable")
    scheduler = Scheduler(store, BERLIN, clock, broken)
    scheduler.add(nightly(hosts=["pc3"]), actor="alice")
    clock.at("2026-12-06 02:00")
    [run] = scheduler.tick()
    assert run["outcome"] == "queued"
    assert run["detail"].startswith("wake-up failed: Network is unreachable; task ")


def test_a_one_time_schedule_runs_once_then_is_finished(store, scheduler, clock):
    at = parse_local_time("2026-12-03 18:30", BERLIN)
    schedule = scheduler.add(ScheduleSpec(name="inv-once", type="inventory", hosts=["pc3"], run_at=at), "bob")
    assert schedule["next_run"] == at
    clock.at("2026-12-03 18:31")
    [run] = scheduler.tick()
    assert run["outcome"] == "queued" and store.task(run["task_ids"][0])["type"] == "inventory"
    after = store.schedules_repo.schedule("inv-once")
    assert (after["state"], after["next_run"]) == ("finished", None)
    clock.at("2026-12-10 18:31")
    assert scheduler.tick() == []

    def later(spec):
        spec.run_at = parse_local_time("2026-12-11 07:00", BERLIN)
        return spec
    again = scheduler.edit("inv-once", later)   # a finished one-time schedule with a new time runs again
    assert (again["state"], local(again["next_run"])) == ("active", "2026-12-11 07:00")
    scheduler.pause("inv-once")
    clock.at("2026-12-11 08:00")
    assert scheduler.tick() == []
    with pytest.raises(Invalid) as passed:      # its time went by while paused: a new time is needed
        scheduler.resume("inv-once")
    assert "is past" in passed.value.message
    with pytest.raises(Invalid) as past:
        scheduler.add(ScheduleSpec(name="late", type="inventory", hosts=["pc3"], run_at=at), "bob")
    assert "is past" in past.value.message and past.value.details["field"] == "at"


def test_missed_while_down_runs_once_within_the_window_after_a_restart(path, store, clock, waker):
    Scheduler(store, BERLIN, clock, waker).add(nightly(rule="0 * * * *", hosts=["pc1"]), "alice")  # hourly
    store.close()
    # the server was down from 12:00 to 15:20: the 13:00 and 14:00 runs are older than the hour's window,
    # 15:00 is within it and runs once at start
    clock.at("2026-12-02 15:20")
    reopened = Store(path)
    try:
        records = Scheduler(reopened, BERLIN, clock, waker).tick()
        assert [r["outcome"] for r in records] == ["missed", "queued"]
        assert records[0]["detail"].startswith("missed 2 runs from 2026-12-02 13:00 CET to 2026-12-02 14:00 CET:")
        assert local(records[1]["due"]) == "2026-12-02 15:00" and len(records[1]["task_ids"]) == 1
        assert local(reopened.schedules_repo.schedule("lab3-nightly")["next_run"]) == "2026-12-02 16:00"
    finally:
        reopened.close()


def test_missed_beyond_the_window_is_only_recorded(store, scheduler, clock):
    scheduler.add(nightly(catch_up=600), actor="alice")
    clock.at("2026-12-06 02:11")  # eleven minutes late, the window is ten
    [run] = scheduler.tick()
    assert run["outcome"] == "missed" and store.tasks() == []
    assert "missed 1 run at 2026-12-06 02:00 CET" in run["detail"]
    assert local(store.schedules_repo.schedule("lab3-nightly")["next_run"]) == "2026-12-13 02:00"


def test_a_long_outage_of_a_frequent_rule_is_counted_not_walked(store, scheduler, clock):
    scheduler.add(nightly(rule="* * * * *", hosts=["pc1"], catch_up=0), actor="alice")
    clock.at("2026-12-09 12:00")  # a week of minutes
    started = time.monotonic()
    records = scheduler.tick()
    assert time.monotonic() - started < 5
    assert [r["outcome"] for r in records] == ["missed", "queued"]
    assert records[0]["detail"].startswith("missed at least 1000 runs")
    assert local(records[1]["due"]) == "2026-12-09 12:00"


def test_pause_resume_edit_delete(store, scheduler, clock):
    scheduler.add(nightly(), actor="alice")
    paused = scheduler.pause("lab3-nightly")
    assert paused["state"] == "paused"
    with pytest.raises(Conflict):
        scheduler.pause("lab3-nightly")
    clock.at("2026-12-06 02:00")
    assert scheduler.tick() == [] and store.tasks() == []
    clock.at("2026-12-07 09:00")
    resumed = scheduler.resume(str(paused["id"]))
    assert resumed["state"] == "active" and local(resumed["next_run"]) == "2026-12-13 02:00"  # not made up
    assert scheduler.tick() == []

    def edit(spec):
        spec.rule, spec.hosts, spec.after = "30 22 * * mon-fri", ["pc3"], "poweroff"
        return spec
    edited = scheduler.edit("lab3-nightly", edit)
    assert (edited["rule"], edited["hosts"], edited["after"], local(edited["next_run"])) == \
        ("30 22 * * mon-fri", ["pc3"], "poweroff", "2026-12-07 22:30")
    store.edit_host("pc3", {"name": "lab3-pc3"})   # a renamed host stays in the schedule
    assert store.schedules_repo.schedule("lab3-nightly")["hosts"] == ["lab3-pc3"]
    clock.at("2026-12-07 22:30")
    [run] = scheduler.tick()
    assert store.task(run["task_ids"][0])["after"] == "poweroff"
    gone = scheduler.delete("lab3-nightly")
    assert gone["name"] == "lab3-nightly"
    with pytest.raises(NotFound):
        store.schedules_repo.schedule("lab3-nightly")
    assert store.db.scalar("SELECT COUNT(*) FROM schedule_runs") == 0


def test_a_group_schedule_takes_the_members_at_each_run(store, scheduler, clock):
    store.edit_host("pc1", {"group": "lab3"})
    schedule = scheduler.add(nightly(hosts=[], group="lab3"), actor="alice")
    assert schedule["group"] == "lab3"
    store.edit_host("pc2", {"group": "lab3"})   # joins after the schedule was made
    clock.at("2026-12-06 02:00")
    [run] = scheduler.tick()
    assert sorted(store.task(t)["host"] for t in run["task_ids"]) == ["pc1", "pc2"]
    store.db.execute("DELETE FROM host_groups WHERE name = 'lab3'")
    clock.at("2026-12-13 02:00")
    [run] = scheduler.tick()
    assert (run["outcome"], run["detail"]) == ("failed", "its host group lab3 was removed: edit the schedule")


def test_a_deploy_of_a_removed_image_fails_with_the_reason(store, scheduler, clock):
    scheduler.add(nightly(hosts=["pc1"]), actor="alice")
    store.db.execute("UPDATE images SET captured = NULL")
    clock.at("2026-12-06 02:00")
    [run] = scheduler.tick()
    assert run["outcome"] == "failed" and "never been captured" in run["detail"]


@pytest.mark.parametrize("changes, field, words", [
    ({"rule": "0 25 * * *"}, "rule", "hour: 25 is outside 0-23"),
    ({"rule": None}, "rule", "give a cron rule or a time"),
    ({"run_at": 1.0}, "rule", "give a cron rule or a time"),
    ({"name": "123"}, "name", "not only digits"),
    ({"type": "debug"}, "type", "a schedule queues one of capture, deploy"),
    ({"hosts": []}, "hosts", "give the hosts or a group"),
    ({"group": "lab3"}, "hosts", "give the hosts or a group"),
    ({"hosts": ["pc1", "pc1"]}, "hosts", "give each host once"),
    ({"type": "capture", "hosts": ["pc1", "pc2"]}, "hosts", "a capture schedule names one host"),
    ({"type": "inventory"}, "image", "names no image"),
    ({"catch_up": -1}, "catch_up", "catch_up is seconds"),
    ({"catch_up": True}, "catch_up", "catch_up is seconds"),
])
def test_refusals(scheduler, changes, field, words):
    with pytest.raises(Invalid) as refused:
        scheduler.add(nightly(**changes), actor="alice")
    assert words in refused.value.message
    assert refused.value.details.get("field") == field


def test_refusals_of_what_does_not_exist_and_the_bounds(store, scheduler):
    with pytest.raises(NotFound):
        scheduler.add(nightly(hosts=["nobody"]), actor="alice")
    with pytest.raises(NotFound):
        scheduler.add(nightly(image="nothing"), actor="alice")
    with pytest.raises(NotFound):
        scheduler.add(nightly(hosts=[], group="nogroup"), actor="alice")
    with pytest.raises(Invalid) as wipe:
        scheduler.add(nightly(type="wipe", image=None, options={"mode": "everything"}), actor="alice")
    assert "a wipe task needs options" in wipe.value.message
    scheduler.add(nightly(), actor="alice")
    with pytest.raises(Conflict):
        scheduler.add(nightly(), actor="alice")
    for n in range(MAX_SCHEDULES - 1):
        store.db.execute("INSERT INTO schedules(name, task_type, after, hosts, wake, catch_up, enabled, created, "
                         "created_by) VALUES (?, 'inventory', 'reboot', '[]', 1, 0, 0, 0, 'x')", f"filler{n}")
    with pytest.raises(Conflict) as full:
        scheduler.add(nightly(name="one-too-many"), actor="alice")
    assert f"at most {MAX_SCHEDULES} schedules" in full.value.message


def test_run_records_are_bounded(store, scheduler, clock):
    scheduler.add(nightly(rule="* * * * *", hosts=["pc1"]), actor="alice")
    for minute in range(RUNS_KEPT + 5):
        clock.now += 60
        scheduler.tick()
    schedule_id = store.schedules_repo.schedule("lab3-nightly")["id"]
    runs = store.schedules_repo.runs(schedule_id)
    assert runs[0]["outcome"] == "skipped"  # pc1 is busy with the first run's task
    assert store.db.scalar("SELECT COUNT(*) FROM schedule_runs WHERE schedule_id = ?", schedule_id) == RUNS_KEPT


def test_a_run_a_little_late_runs_even_without_a_catch_up_window(store, scheduler, clock):
    scheduler.add(nightly(catch_up=0), actor="alice")
    clock.at("2026-12-06 02:01:30")  # the loop is never this late, but a busy machine may be
    [run] = scheduler.tick()
    assert run["outcome"] == "queued"
