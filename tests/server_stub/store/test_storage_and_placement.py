"""Storage groups in the database: which node a task gets, the wait queue, replicas, the migration."""
import sqlite3

import pytest

from server_stub.errors import Conflict, Invalid, NotFound, StorageBusy
from server_stub.store import Store
from server_stub.store.schema import MIGRATIONS, SCHEMA


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "db.sqlite3"))
    s.add_group("room")
    s.add_storage("m", "10.0.0.1:/images", group="room", max_clients=2)  # the group's first node: master
    s.add_storage("a", "10.0.0.2:/images", group="room", max_clients=4)
    s.add_storage("b", "10.0.0.3:/images", group="room", max_clients=1)
    s.add_image("win10", group="room")
    for i in range(12):
        s.add_host(f"52:54:00:00:01:{i:02x}", f"pc{i}")
    yield s
    s.close()


def capture(store, host="pc0"):
    task = store.start_task(store.add_task(host, "capture", "win10")["id"])
    store.finish_task(task["id"], {"stored_bytes": 10})
    return task


def replicate_all(store):
    """What the replicator records when every copy succeeds (the copy itself: test_replication.py)."""
    while job := store.claim_replication(set()):
        store.end_replication(job["id"], "done", 10)


def test_the_first_node_is_master_and_master_moves_on_request(store):
    assert store.group("room")["master"] == "m" and store.group("room")["nodes"] == 3
    assert [n["name"] for n in store.storage_nodes() if n["master"]] == ["m"]
    store.add_storage("c", "10.0.0.4:/images", group="room", master=True)
    assert store.group("room")["master"] == "c" and not store.storage("m")["master"]
    store.set_storage("m", master=True)
    assert store.group("room")["master"] == "m" and not store.storage("c")["master"]


def test_nodes_without_a_group_join_default_and_a_mistyped_group_is_refused(store):
    assert store.add_storage("solo", "10.0.0.9:/images")["group_name"] == "default"
    assert store.group("default")["master"] == "solo"
    with pytest.raises(NotFound, match="roon"):
        store.add_storage("x", "10.0.0.9:/x", group="roon")
    with pytest.raises(Invalid):
        store.add_storage("y", "10.0.0.9:/y", group="room", rsync_target="host:/path;rm -rf /")
    with pytest.raises(Invalid):
        store.add_storage("y", "10.0.0.9:/y", group="room", rsync_target="/srv/../etc")
    store.add_group("empty")
    with pytest.raises(Conflict, match="no node"):
        store.add_image("nowhere", group="empty")
    # The older form names a node: the image belongs to the node's group.
    assert store.add_image("legacy", storage="a")["group_name"] == "room"


def test_a_capture_goes_to_the_master_only_and_waits_when_it_is_full(store):
    task = capture(store)
    assert task["storage"] == "m"
    assert store.image("win10")["replicas"] == ["m"], "the copies are not done yet"
    replicate_all(store)
    deploys = [store.start_task(store.add_task(f"pc{i}", "deploy", "win10")["id"]) for i in range(1, 6)]
    assert [d["storage"] for d in deploys] == ["a", "b", "m", "a", "m"]
    assert store.storage("m")["running"] == 2 and store.storage("a")["running"] == 2
    again = store.add_task("pc6", "capture", "win10")
    with pytest.raises(StorageBusy) as busy:
        store.start_task(again["id"])  # node a has room, but captures go to the master
    assert str(busy.value) == "storage full: 2/2 clients on node m; waiting (position 1)"
    assert store.task(again["id"])["state"] == "queued"


def test_a_deploy_gets_the_least_loaded_node_holding_the_image(store):
    capture(store)
    replicate_all(store)
    chosen = [store.start_task(store.add_task(f"pc{i}", "deploy", "win10")["id"])["storage"] for i in range(1, 8)]
    # load = running / max_clients; equal loads: fewer running, then the name.
    assert chosen == ["a", "b", "m", "a", "m", "a", "a"]
    assert {n["name"]: n["running"] for n in store.storage_nodes()} == {"a": 4, "b": 1, "m": 2}
    first = store.add_task("pc8", "deploy", "win10")
    second = store.add_task("pc9", "deploy", "win10")
    with pytest.raises(StorageBusy, match=r"every node holding the image is busy \(a 4/4, b 1/1, m 2/2 clients\); "
                                          r"waiting \(position 1\)"):
        store.start_task(first["id"])
    with pytest.raises(StorageBusy, match=r"waiting \(position 2\)") as busy:
        store.start_task(second["id"])
    assert busy.value.position == 2
    on_b = next(t for t in store.tasks() if t["storage"] == "b")
    store.finish_task(on_b["id"], {})
    assert store.start_task(first["id"])["storage"] == "b", "a freed slot goes to a waiting client"


