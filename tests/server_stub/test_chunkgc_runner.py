"""The collector's runner in the server's loop, with a real Store and real directories: one run per node (a
second admin request is refused, an automatic one runs again after), no replication on a node while it is
collected, the periodic look at which node is due. The run itself is held on an event (pure scheduling logic)."""
from __future__ import annotations

import asyncio
import threading

import pytest

from server_stub import chunkgc, chunkgcapi
from server_stub.chunkgcapi import ChunkCollector
from server_stub.errors import Conflict
from server_stub.replication import Replicator
from server_stub.store import Store


@pytest.fixture
def setup(tmp_path, monkeypatch):
    store = Store(str(tmp_path / "db.sqlite"))
    store.add_group("room")
    for name in ("m", "n"):
        (tmp_path / name / ".images").mkdir(parents=True)
        (tmp_path / name / ".chunks").mkdir()
        store.add_storage(name, f"10.0.0.1:/{name}", group="room", rsync_target=str(tmp_path / name))
    release, runs = threading.Event(), []

    def held_collect(root, *, now, grace):
        runs.append(root)
        assert release.wait(10)
        return chunkgc.GcReport(marked=len(runs))

    monkeypatch.setattr(chunkgc, "collect", held_collect)
    yield store, release, runs
    store.close()


async def until(condition, seconds=5.0):
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


def test_one_run_per_node_and_no_replication_there_meanwhile(setup):
    store, release, runs = setup

    async def scenario():
        replicator = Replicator(store)
        collector = ChunkCollector(store, replicator)
        first = asyncio.create_task(collector.run("m"))
        await until(lambda: len(runs) == 1)
        with pytest.raises(Conflict, match="a chunk collection is already running on node m"):
            await collector.run("m")
        assert replicator.paused_nodes == {store.storage("m")["id"]}
        collector.request("m")  # an automatic one meanwhile: runs once more after
        release.set()
        report = await first
        assert report["node"] == "m" and report["marked"] == 1 and isinstance(report["finished"], float)
        await until(lambda: len(runs) == 2 and not collector.running)
        assert replicator.paused_nodes == set()
        assert chunkgcapi.last_run(store.storage("m")["rsync_target"])["marked"] == 2
        # the automatic run is in the audit log (the admin's is audited by the API, as their request)
        entries, total = store.accounts.audit_page()
        assert total == 1 and (entries[0]["actor"], entries[0]["via"], entries[0]["action"], entries[0]["target"],
                               entries[0]["outcome"]) == ("chunk collector", "automatic", "collect chunks", "m",
                                                          "ok: 0 deleted (0 bytes freed), 0 quarantined")

    asyncio.run(scenario())


def test_a_node_being_copied_to_is_not_collected(setup):
    store, release, runs = setup
    release.set()

    async def scenario():
        replicator = Replicator(store)
        collector = ChunkCollector(store, replicator)
        node = store.storage("n")
        replicator.running[node["id"]] = asyncio.get_running_loop().create_future()  # a job copying to n
        with pytest.raises(Conflict, match="a replication is copying to node n; collect when it ends"):
            await collector.run("n")
        collector.request("n")
        assert runs == [] and collector.again == {"n"}

    asyncio.run(scenario())


def test_nodes_are_due_every_interval_from_their_last_run(setup):
    store, release, runs = setup
    release.set()
    clock = [1_000_000.0]

    async def scenario():
        collector = ChunkCollector(store, Replicator(store), interval=6 * 3600, clock=lambda: clock[0])
        assert collector.due_nodes() == ["m", "n"]  # never collected
        await collector.run("m")
        assert collector.due_nodes() == ["n"]
        clock[0] += 6 * 3600 - 1
        assert collector.due_nodes() == ["n"]
        clock[0] += 1
        assert collector.due_nodes() == ["m", "n"]

    asyncio.run(scenario())


def test_an_automatic_run_that_stops_is_in_the_audit_log_with_why(setup, monkeypatch):
    store, _release, _runs = setup

    def refusing(root, *, now, grace):
        raise chunkgc.GcError(f"{root}/.images/x@1/d1p1.cidx cannot be read")

    monkeypatch.setattr(chunkgc, "collect", refusing)

    async def scenario():
        collector = ChunkCollector(store, Replicator(store))
        collector.request("n")
        await until(lambda: not collector.running)

    asyncio.run(scenario())
    entries, total = store.accounts.audit_page()
    assert total == 1 and entries[0]["target"] == "n"
    assert entries[0]["outcome"].startswith("stopped: ") and "d1p1.cidx cannot be read" in entries[0]["outcome"]
