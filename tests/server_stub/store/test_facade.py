import pytest

from server_stub.errors import Conflict, Invalid, NotFound
from server_stub.store import Store


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "db.sqlite3"))
    s.add_storage("main", "10.0.0.1:/images")
    s.add_host("52-54-00-AA-BB-01", "pc1")
    s.add_image("win10", "main")
    yield s
    s.close()


def test_task_life_queued_running_done(store):
    task = store.add_task("pc1", "capture", "win10")
    assert task["state"] == "queued" and len(task["token"]) > 20
    assert store.active_task_for_mac("52:54:00:aa:bb:01")["id"] == task["id"]
    assert store.start_task(task["id"])["state"] == "running"
    store.record_progress(task["id"], {"percent": 50})
    done = store.finish_task(task["id"], {"stored_bytes": 1234})
    assert done["state"] == "done" and done["progress"] == {"percent": 50}
    assert store.active_task_for_mac("52:54:00:aa:bb:01") is None
    assert store.image("win10")["stored_bytes"] == 1234 and store.image("win10")["captured"]


def test_one_active_task_per_host_and_no_deploy_of_an_empty_image(store):
    with pytest.raises(Conflict, match="never been captured"):
        store.add_task("pc1", "deploy", "win10")
    store.add_task("pc1", "capture", "win10")
    with pytest.raises(Conflict, match="active task"):
        store.add_task("pc1", "capture", "win10")


def test_a_canceled_task_refuses_progress_and_completion(store):
    task = store.add_task("pc1", "capture", "win10")
    store.start_task(task["id"])
    store.cancel_task(task["id"])
    with pytest.raises(Conflict):
        store.record_progress(task["id"], {})
    with pytest.raises(Conflict):
        store.finish_task(task["id"], {})
    assert store.task(task["id"])["state"] == "canceled"


def test_survives_a_restart(tmp_path):
    s = Store(str(tmp_path / "db.sqlite3"))
    s.add_storage("main", "10.0.0.1:/images")
    s.add_host("52:54:00:aa:bb:01", "pc1")
    s.add_image("win10", "main")
    task = s.add_task("pc1", "capture", "win10")
    s.start_task(task["id"])
    s.close()
    again = Store(str(tmp_path / "db.sqlite3"))
    assert again.task(task["id"])["state"] == "running"


@pytest.mark.parametrize("call", [
    lambda s: s.add_host("not-a-mac", "x"),
    lambda s: s.add_host("52:54:00:aa:bb:02", "bad name"),
    lambda s: s.add_image("../up", "main"),
    lambda s: s.add_storage("n", "no-colon"),
    lambda s: s.add_task("pc1", "format", "win10"),
    lambda s: s.add_task("pc1", "capture", "win10", disk="; rm -rf /"),
])
def test_bad_input_is_refused(store, call):
    with pytest.raises(Invalid):
        call(store)


def test_unknown_things_are_not_found(store):
    with pytest.raises(NotFound):
        store.host("nobody")
    with pytest.raises(NotFound):
        store.add_task("pc1", "capture", "nothing")


def test_a_database_from_before_registration_is_migrated(tmp_path):
    """A database created by the first schema (no user_version) gains the new columns and table, keeps its rows."""
    import sqlite3

    from server_stub.store.schema import MIGRATIONS, SCHEMA
    path = str(tmp_path / "old.sqlite3")
    old = sqlite3.connect(path)
    old.executescript(SCHEMA)
    old.execute("INSERT INTO hosts(mac, name, created) VALUES ('52:54:00:aa:bb:01', 'pc1', 0)")
    old.commit()
    old.close()
    store = Store(path)
    assert store.db.scalar("PRAGMA user_version") == len(MIGRATIONS)
    assert store.host("pc1")["registered"] == "admin" and store.host("pc1")["image"] is None
    host = store.register_host("52:54:00:aa:bb:02", {"memory_bytes": 1}, prefix="pc-")
    assert host["name"] == "pc-525400aabb02" and store.inventory(host["name"])["data"] == {"memory_bytes": 1}
    store.close()
    again = Store(path)  # opening again applies nothing twice
    assert again.inventory("pc-525400aabb02")["data"] == {"memory_bytes": 1}
    again.close()


def test_an_inventory_task_has_no_image_and_stores_its_inventory_when_done(store):
    with pytest.raises(Invalid, match="names no image"):
        store.add_task("pc1", "inventory", "win10")
    task = store.add_task("pc1", "inventory", None)
    store.start_task(task["id"])  # no image, so no storage node slot to wait for
    store.finish_task(task["id"], {}, inventory={"memory_bytes": 5})
    assert store.inventory("pc1") == {"collected": store.inventory("pc1")["collected"], "task_id": task["id"],
                                      "data": {"memory_bytes": 5}}
