"""Post-deploy scripts over the real app and a real Store: upload (SHA-256 by the server, bounds), attach to an
image and to a host group, the deploy task's list at checkin, the client's download with its task token only,
another task's script 404, roles, and the audit log."""
import hashlib
import time

from server_stub.store.scripts import MAX_ATTACHED, MAX_SCRIPT_BYTES
from tests.server_stub.console.conftest import console_harness, technician  # noqa: F401
from tests.server_stub.test_accounts import BEARER, call, session_cookie

SCRIPT = "#!/bin/sh\necho hello from $IMAGER_HOSTNAME\n"


def api(harness, method, path, body=None, headers=BEARER):
    status, answer, _ = call(harness, method, path, json=body, headers=headers)
    return status, answer


def deploy_setup(harness):
    """Two hosts deploying two images: pc1 (group lab3) gets win10, pc2 gets deb12. Returns (task1, task2)."""
    store = harness.store
    store.add_storage("main", "10.0.0.1:/images")
    store.add_host("52:54:00:00:00:01", "pc1")
    store.edit_host("pc1", {"group": "lab3"})
    store.add_host("52:54:00:00:00:02", "pc2")
    store.add_image("win10", "main")
    store.add_image("deb12", "main")
    store.db.execute("UPDATE images SET captured = ?", time.time())  # as if captured: deployable
    return store.add_task("pc1", "deploy", "win10"), store.add_task("pc2", "deploy", "deb12")


def checkin(harness, task):
    status, answer = api(harness, "POST", f"/api/tasks/{task['id']}/checkin", {},
                         {"Authorization": f"Bearer {task['token']}"})
    assert status == 200, answer
    return answer


def test_upload_computes_the_sha256_and_show_returns_the_text(console_harness):
    status, added = api(console_harness, "POST", "/api/scripts",
                        {"name": "hello", "description": "says hello", "content": SCRIPT})
    assert status == 201, added
    assert added["sha256"] == hashlib.sha256(SCRIPT.encode()).hexdigest() and added["size"] == len(SCRIPT)
    assert added["created_by"] == "admin" and "content" not in added
    status, shown = api(console_harness, "GET", "/api/scripts/hello")
    assert status == 200 and shown["content"] == SCRIPT and shown["attachments"] == []
    assert api(console_harness, "POST", "/api/scripts", {"name": "hello", "content": SCRIPT})[0] == 409


def test_bad_uploads_are_4xx_naming_the_fault(console_harness):
    cases = [({"name": "x", "content": ""}, "empty"), ({"name": "x", "content": 5}, "text"),
             ({"name": "../x", "content": SCRIPT}, "script name"),
             ({"name": "x", "content": "a" * (MAX_SCRIPT_BYTES + 1)}, "at most"),
             ({"name": "x", "content": "a\0b"}, "NUL"), ({"name": "x", "content": SCRIPT, "mode": 7}, "unknown field")]
    for body, said in cases:
        status, answer = api(console_harness, "POST", "/api/scripts", body)
        assert status == 400 and said in answer["error"], (body, answer)
    assert api(console_harness, "GET", "/api/scripts")[1] == []


def test_attach_order_timeout_policy_and_bad_attachments(console_harness):
    deploy_setup(console_harness)
    api(console_harness, "POST", "/api/scripts", {"name": "hello", "content": SCRIPT})
    status, att = api(console_harness, "POST", "/api/scripts/hello/attach",
                      {"image": "win10", "order": 5, "timeout": 60, "policy": "warn"})
    assert status == 200 and (att["image"], att["position"], att["timeout"], att["policy"]) == ("win10", 5, 60, "warn")
    status, again = api(console_harness, "POST", "/api/scripts/hello/attach", {"image": "win10", "policy": "fail"})
    assert status == 200 and again["id"] == att["id"] and again["policy"] == "fail"  # changed, not doubled
    for body, code in [({"image": "nope"}, 404), ({"image": "win10", "group": "lab3"}, 400), ({}, 400),
                       ({"image": "win10", "timeout": 0}, 400), ({"image": "win10", "timeout": "60"}, 400),
                       ({"image": "win10", "policy": "ignore"}, 400), ({"group": "a b"}, 400)]:
        status, answer = api(console_harness, "POST", "/api/scripts/hello/attach", body)
        assert status == code, (body, answer)
    assert api(console_harness, "POST", "/api/scripts/nope/attach", {"image": "win10"})[0] == 404
    assert api(console_harness, "POST", "/api/scripts/hello/detach", {"image": "deb12"})[0] == 404
    assert api(console_harness, "POST", "/api/scripts/hello/detach", {"image": "win10"})[0] == 200
    assert api(console_harness, "GET", "/api/scripts/hello")[1]["attachments"] == []


