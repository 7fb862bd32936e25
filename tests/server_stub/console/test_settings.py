"""The Settings page (admins only): technician password, unknown-host policy, users; each form refused with
the message next to its field (status 400/404/409) and what was typed kept, never a password."""
from server_stub.store.menu import password_matches
from tests.server_stub.console.conftest import USER_PASSWORD

NEW = "another good secret"


def add(console, name, role="technician", password=USER_PASSWORD, again=None):
    return console.post("/settings/users", {"name": name, "role": role, "password": password,
                                            "password_again": password if again is None else again})


def test_technician_password_set_refused_next_to_the_field_and_removed(console):
    page = console.get("/settings")
    assert page.status == 200 and "None is set" in page.by_id("technician-password").text
    short = console.post("/settings/technician-password", {"password": "short"})
    assert short.status == 400 and "at least" in short.by_id("technician-password-password-error").text
    assert console.store.technician_password() is None
    done = console.post("/settings/technician-password", {"password": NEW})
    assert done.status == 303 and done.notice == "Technician password set."
    assert password_matches(console.store.technician_password(), NEW)
    assert console.get("/settings").doc.has_id("technician-password-remove-form")
    removed = console.post("/settings/technician-password", {"remove": "1"})
    assert removed.status == 303 and console.store.technician_password() is None


def test_unknown_host_policy_is_the_stored_setting(console):
    form = console.get("/settings").form("unknown-hosts-form")
    assert form.form_values()["unknown_hosts"] == "menu"
    done = console.post("/settings/unknown-hosts", {"unknown_hosts": "local"})
    assert done.status == 303 and console.store.unknown_hosts("menu") == "local"
    assert console.get("/settings").form("unknown-hosts-form").form_values()["unknown_hosts"] == "local"
    bad = console.post("/settings/unknown-hosts", {"unknown_hosts": "everything"})
    assert bad.status == 400 and "must be one of" in bad.by_id("unknown-hosts-unknown_hosts-error").text
    assert console.store.unknown_hosts("menu") == "local"


def test_add_users_with_roles_and_refusals_next_to_the_field(console):
    assert console.get("/settings").doc.has_id("users-empty")
    done = add(console, "alice", "admin")
    assert done.status == 303 and done.notice == "Added alice (admin)."
    assert console.store.accounts.password_hash("alice").startswith("$argon2id$")
    rows = console.get("/settings").by_id("users-table").rows()
    assert [row[:2] for row in rows] == [["alice", "admin"]]
    cases = [(dict(name="bad name"), "name", 400), (dict(name="alice"), "name", 409),
             (dict(name="bob", password="short"), "password", 400),
             (dict(name="bob", again="not the same at all"), "password_again", 400),
             (dict(name="bob", role="root"), "role", 400)]
    for args, field, status in cases:
        page = add(console, **args)
        assert page.status == status and page.by_id(f"user-add-{field}-error").text, (args, page.text[-800:])
        typed = page.form("user-add-form").form_values()
        assert typed["name"] == args["name"] and typed["password"] == ""  # kept, but never a password
    assert [u["name"] for u in console.store.accounts.users()] == ["alice"]


def test_change_password_role_and_remove(console_harness, console):
    add(console, "alice", "admin")
    bob = console_harness.user("bob", "technician")
    changed = console.post("/settings/users/bob/password", {"password": NEW, "password_again": NEW})
    assert changed.status == 303 and bob.get("/").status == 302  # signed out everywhere
    mismatch = console.post("/settings/users/bob/password", {"password": NEW, "password_again": NEW + "x"})
    assert mismatch.status == 400 and mismatch.by_id("user-bob-password-password_again-error")
    assert console.post("/settings/users/bob/role", {"role": "admin"}).status == 303
    assert console.store.accounts.user("bob")["role"] == "admin"
    removed = console.post("/settings/users/bob/remove")
    assert removed.status == 303 and removed.notice == "Removed bob."
    assert [u["name"] for u in console.store.accounts.users()] == ["alice"]
    # A stale page: bob is gone; the refusal is shown at the top, not a 500.
    stale = console.post("/settings/users/bob/remove")
    assert stale.status == 404 and "no user bob" in stale.by_id("settings-error").text


def test_the_last_admin_stays(console):
    add(console, "alice", "admin")
    demote = console.post("/settings/users/alice/role", {"role": "technician"})
    assert demote.status == 409 and "last admin" in demote.by_id("user-alice-role-role-error").text
    remove = console.post("/settings/users/alice/remove")
    assert remove.status == 409 and "last admin" in remove.by_id("user-alice-remove-form-error").text
    assert console.store.accounts.user("alice")["role"] == "admin"


def test_changing_ones_own_password_signs_out_and_the_new_one_signs_in(console_harness):
    alice = console_harness.user("alice", "admin")
    done = alice.post("/settings/users/alice/password", {"password": NEW, "password_again": NEW})
    assert done.status == 303 and done.location.startswith("/signin")
    assert alice.get("/settings").status == 302
    alice.sign_in("alice", NEW)
    assert alice.get("/settings").status == 200


def test_a_technician_sees_no_settings_and_changes_none(technician):
    page = technician.get("/settings")
    assert page.status == 403 and "admin role" in page.text
    refused = technician.post("/settings/unknown-hosts", {"unknown_hosts": "local"})
    assert refused.status == 403 and technician.store.unknown_hosts("menu") == "menu"
    assert technician.post("/settings/users/tech/role", {"role": "admin"}).status == 403
    assert technician.store.accounts.user("tech")["role"] == "technician"


def test_signed_out_visitors_are_sent_to_sign_in(anonymous):
    assert anonymous.get("/settings").status == 302
    assert anonymous.post("/settings/users", {"name": "x"}, csrf=False).status == 302
