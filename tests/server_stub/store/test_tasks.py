import sqlite3

import pytest

from contract.vocabulary import TASK_STATES
from server_stub.errors import Conflict, NotFound
from server_stub.store.tasks import TRANSITIONS

LEGAL = {(a, b) for a, targets in TRANSITIONS.items() for b in targets}


def task_in(store, state):
    """A task of pc1 brought to ``state`` by the store's own calls."""
    task = store.add_task("pc1", "inventory", None)
    if state == "queued":
        return task
    if state in ("running", "done"):
        store.start_task(task["id"])
        if state == "done":
            store.finish_task(task["id"], {})
    elif state == "failed":
        store.fail_task(task["id"], {"code": "x", "message": "x"}, "log")
    elif state == "canceled":
        store.cancel_task(task["id"])
    assert store.task(task["id"])["state"] == state
    return store.task(task["id"])


def test_the_legal_moves_are_exactly_the_documented_ones():
    assert LEGAL == {("queued", "running"), ("queued", "failed"), ("queued", "canceled"),
                     ("running", "done"), ("running", "failed"), ("running", "canceled")}


@pytest.mark.parametrize("source", TASK_STATES)
@pytest.mark.parametrize("target", ["running", "done", "failed", "canceled"])
def test_transition_allows_the_legal_moves_and_refuses_every_other(store, source, target):
    task = task_in(store, source)
    if (source, target) in LEGAL:
        moved = store.tasks_repo.transition(task["id"], target)
        assert moved["state"] == target
        assert (moved["started"] if target == "running" else moved["finished"]) is not None
    else:
        with pytest.raises(Conflict, match=f"task {task['id']} is {source}; it cannot become {target}"):
            store.tasks_repo.transition(task["id"], target)
        assert store.task(task["id"])["state"] == source


def test_a_done_task_cannot_run_again(store):
    task = task_in(store, "done")
    with pytest.raises(Conflict, match="is done; it cannot become running"):
        store.tasks_repo.transition(task["id"], "running")
    with pytest.raises(Conflict):
        store.start_task(task["id"])
    with pytest.raises(Conflict):
        store.cancel_task(task["id"])


def test_an_unknown_task_is_not_found(store):
    with pytest.raises(NotFound):
        store.cancel_task(999)


def test_a_failed_finish_leaves_no_trace(store):
    """finish_task is one transaction: a capture whose image bookkeeping fails is not done either."""
    task = store.add_task("pc1", "capture", "win10")
    store.start_task(task["id"])
    store.db.execute("DROP TABLE replication_jobs")  # the last step of finishing a capture now fails
    with pytest.raises(sqlite3.OperationalError, match="no such table: replication_jobs"):
        store.finish_task(task["id"], {"stored_bytes": 5}, inventory={"memory_bytes": 1})
    assert store.task(task["id"])["state"] == "running"
    assert store.image("win10")["captured"] is None and store.inventory("pc1") is None


def test_several_tasks_are_added_all_or_none(store):
    store.add_task("pc2", "inventory", None)
    with pytest.raises(Conflict, match="pc2 has an active task"):
        store.add_tasks(["pc1", "pc2"], "inventory", None)
    assert [t["host"] for t in store.tasks()] == ["pc2"]


def test_only_the_transition_function_writes_a_task_state():
    """No other SQL in the server sets tasks.state: a grep over the sources, so a new raw UPDATE fails here."""
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[3] / "server_stub"
    writers = []
    for path in root.rglob("*.py"):
        text = path.read_text()
        for match in re.finditer(r"UPDATE tasks SET (.*?)(?= WHERE|\"|$)", text, re.M):
            assignments = match.group(1)  # what the statement sets, before its WHERE
            if re.search(r"\bstate\s*=|\{sets\}", assignments):
                writers.append(f"{path.relative_to(root)}: {assignments}")
    assert writers == ["store/tasks.py: {sets}"]
