"""Console accounts end to end over the real app and a real Store: Argon2id hashes, sign-in with the token or a
user, throttling per account and per address, the session cookie's flags, expiry, sign-out and password
changes ending sessions server-side, roles on pages and the API, anti-forgery tokens, the audit log."""
import dataclasses
import sqlite3
import time
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from server_stub.config import TlsConfig
from server_stub.webapp import make_app
from tests.server_stub.console.conftest import (ADMIN_TOKEN, USER_PASSWORD, ConsoleHarness, anonymous,  # noqa: F401
                                                console, console_harness, technician)

BEARER = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def call(harness: ConsoleHarness, method: str, path: str, *, json: Any = None, headers: Any = None,
         cookies: Any = None, source: str = "127.0.0.1", form: Any = None) -> tuple[int, Any, Any]:
    """One HTTP request from a fresh client bound to ``source`` (any 127/8 address is this machine):
    (status, JSON or text body, the response headers)."""
    async def run() -> tuple[int, Any, Any]:
        connector = aiohttp.TCPConnector(local_addr=(source, 0))
        async with aiohttp.ClientSession(connector=connector, cookies=cookies) as session:
            async with session.request(method, harness.client.make_url(path), json=json, data=form,
                                       headers=headers, allow_redirects=False) as response:
                body = await (response.json() if response.content_type == "application/json" else response.text())
                return response.status, body, response.headers
    return harness.run(run())


def sign_in(harness: ConsoleHarness, name: str, password: str, source: str = "127.0.0.1") -> tuple[int, Any]:
    status, _, headers = call(harness, "POST", "/signin", form={"name": name, "password": password},
                              source=source)
    return status, headers


def add_user(harness: ConsoleHarness, name: str, role: str = "technician", password: str = USER_PASSWORD) -> None:
    status, body, _ = call(harness, "POST", "/api/users", json={"name": name, "role": role, "password": password},
                           headers=BEARER)
    assert status == 201, body


def session_cookie(browser: Any) -> dict[str, str]:
    return {c.key: c.value for c in browser.session.cookie_jar}


def test_passwords_are_stored_as_argon2id_never_in_clear(console_harness):
    add_user(console_harness, "alice", "admin")
    stored = console_harness.store.accounts.password_hash("alice")
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=2$")
    database = console_harness.config.data_dir + "/imager.sqlite3"
    with sqlite3.connect(database) as db:
        dumped = "\n".join(db.iterdump())
    assert USER_PASSWORD not in dumped and stored in dumped
    status, listed, _ = call(console_harness, "GET", "/api/users", headers=BEARER)
    assert status == 200
    assert [u["name"] for u in listed] == ["alice"] and "password_hash" not in listed[0]


def test_sign_in_with_the_token_and_with_a_user_and_a_wrong_password_is_a_401_page(console_harness):
    assert sign_in(console_harness, "admin", ADMIN_TOKEN)[0] == 303
    add_user(console_harness, "alice")
    assert sign_in(console_harness, "alice", USER_PASSWORD)[0] == 303
    status, body, _ = call(console_harness, "POST", "/signin", form={"name": "alice", "password": "wrong" * 3})
    assert status == 401 and 'id="signin-error"' in body and "wrong user name or password" in body
    assert sign_in(console_harness, "nobody", USER_PASSWORD)[0] == 401


def test_a_sixth_try_on_one_account_is_refused_even_with_the_right_password(console_harness):
    add_user(console_harness, "alice")
    add_user(console_harness, "bob")
    for _ in range(5):
        assert sign_in(console_harness, "alice", "not the password")[0] == 401
    status, headers = sign_in(console_harness, "alice", USER_PASSWORD)
    assert status == 429 and int(headers["Retry-After"]) > 0
    assert sign_in(console_harness, "ALICE", USER_PASSWORD)[0] == 429  # the name's case is no way around it
    # Another account, from another address, is not held up by alice's failures.
    assert sign_in(console_harness, "bob", USER_PASSWORD, source="127.0.0.2")[0] == 303


def test_one_address_is_limited_across_accounts_and_others_are_not(console_harness):
    add_user(console_harness, "alice")
    for n in range(20):  # each name fails once: the per-account limit is never reached
        assert sign_in(console_harness, f"guess{n}", "not the password", source="127.0.0.3")[0] == 401
    assert sign_in(console_harness, "alice", USER_PASSWORD, source="127.0.0.3")[0] == 429
    assert sign_in(console_harness, "alice", USER_PASSWORD, source="127.0.0.4")[0] == 303


