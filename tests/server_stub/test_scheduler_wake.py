"""A scheduled run wakes its hosts on a real wire first: the runner's tick (fake clock) inside a network namespace
this test creates, magic packets caught by a listener in another (tests/server_stub/test_wol_netns.py's veth
pairs); the idle targets' MACs only, nothing for a busy host, nothing when the schedule says no wake."""
import os
import shutil
import time
from zoneinfo import ZoneInfo

import pytest

from server_stub.cron import parse_local_time
from server_stub.scheduler import Scheduler
from server_stub.schedulesapi import wake_on_lan
from server_stub.store import Store
from server_stub.store.schedules import ScheduleSpec
from server_stub.store.wake import WakeTargets
from tests.server_stub.test_wol_netns import Listener, in_namespace, lan  # noqa: F401 (lan: the fixture)

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip"), reason="needs root and iproute2")]

BERLIN = ZoneInfo("Europe/Berlin")
MACS = {"pc1": "52:54:00:78:00:01", "pc2": "52:54:00:78:00:02", "pc3": "52:54:00:78:00:03"}


def test_a_scheduled_run_wakes_its_idle_hosts_first(lan, tmp_path):  # noqa: F811
    store = Store(str(tmp_path / "store.sqlite3"))
    try:
        store.add_storage("main", "10.0.0.1:/images")
        store.add_image("win10", "main")
        store.db.execute("UPDATE images SET captured = ?", time.time())
        for name, mac in MACS.items():
            store.add_host(mac, name)
            store.edit_host(name, {"group": "lab3"})
        WakeTargets(store.db).set_target(None, "10.231.7.255", None)   # the server default: L's subnet
        busy = store.add_task("pc3", "inventory", None)
        now = {"t": parse_local_time("2026-12-05 12:00", BERLIN)}
        scheduler = Scheduler(store, BERLIN, lambda: now["t"], wake_on_lan(store))
        scheduler.add(ScheduleSpec(name="lab3-nightly", type="deploy", image="win10", group="lab3",
                                   rule="0 2 * * sun"), "alice")
        scheduler.add(ScheduleSpec(name="quiet", type="inventory", hosts=["pc1"], rule="0 3 * * sun", wake=False),
                      "alice")

        listener = Listener(lan["L"])
        now["t"] = parse_local_time("2026-12-06 02:00", BERLIN)
        [run] = in_namespace(lan["S"], scheduler.tick)
        assert listener.finish() == {MACS["pc1"]: 3, MACS["pc2"]: 3}    # pc3 is busy: not woken, not queued
        assert run["outcome"] == "partial"
        assert run["detail"].startswith("woke 2 hosts; pc1: task ")
        assert f"pc3: skipped: host busy (task {busy['id']} queued)" in run["detail"]

        for task_id in run["task_ids"]:       # the machines did their deploys; pc1 is free for the next schedule
            store.cancel_task(task_id)
        listener = Listener(lan["L"])
        now["t"] = parse_local_time("2026-12-06 03:00", BERLIN)
        [run] = in_namespace(lan["S"], scheduler.tick)
        assert listener.finish() == {}                                   # wake off: no packet
        assert run["outcome"] == "queued" and not run["detail"].startswith("woke")
    finally:
        store.close()