def test_only_nodes_with_a_finished_replica_of_the_current_version_serve_deploys(store):
    capture(store)
    jobs = store.replication_jobs("win10")
    assert [(j["source"], j["node"], j["state"]) for j in jobs] == [("m", "a", "queued"), ("m", "b", "queued")]
    a = store.claim_replication(set())
    store.end_replication(a["id"], "done", 10)
    b = store.claim_replication({a["node_id"]})
    store.end_replication(b["id"], "failed", error="rsync exited with 10: connection refused")
    assert store.image("win10")["replicas"] == ["a", "m"]
    for i in (1, 2, 3):
        assert store.start_task(store.add_task(f"pc{i}", "deploy", "win10")["id"])["storage"] in ("a", "m")
    # A new capture: the old copy on a is not the current version any more.
    store.finish_task(store.start_task(store.add_task("pc4", "capture", "win10")["id"])["id"], {})
    assert store.image("win10")["replicas"] == ["m"]
    assert len([j for j in store.replication_jobs("win10") if j["state"] == "queued"]) == 2
    store.queue_replication("win10")  # queued already: no second job beside each
    assert len([j for j in store.replication_jobs("win10") if j["state"] == "queued"]) == 2


def test_a_capture_after_the_master_moved_makes_the_new_master_the_source(store):
    capture(store)
    store.set_storage("a", master=True)
    task = capture(store, "pc1")
    assert task["storage"] == "a" and store.image("win10")["storage"] == "a"
    queued = [(j["source"], j["node"]) for j in store.replication_jobs("win10") if j["state"] == "queued"]
    assert sorted(queued) == [("a", "b"), ("a", "m")]


def test_chosen_node_and_interrupted_jobs_survive_a_restart(tmp_path, store):
    capture(store)
    job = store.claim_replication(set())
    task = store.start_task(store.add_task("pc1", "deploy", "win10")["id"])
    store.close()
    again = Store(str(tmp_path / "db.sqlite3"))
    assert again.task(task["id"])["storage"] == task["storage"] == "m"
    assert again.start_task(task["id"])["storage"] == "m", "checking in again keeps the node"
    assert again.storage("m")["running"] == 1
    assert again.requeue_interrupted_replication() == 1
    assert again.replication_job(job["id"])["state"] == "queued"
    again.close()


def test_a_database_with_nodes_and_images_is_migrated_into_groups(tmp_path):
    path = str(tmp_path / "v1.sqlite3")
    old = sqlite3.connect(path)
    old.executescript(SCHEMA)
    old.executescript(f"BEGIN; {MIGRATIONS[0]}; PRAGMA user_version = 1; COMMIT;")
    old.executescript("""
        INSERT INTO storage_nodes(id, name, export, max_clients, created) VALUES (1, 'n1', '10.0.0.1:/a', 3, 0),
            (2, 'n2', '10.0.0.2:/b', 5, 0);
        INSERT INTO images(id, name, storage_id, created, captured) VALUES (1, 'one', 1, 0, 1), (2, 'two', 2, 0, 1);
        INSERT INTO hosts(id, mac, name, created) VALUES (1, '52:54:00:aa:bb:01', 'pc1', 0),
            (2, '52:54:00:aa:bb:02', 'pc2', 0);
        INSERT INTO tasks(host_id, type, image_id, state, token, created) VALUES (1, 'deploy', 2, 'running', 't', 0);
    """)
    old.commit()
    old.close()
    store = Store(path)
    assert store.db.scalar("PRAGMA user_version") == len(MIGRATIONS)
    # Each node is the master of its own group, so each image stays where its bytes are.
    assert [(g["name"], g["master"]) for g in store.groups()] == [("n1", "n1"), ("n2", "n2")]
    assert store.image("one")["group_name"] == "n1" and store.image("two")["replicas"] == ["n2"]
    assert store.tasks()[0]["storage"] == "n2" and store.storage("n2")["running"] == 1
    assert store.start_task(store.add_task("pc2", "capture", "one")["id"])["storage"] == "n1"
    store.close()