def test_an_image_holds_at_most_max_attached_scripts(console_harness):
    deploy_setup(console_harness)
    for n in range(MAX_ATTACHED + 1):
        api(console_harness, "POST", "/api/scripts", {"name": f"s{n}", "content": SCRIPT})
        status, answer = api(console_harness, "POST", f"/api/scripts/s{n}/attach", {"image": "win10"})
        assert status == (200 if n < MAX_ATTACHED else 409), answer


def test_the_deploy_task_lists_its_image_and_group_scripts_in_order_and_the_client_fetches_them(console_harness):
    first, second = deploy_setup(console_harness)
    for name in ("drivers", "machine-id", "group-only"):
        api(console_harness, "POST", "/api/scripts", {"name": name, "content": f"#!/bin/sh\necho {name}\n"})
    api(console_harness, "POST", "/api/scripts/drivers/attach", {"image": "win10", "order": 2, "policy": "warn"})
    api(console_harness, "POST", "/api/scripts/machine-id/attach", {"image": "deb12", "order": 1})
    api(console_harness, "POST", "/api/scripts/group-only/attach", {"group": "lab3", "order": 1, "timeout": 30})
    api(console_harness, "POST", "/api/scripts/drivers/attach", {"group": "lab3", "order": 9})  # runs once, at 2
    listed = checkin(console_harness, first)["scripts"]
    assert [(s["name"], s["timeout"], s["policy"]) for s in listed] == [("group-only", 30, "fail"),
                                                                        ("drivers", 300, "warn")]
    auth = {"Authorization": f"Bearer {first['token']}"}
    for script in listed:
        status, body, headers = call(console_harness, "GET", script["url"], headers=auth)
        assert status == 200 and hashlib.sha256(body.encode()).hexdigest() == script["sha256"]
    other = checkin(console_harness, second)["scripts"]
    assert [s["name"] for s in other] == ["machine-id"]
    # pc1's token cannot fetch pc2's script (404, as if none), nor pc2's script through pc2's task (401)
    assert call(console_harness, "GET", f"/api/tasks/{first['id']}/scripts/{other[0]['url'].rsplit('/', 1)[1]}",
                headers=auth)[0] == 404
    assert call(console_harness, "GET", other[0]["url"], headers=auth)[0] == 401
    assert call(console_harness, "GET", listed[0]["url"])[0] == 401
    assert call(console_harness, "GET", listed[0]["url"], headers={"Authorization": "Bearer guess"})[0] == 401
    assert call(console_harness, "GET", listed[0]["url"], headers=BEARER)[0] == 401  # an admin is not the task
    console_harness.store.cancel_task(first["id"])
    assert call(console_harness, "GET", listed[0]["url"], headers=auth)[0] == 409


def test_a_capture_lists_no_scripts_and_cannot_fetch_any(console_harness):
    store = console_harness.store
    deploy_setup(console_harness)
    api(console_harness, "POST", "/api/scripts", {"name": "hello", "content": SCRIPT})
    api(console_harness, "POST", "/api/scripts/hello/attach", {"group": "lab3"})
    store.cancel_task(store.active_task_for_mac("52:54:00:00:00:01")["id"])
    capture = store.add_task("pc1", "capture", "win10")
    assert checkin(console_harness, capture)["scripts"] == []
    script_id = store.scripts_repo.script("hello")["id"]
    assert call(console_harness, "GET", f"/api/tasks/{capture['id']}/scripts/{script_id}",
                headers={"Authorization": f"Bearer {capture['token']}"})[0] == 404


def test_a_technician_reads_scripts_but_cannot_change_them_and_changes_are_audited(console_harness, technician):
    api(console_harness, "POST", "/api/scripts", {"name": "hello", "content": SCRIPT})
    cookies, csrf = session_cookie(technician), {"X-CSRF-Token": technician.csrf}
    status, listed, _ = call(console_harness, "GET", "/api/scripts", cookies=cookies, headers=csrf)
    assert status == 200 and [s["name"] for s in listed] == ["hello"]
    for method, path, body in [("POST", "/api/scripts", {"name": "x", "content": SCRIPT}),
                               ("DELETE", "/api/scripts/hello", None),
                               ("POST", "/api/scripts/hello/attach", {"image": "win10"})]:
        status, answer, _ = call(console_harness, method, path, json=body, cookies=cookies, headers=csrf)
        assert status == 403 and answer["code"] == "forbidden", (path, answer)
    assert api(console_harness, "POST", "/api/scripts/hello/attach", {"image": "nope"})[0] == 404
    assert api(console_harness, "DELETE", "/api/scripts/hello")[0] == 200
    assert api(console_harness, "GET", "/api/scripts/hello")[0] == 404
    entries, _ = console_harness.store.accounts.audit_page()
    seen = [(e["action"], e["target"], e["outcome"]) for e in entries]
    assert ("POST /api/scripts", "hello", "201") in seen and ("DELETE /api/scripts/hello", "hello", "200") in seen
    assert ("POST /api/scripts/hello/attach", "hello → nope", "404 not_found") in seen
