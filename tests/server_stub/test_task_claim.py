"""The task token is not in the boot script: a one-time claim is, exchanged once for the token
(docs/security.md#task-claims). A real server on loopback; the thief is any other caller."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from server_stub.errors import Conflict
from server_stub.store import Store
from tests.server_stub.test_api import admin, setup_task

MAC = "52:54:00:00:00:01"


def boot_words(server, mac=MAC):
    script = requests.get(f"{server['url']}/boot/{mac}.ipxe", timeout=10).text
    return script, dict(w.split("=", 1) for w in script.split() if w.startswith("imager.") and "=" in w)


def claim(server, task_id, value):
    return requests.post(f"{server['url']}/api/tasks/{task_id}/claim", json={"claim": value}, timeout=10)


def client_calls(server, task_id, headers):
    """Every call a client makes about its task, each with the body it would send: their status codes."""
    base = f"{server['url']}/api/tasks/{task_id}"
    bodies = {"checkin": {}, "progress": {"percent": 99.0}, "done": {"result": {"stored_bytes": 1}},
              "failed": {"error": {"code": "internal", "message": "thief", "hint": "", "details": {}}, "log": ""},
              "ready": {}}
    return {what: requests.post(f"{base}/{what}", json=body, headers=headers, timeout=10).status_code
            for what, body in bodies.items()}


def test_the_boot_script_hands_out_no_working_token(server):
    task = setup_task(server)
    script, words = boot_words(server)
    assert "imager.token" not in script and words["imager.task"] == str(task["id"])
    # No word of the script (the claim included) opens any of the task's calls.
    for word in {w.split("=", 1)[-1] for w in script.split()}:
        assert set(client_calls(server, task["id"], {"Authorization": f"Bearer {word}"}).values()) == {401}, word
    assert admin(server, "GET", f"/api/tasks/{task['id']}").json()["state"] == "queued"


def test_a_claim_works_once_and_a_second_claim_is_refused_and_visible(server):
    task = setup_task(server)
    _, words = boot_words(server)
    first = claim(server, task["id"], words["imager.claim"])
    assert first.status_code == 200 and first.json()["task"] == task["id"]
    auth = {"Authorization": f"Bearer {first.json()['token']}"}
    r = requests.post(f"{server['url']}/api/tasks/{task['id']}/checkin", json={}, headers=auth, timeout=10)
    assert r.status_code == 200 and r.json()["state"] == "running"

    again = claim(server, task["id"], words["imager.claim"])
    assert again.status_code == 409 and again.json()["code"] == "conflict"
    assert again.json()["details"]["reason"] == "already_claimed" and "token" not in again.json()
    assert "already claimed from 127.0.0.1" in again.json()["error"]
    shown = admin(server, "GET", f"/api/tasks/{task['id']}").json()
    assert shown["claimed_from"] == "127.0.0.1" and shown["claimed"] is not None
    assert shown["claims_refused"] == 1 and shown["claim_refused_from"] == "127.0.0.1"
    assert shown["claim_refused_at"] >= shown["claimed"]
    assert first.json()["token"] not in str(shown) and words["imager.claim"] not in str(shown)
    log = admin(server, "GET", f"/api/boot-log?mac={MAC}").json()
    assert log[0]["decision"] == f"claim refused: task {task['id']} already claimed (127.0.0.1)"
    assert log[0]["task_id"] == task["id"]


def test_a_stolen_boot_script_can_do_nothing_once_the_real_client_has_checked_in(server):
    task = setup_task(server)
    _, stolen = boot_words(server)  # the thief reads the boot script first
    _, real = boot_words(server)
    token = claim(server, task["id"], real["imager.claim"]).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    assert requests.post(f"{server['url']}/api/tasks/{task['id']}/checkin", json={}, headers=auth,
                         timeout=10).status_code == 200
    assert requests.post(f"{server['url']}/api/tasks/{task['id']}/progress", json={"percent": 5.0}, headers=auth,
                         timeout=10).status_code == 200

    assert claim(server, task["id"], stolen["imager.claim"]).status_code == 409
    for headers in ({"Authorization": f"Bearer {stolen['imager.claim']}"}, {}):
        assert set(client_calls(server, task["id"], headers).values()) == {401}
    shown = admin(server, "GET", f"/api/tasks/{task['id']}").json()
    assert shown["state"] == "running" and shown["progress"] == {"percent": 5.0} and shown["claims_refused"] == 1
    # The real client carries on.
    assert requests.post(f"{server['url']}/api/tasks/{task['id']}/done", json={"result": {}}, headers=auth,
                         timeout=10).status_code == 200


def test_of_many_racing_claims_exactly_one_gets_the_token(server):
    task = setup_task(server)
    _, words = boot_words(server)
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: claim(server, task["id"], words["imager.claim"]), range(16)))
    assert sorted(r.status_code for r in answers) == [200] + [409] * 15
    assert admin(server, "GET", f"/api/tasks/{task['id']}").json()["claims_refused"] == 15


@pytest.mark.parametrize("path, body, status", [
    ("/api/tasks/{id}/claim", {"claim": "0" * 32}, 401),              # a wrong claim
    ("/api/tasks/{id}/claim", {"claim": "é" * 32}, 401),              # non-ASCII
    ("/api/tasks/999/claim", {"claim": "{claim}"}, 401),              # another task's number
    ("/api/tasks/99999999999999999999/claim", {"claim": "{claim}"}, 401),  # past SQLite's integers
    ("/api/tasks/{id}/claim", {}, 400),
    ("/api/tasks/{id}/claim", {"claim": 7}, 400),
    ("/api/tasks/{id}/claim", ["claim"], 400),
])
def test_a_bad_claim_is_refused_without_using_up_the_real_one(server, path, body, status):
    task = setup_task(server)
    _, words = boot_words(server)
    body = {k: v.format(claim=words["imager.claim"]) if isinstance(v, str) else v for k, v in body.items()} \
        if isinstance(body, dict) else body
    r = requests.post(server["url"] + path.format(id=task["id"]), json=body, timeout=10)
    assert r.status_code == status and "token" not in r.json(), r.text
    shown = admin(server, "GET", f"/api/tasks/{task['id']}").json()
    assert shown["claimed"] is None and shown["claims_refused"] == 0  # guesses are not recorded as claims
    assert claim(server, task["id"], words["imager.claim"]).status_code == 200


def test_a_finished_tasks_claim_opens_nothing(server):
    task = setup_task(server)
    _, words = boot_words(server)
    admin(server, "POST", f"/api/tasks/{task['id']}/cancel")
    r = claim(server, task["id"], words["imager.claim"])
    assert r.status_code == 409 and "canceled" in r.json()["error"] and "token" not in r.json()


def test_a_menu_task_is_claimed_at_birth(tmp_path):
    """The menu got the token when it made the task: the boot script of that task claims nothing."""
    store = Store(str(tmp_path / "s.db"))
    store.add_storage("main", "10.0.0.1:/images")
    store.add_host(MAC, "pc1")
    store.add_image("win10", "main")
    task = store.add_task("pc1", "capture", "win10", origin="menu")
    assert task["claimed"] is not None and task["claimed_from"] == "menu"
    from server_stub.bootpolicy import claim_of
    with pytest.raises(Conflict, match="already claimed from menu"):
        store.tasks_repo.claim_task(task["id"], claim_of(task["token"]), "10.0.0.9")
    assert store.task(task["id"])["claims_refused"] == 1


def test_an_older_database_marks_the_tasks_whose_clients_hold_their_token_claimed(tmp_path):
    """Migration 7: a running task's client (booted with imager.token) and a menu's queued task hold their token
    already, so no boot script may claim them; an admin's queued task is claimable."""
    import sqlite3

    from server_stub.store.schema import MIGRATIONS, SCHEMA
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)
    for script in MIGRATIONS[:6]:
        conn.executescript(script)
    conn.execute("PRAGMA user_version = 6")
    for number in (1, 2, 3):
        conn.execute("INSERT INTO hosts(mac, name, created) VALUES (?, ?, 0)", (f"52:54:00:00:00:0{number}",
                                                                                f"pc{number}"))
    for host, state, origin in ((1, "running", "admin"), (2, "queued", "menu"), (3, "queued", "admin")):
        conn.execute("INSERT INTO tasks(host_id, type, state, token, created, started, origin) "
                     "VALUES (?, 'inventory', ?, 't', 5, 6, ?)", (host, state, origin))
    conn.commit()
    conn.close()
    store = Store(str(path))
    assert [(t["claimed"], t["claimed_from"], t["claims_refused"]) for t in store.tasks()] == [
        (6, "before claims", 0), (5, "menu", 0), (None, None, 0)]
