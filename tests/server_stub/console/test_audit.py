"""The Audit log page (admins only): newest first, paged, filtered by who, times for the browser's clock."""
import re

from tests.server_stub.console.conftest import USER_PASSWORD


def log(store, n, actor="alice"):
    for i in range(n):
        store.accounts.audit(actor, "admin", "session", "console: add user", f"user{i}", "303", "127.0.0.9")


def test_newest_first_with_local_times_and_pages(console):
    log(console.store, 60)  # + the admin's own sign-in: 61
    page = console.get("/audit")
    assert page.status == 200
    rows = page.by_id("audit-table").rows()
    assert len(rows) == 50 and rows[0][3] == "user59" and rows[0][1] == "alice (admin, session)"
    time_ = page.by_id("audit-table").find("time")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", time_.get("datetime"))
    assert "1–50 of 61" in page.by_id("audit-pager").text and not page.doc.has_id("audit-newer")
    older = console.get(page.by_id("audit-older").get("href"))
    rows = older.by_id("audit-table").rows()
    assert len(rows) == 11 and rows[0][3] == "user9" and rows[-1][2] == "sign in"
    assert older.doc.has_id("audit-newer") and not older.doc.has_id("audit-older")


def test_filter_by_actor_and_empty_states(console):
    log(console.store, 3, "alice")
    log(console.store, 2, "bob")
    page = console.get("/audit", {"actor": "bob"})
    assert [row[1] for row in page.by_id("audit-table").rows()] == ["bob (admin, session)"] * 2
    assert page.by_id("audit-filter").form_values()["actor"] == "bob"
    none = console.get("/audit", {"actor": "nobody"})
    assert none.status == 200 and "No entries by nobody" in none.by_id("audit-empty").text
    bad = console.get("/audit", {"offset": "-5"})
    assert bad.status == 400 and bad.by_id("audit-error")


def test_a_console_action_appears_with_who_and_outcome(console_harness, console):
    alice = console_harness.user("alice", "admin")
    assert alice.post("/settings/users", {"name": "bob", "role": "technician", "password": USER_PASSWORD,
                                          "password_again": USER_PASSWORD}).status == 303
    first = console.get("/audit").by_id("audit-table").rows()[0]
    assert first[1:5] == ["alice (admin, session)", "console: add user", "bob", "303"]


def test_technicians_do_not_see_the_audit_log(technician):
    assert technician.get("/audit").status == 403