def test_the_session_cookie_is_httponly_and_samesite_strict(tmp_path):
    # Secure under TLS: test_accounts_tls.py signs in on a real `serve --tls-cert`.
    harness = ConsoleHarness(tmp_path)
    try:
        status, headers = sign_in(harness, "admin", ADMIN_TOKEN)
        assert status == 303
        cookie = headers["Set-Cookie"]
        attributes = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")}
        assert cookie.startswith("imager_session=") and "httponly" in attributes
        assert attributes["samesite"] == "SameSite=Strict" and attributes["path"] == "Path=/"
        assert "secure" not in attributes  # plain HTTP: a Secure cookie would never come back
    finally:
        harness.close()


def test_under_tls_a_sign_in_over_plain_http_is_refused(tmp_path):
    # The app `serve --tls-cert` makes: a password must not cross in clear (tls.https_only_api).
    harness = ConsoleHarness(tmp_path)
    try:
        harness.run(harness.client.close())
        harness.app = make_app(harness.store, dataclasses.replace(
            harness.config, tls=TlsConfig(8443, "sha256:" + "0" * 64)))
        harness.client = TestClient(TestServer(harness.app, host="127.0.0.1"), loop=harness.loop)
        harness.run(harness.client.start_server())
        status, headers = sign_in(harness, "admin", ADMIN_TOKEN)
        assert status == 403 and "Set-Cookie" not in headers
        assert harness.store.accounts.audit_page()[1] == 0  # not even tried
    finally:
        harness.close()


def test_an_expired_session_is_sent_to_sign_in(console):
    assert console.get("/settings").status == 200
    with console.store.db.transaction():
        console.store.db.execute("UPDATE web_sessions SET expires = ?", time.time() - 1)
    page = console.get("/settings")
    assert page.status == 302 and page.location in ("/signin?next=/settings", "/signin?next=%2Fsettings")


def test_sign_out_ends_the_session_on_the_server(console_harness, console):
    kept = session_cookie(console)
    assert console.post("/signout").status == 303
    status, _, headers = call(console_harness, "GET", "/settings", cookies=kept)
    assert status == 302 and headers["Location"].startswith("/signin")
    status, body, _ = call(console_harness, "GET", "/api/users", cookies=kept)
    assert status == 401, body


def test_a_new_password_signs_the_user_out_everywhere(console_harness):
    first = console_harness.user("alice", "technician")
    second = console_harness.browser()
    second.sign_in("alice", USER_PASSWORD)
    assert first.get("/").status == 200 and second.get("/").status == 200
    status, body, _ = call(console_harness, "POST", "/api/users/alice", json={"password": "a brand new secret"},
                           headers=BEARER)
    assert status == 200, body
    assert first.get("/").status == 302 and second.get("/").status == 302
    assert sign_in(console_harness, "alice", USER_PASSWORD)[0] == 401
    assert sign_in(console_harness, "alice", "a brand new secret")[0] == 303


def test_a_technician_cannot_administer_but_queues_and_cancels_tasks(console_harness, technician):
    console_harness.store.add_host("52:54:00:00:00:01", "pc1")
    assert technician.get("/settings").status == 403 and technician.get("/audit").status == 403
    cookies, csrf = session_cookie(technician), {"X-CSRF-Token": technician.csrf}
    for method, path, body in [("GET", "/api/users", None), ("POST", "/api/users", {"name": "x"}),
                               ("DELETE", "/api/hosts/pc1", None), ("GET", "/api/audit", None)]:
        status, answer, _ = call(console_harness, method, path, json=body, cookies=cookies, headers=csrf)
        assert status == 403 and answer["code"] == "forbidden", (path, answer)
    assert console_harness.store.host("pc1") and console_harness.store.accounts.users()[0]["name"] == "tech"
    assert technician.post("/settings/users", {"name": "x", "role": "admin", "password": USER_PASSWORD,
                                               "password_again": USER_PASSWORD}).status == 403
    status, task, _ = call(console_harness, "POST", "/api/tasks", json={"type": "inventory", "host": "pc1"},
                           cookies=cookies, headers=csrf)
    assert status == 201, task
    status, _, _ = call(console_harness, "POST", f"/api/tasks/{task['id']}/cancel", cookies=cookies, headers=csrf)
    assert status == 200 and console_harness.store.task(task["id"])["state"] == "canceled"


