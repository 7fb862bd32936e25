"""The HTTP API of a real server process: admin calls, boot scripts, the client's per-task token."""
import requests


def admin(server, method, path, **body):
    return requests.request(method, server["url"] + path, json=body or None, headers=server["admin"], timeout=10)


def setup_task(server, kind="capture"):
    assert admin(server, "POST", "/api/storage", name="main", export="10.0.0.1:/images").status_code == 201
    assert admin(server, "POST", "/api/hosts", mac="52:54:00:00:00:01", name="pc1").status_code == 201
    assert admin(server, "POST", "/api/hosts", mac="52:54:00:00:00:02", name="pc2").status_code == 201
    assert admin(server, "POST", "/api/images", name="win10", storage="main").status_code == 201
    task = admin(server, "POST", "/api/tasks", host="pc1", type=kind, image="win10")
    assert task.status_code == 201 and "token" not in task.json()
    return task.json()


def token_of(server, mac):
    """The task token, as a booting client gets it: the boot script's claim, exchanged once."""
    script = requests.get(f"{server['url']}/boot/{mac}.ipxe", timeout=10).text
    words = dict(w.split("=", 1) for w in script.split() if w.startswith(("imager.task=", "imager.claim=")))
    r = requests.post(f"{server['url']}/api/tasks/{words['imager.task']}/claim",
                      json={"claim": words["imager.claim"]}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["token"]


def test_boot_files_have_a_content_length(server):
    r = requests.get(server["url"] + "/files/initrd.img", timeout=10)
    assert r.status_code == 200 and r.headers["Content-Length"] == "1000000"
    assert r.content == (server["boot"] / "initrd.img").read_bytes()
    assert requests.get(server["url"] + "/files/..%2fserver.log", timeout=10).status_code == 404


def test_client_life_checkin_progress_done(server):
    task = setup_task(server)
    token = token_of(server, "52:54:00:00:00:01")
    base = f"{server['url']}/api/tasks/{task['id']}"
    auth = {"Authorization": f"Bearer {token}"}
    r = requests.post(base + "/checkin", headers=auth, json={}, timeout=10)
    assert r.status_code == 200
    body = r.json()
    assert body["type"] == "capture" and body["image"]["name"] == "win10"
    assert body["storage"]["export"] == "10.0.0.1:/images"
    assert requests.post(base + "/progress", headers=auth, json={"percent": 42.0}, timeout=10).status_code == 200
    assert admin(server, "GET", f"/api/tasks/{task['id']}").json()["progress"]["percent"] == 42.0
    assert requests.post(base + "/done", headers=auth, json={"result": {"stored_bytes": 5}}, timeout=10).status_code == 200
    assert admin(server, "GET", f"/api/tasks/{task['id']}").json()["state"] == "done"
    # Finished: the machine boots its disk again, and the token no longer moves the task.
    assert "sanboot" in requests.get(f"{server['url']}/boot/52:54:00:00:00:01.ipxe", timeout=10).text
    assert requests.post(base + "/progress", headers=auth, json={}, timeout=10).status_code == 409


def test_a_wrong_or_missing_token_is_refused(server):
    task = setup_task(server)
    base = f"{server['url']}/api/tasks/{task['id']}"
    assert requests.post(base + "/checkin", json={}, timeout=10).status_code == 401
    assert requests.post(base + "/checkin", headers={"Authorization": "Bearer guess"}, json={},
                         timeout=10).status_code == 401
    assert requests.post(f"{server['url']}/api/tasks/999/checkin", headers={"Authorization": "Bearer x"},
                         json={}, timeout=10).status_code == 401
    assert admin(server, "GET", f"/api/tasks/{task['id']}").json()["state"] == "queued"


def test_cancel_stops_a_running_client(server):
    task = setup_task(server)
    token = token_of(server, "52:54:00:00:00:01")
    auth = {"Authorization": f"Bearer {token}"}
    base = f"{server['url']}/api/tasks/{task['id']}"
    requests.post(base + "/checkin", headers=auth, json={}, timeout=10)
    assert admin(server, "POST", f"/api/tasks/{task['id']}/cancel").json()["state"] == "canceled"
    r = requests.post(base + "/progress", headers=auth, json={"percent": 1}, timeout=10)
    assert r.status_code == 409 and "canceled" in r.json()["error"]


def test_bad_admin_input_gets_400_and_unknown_404(server):
    assert admin(server, "POST", "/api/hosts", mac="zz", name="x").status_code == 400
    assert admin(server, "POST", "/api/hosts", name="x").status_code == 400
    assert admin(server, "GET", "/api/tasks/12345").status_code == 404
    r = requests.get(f"{server['url']}/boot/not-a-mac.ipxe", timeout=10)
    assert r.status_code == 400


def test_admin_calls_need_the_admin_credential(server):
    for method, path in (("GET", "/api/hosts"), ("POST", "/api/hosts"), ("GET", "/api/tasks"),
                         ("POST", "/api/tasks/1/cancel"), ("GET", "/api/boot-log")):
        assert requests.request(method, server["url"] + path, json={}, timeout=10).status_code == 401
        wrong = {"Authorization": "Bearer not-it"}
        assert requests.request(method, server["url"] + path, json={}, headers=wrong, timeout=10).status_code == 401
    assert (server["data"] / "admin.token").stat().st_mode & 0o077 == 0, "the token file is private"
    # A task token is not an admin credential.
    setup_task(server)
    token = token_of(server, "52:54:00:00:00:01")
    assert requests.get(server["url"] + "/api/tasks", headers={"Authorization": f"Bearer {token}"},
                        timeout=10).status_code == 401


def test_one_hosts_token_cannot_touch_another_hosts_task(server):
    first = setup_task(server)
    second = admin(server, "POST", "/api/tasks", host="pc2", type="capture", image="win10").json()
    token_1 = token_of(server, "52:54:00:00:00:01")
    for what in ("checkin", "progress", "done", "failed"):
        r = requests.post(f"{server['url']}/api/tasks/{second['id']}/{what}",
                          headers={"Authorization": f"Bearer {token_1}"}, json={}, timeout=10)
        assert r.status_code == 401, what
    assert admin(server, "GET", f"/api/tasks/{second['id']}").json()["state"] == "queued"
    assert admin(server, "GET", f"/api/tasks/{first['id']}").json()["state"] == "queued"


def test_a_running_client_keeps_reporting_across_a_server_restart(server):
    task = setup_task(server)
    auth = {"Authorization": "Bearer " + token_of(server, "52:54:00:00:00:01")}
    base = f"{server['url']}/api/tasks/{task['id']}"
    assert requests.post(base + "/checkin", headers=auth, json={}, timeout=10).status_code == 200
    server["restart"]()
    assert requests.post(base + "/progress", headers=auth, json={"percent": 77}, timeout=10).status_code == 200
    assert requests.post(base + "/done", headers=auth, json={"result": {}}, timeout=10).status_code == 200
    record = admin(server, "GET", f"/api/tasks/{task['id']}").json()
    assert record["state"] == "done" and record["progress"]["percent"] == 77


def test_deploy_a_group_of_hosts_all_or_nothing(server):
    setup_task(server)  # pc1 has an active capture task
    admin(server, "POST", "/api/hosts", mac="52:54:00:00:00:03", name="pc3")
    # pc1 is busy: no task is created for pc2 or pc3 either.
    r = admin(server, "POST", "/api/tasks", hosts=["pc2", "pc3", "pc1"], type="capture", image="win10")
    assert r.status_code == 409
    assert [t["host"] for t in admin(server, "GET", "/api/tasks").json()] == ["pc1"]
    r = admin(server, "POST", "/api/tasks", hosts=["pc2", "pc3"], type="capture", image="win10")
    assert r.status_code == 201 and [t["host"] for t in r.json()] == ["pc2", "pc3"]


def test_a_full_storage_node_queues_the_next_client(server):
    task = setup_task(server)
    assert admin(server, "POST", "/api/storage/main", max_clients=1).json()["max_clients"] == 1
    second = admin(server, "POST", "/api/tasks", host="pc2", type="capture", image="win10").json()
    auth1 = {"Authorization": "Bearer " + token_of(server, "52:54:00:00:00:01")}
    auth2 = {"Authorization": "Bearer " + token_of(server, "52:54:00:00:00:02")}
    base = server["url"] + "/api/tasks"
    assert requests.post(f"{base}/{task['id']}/checkin", headers=auth1, json={}, timeout=10).json()["state"] == "running"
    wait = requests.post(f"{base}/{second['id']}/checkin", headers=auth2, json={}, timeout=10).json()
    assert wait["wait"] is True and wait["reason"] == "storage full: 1/1 clients on node main; waiting (position 1)"
    record = admin(server, "GET", f"/api/tasks/{second['id']}").json()
    assert record["state"] == "queued" and "waiting" in record["progress"]["stage"]
    requests.post(f"{base}/{task['id']}/done", headers=auth1, json={"result": {}}, timeout=10)
    assert requests.post(f"{base}/{second['id']}/checkin", headers=auth2, json={}, timeout=10).json()["state"] == "running"