def test_a_session_post_without_its_anti_forgery_token_is_refused_and_changes_nothing(console_harness, console):
    console_harness.store.add_host("52:54:00:00:00:01", "pc1")
    task = console_harness.store.add_task("pc1", "inventory", None)
    cookies = session_cookie(console)
    for headers in (None, {"X-CSRF-Token": "forged"}):
        status, answer, _ = call(console_harness, "POST", f"/api/tasks/{task['id']}/cancel", cookies=cookies,
                                 headers=headers)
        assert status == 403 and answer["code"] == "forbidden"
    assert console_harness.store.task(task["id"])["state"] == "queued"
    page = console.post("/settings/users", {"name": "eve", "role": "admin", "password": USER_PASSWORD,
                                            "password_again": USER_PASSWORD}, csrf=False)
    assert page.status == 403 and console_harness.store.accounts.users() == []


def test_every_admin_action_is_in_the_audit_log_with_who_what_and_outcome(console_harness, console):
    add_user(console_harness, "alice", "admin")
    status, _, _ = call(console_harness, "POST", "/api/users", json={"name": "bob", "password": "short"},
                        headers=BEARER)
    assert status == 400
    alice = console_harness.browser()
    alice.sign_in("alice", USER_PASSWORD)
    assert alice.post("/settings/users/alice/role", {"role": "technician"}).status == 409  # the last admin
    assert alice.post("/settings/unknown-hosts", {"unknown_hosts": "local"}).status == 303
    status, page, _ = call(console_harness, "GET", "/api/audit?limit=10", headers=BEARER)
    assert status == 200
    entries = [(e["actor"], e["via"], e["action"], e["target"], e["outcome"]) for e in page["rows"]]
    assert entries[:6] == [
        ("alice", "session", "console: set unknown-host policy", "", "303"),
        ("alice", "session", "console: change user role", "alice", "409"),
        ("alice", "session", "sign in", "", "ok"),
        ("admin", "token", "POST /api/users", "bob", "400 invalid"),
        ("admin", "token", "POST /api/users", "alice", "201"),
        ("admin", "session", "sign in", "", "ok"),
    ]
    assert all(e["time"] > time.time() - 60 and e["address"] == "127.0.0.1" for e in page["rows"])
    status, mine, _ = call(console_harness, "GET", "/api/audit?actor=alice", headers=BEARER)
    assert mine["total"] == 3 and {e["actor"] for e in mine["rows"]} == {"alice"}
    for query in ("limit=0", "limit=501", "offset=-1", "limit=x"):
        assert call(console_harness, "GET", f"/api/audit?{query}", headers=BEARER)[0] == 400


def test_the_last_admin_cannot_be_removed_or_demoted(console_harness):
    add_user(console_harness, "alice", "admin")
    add_user(console_harness, "tech")
    for method, body in (("DELETE", None), ("POST", {"role": "technician"})):
        status, answer, _ = call(console_harness, method, "/api/users/alice", json=body, headers=BEARER)
        assert status == 409 and "last admin" in answer["error"]
    assert console_harness.store.accounts.user("alice")["role"] == "admin"
    add_user(console_harness, "carol", "admin")
    assert call(console_harness, "DELETE", "/api/users/alice", headers=BEARER)[0] == 200
    assert [u["name"] for u in console_harness.store.accounts.users()] == ["carol", "tech"]


def test_bad_user_input_is_a_4xx_naming_the_field(console_harness):
    cases = [({"name": "bad name", "password": USER_PASSWORD}, 400, "name"),
             ({"name": "Admin", "password": USER_PASSWORD}, 400, "name"),
             ({"name": "bob", "password": USER_PASSWORD, "role": "root"}, 400, "role"),
             ({"name": "bob", "password": "short"}, 400, "password")]
    for body, code, field in cases:
        status, answer, _ = call(console_harness, "POST", "/api/users", json=body, headers=BEARER)
        assert (status, answer["details"]["field"]) == (code, field), answer
    add_user(console_harness, "bob")
    status, answer, _ = call(console_harness, "POST", "/api/users", json={"name": "BOB", "password": USER_PASSWORD},
                             headers=BEARER)
    assert status == 409 and answer["details"]["field"] == "name"
    assert call(console_harness, "POST", "/api/users/nobody", json={"role": "admin"}, headers=BEARER)[0] == 404
    assert call(console_harness, "POST", "/api/users/bob", json={}, headers=BEARER)[0] == 400
    assert call(console_harness, "POST", "/api/users/bob", json={"role": 3}, headers=BEARER)[0] == 400
    assert call(console_harness, "DELETE", "/api/users/nobody", headers=BEARER)[0] == 404
