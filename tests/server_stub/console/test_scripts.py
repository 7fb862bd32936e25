"""The Post-deploy scripts page: list with SHA-256 and attachments, upload (a file or pasted text), attach to an
image or a host group, detach, delete (admin only, audited); refusals next to the field, never a 500."""
import hashlib
import html

import aiohttp


SCRIPT = "#!/bin/sh\n: > \"${IMAGER_MOUNTS#*=}/etc/machine-id\"\n"


def upload_file(browser, name: str, data: bytes, filename: str = "reset.sh"):
    form = aiohttp.FormData()
    form.add_field("csrf", browser.csrf)
    form.add_field("name", name)
    form.add_field("description", "resets the machine-id")
    form.add_field("file", data, filename=filename, content_type="application/octet-stream")
    form.add_field("content", "")
    return browser.request("POST", "/scripts", data=form)


def with_image(store):
    store.add_storage("main", "10.0.0.1:/images")
    store.add_image("deb12", "main")
    store.add_host("52:54:00:00:00:01", "pc1")
    store.edit_host("pc1", {"group": "lab3"})


def test_empty_page_says_what_to_do(console):
    page = console.get("/scripts")
    assert page.status == 200 and "No post-deploy script yet" in page.by_id("main").text
    assert page.doc.has_id("add-script-form") and not page.doc.has_id("attach-form")


def test_upload_a_file_and_pasted_text_attach_detach_delete(console):
    with_image(console.store)
    done = upload_file(console, "machine-id-reset", SCRIPT.encode())
    assert done.status == 303, done.text[:500]
    digest = hashlib.sha256(SCRIPT.encode()).hexdigest()
    assert done.notice == f"Script machine-id-reset added (SHA-256 {digest[:16]}…)."
    pasted = console.post("/scripts", {"name": "hello", "content": "echo hello\r\n"})
    assert pasted.status == 303 and console.store.scripts_repo.script_detail("hello")["content"] == "echo hello\n"
    attached = console.post("/scripts/attach", {"script": "machine-id-reset", "target": "image", "image": "deb12",
                                                "group": "", "order": "2", "timeout": "60", "policy": "warn"})
    assert attached.status == 303 and attached.notice == "Script machine-id-reset runs after deploys of image deb12."
    grouped = console.post("/scripts/attach", {"script": "hello", "target": "group", "image": "", "group": "lab3",
                                               "order": "0", "timeout": "300", "policy": "fail"})
    assert grouped.status == 303
    page = console.get("/scripts")
    rows = {row[0]: row for row in page.by_id("scripts").rows()}
    assert rows["machine-id-reset"][3] == digest[:16] + "…"
    assert "image deb12 (order 2, 60 s, warn)" in rows["machine-id-reset"][4]
    assert "host group lab3 (order 0, 300 s, fail)" in rows["hello"][4]
    shown = console.get("/scripts/machine-id-reset")
    assert "".join(shown.by_id("script-sha256").text.split()) == digest and f">{SCRIPT}</pre>" in html.unescape(shown.text)
    attachment = console.store.scripts_repo.attachments(script="hello")[0]
    detached = console.post("/scripts/hello/detach", page.form(f"detach-{attachment['id']}").form_values())
    assert detached.status == 303 and console.store.scripts_repo.attachments(script="hello") == []
    removed = console.post("/scripts/machine-id-reset/remove")
    assert removed.status == 303 and [s["name"] for s in console.store.scripts_repo.scripts()] == ["hello"]
    entries, _ = console.store.accounts.audit_page()
    actions = [(e["action"], e["target"], e["outcome"]) for e in entries]
    assert ("console: add script", "machine-id-reset", "303") in actions
    assert ("console: attach script", "machine-id-reset → deb12", "303") in actions
    assert ("console: delete script", "machine-id-reset", "303") in actions


def test_refusals_are_shown_next_to_their_field(console):
    with_image(console.store)
    binary = upload_file(console, "tool", b"\xff\xfe\x00binary", filename="tool.exe")
    assert binary.status == 400 and "not UTF-8 text" in binary.by_id("add-script-form-file-error").text
    assert binary.by_id("add-script-name").get("value") == "tool"  # kept as typed
    empty = console.post("/scripts", {"name": "x", "content": "   "})
    assert empty.status == 400 and "empty" in empty.by_id("add-script-form-file-error").text
    bad_name = console.post("/scripts", {"name": "a b", "content": "echo\n"})
    assert bad_name.status == 400 and "script name" in bad_name.by_id("add-script-form-name-error").text
    console.post("/scripts", {"name": "ok", "content": "echo\n"})
    for fields, field, said in [({"target": "image", "image": ""}, "image", "choose an image"),
                                ({"target": "image", "image": "deb12", "timeout": "0"}, "timeout", "1-3600"),
                                ({"target": "image", "image": "deb12", "timeout": "x"}, "timeout", "whole number"),
                                ({"target": "group", "group": "a b"}, "group", "group name")]:
        page = console.post("/scripts/attach", {"script": "ok", "order": "0", "policy": "fail", **fields})
        assert page.status == 400 and said in page.by_id(f"attach-form-{field}-error").text, (fields, page.text[:300])
    gone = console.post("/scripts/nope/remove")
    assert gone.status == 404 and "no script" in gone.text


def test_a_technician_sees_scripts_but_cannot_change_them(console):
    console.post("/scripts", {"name": "ok", "content": "echo\n"})
    tech = console.user("tech1", "technician")
    page = tech.get("/scripts")
    assert page.status == 200 and "ok" in page.by_id("scripts").text
    assert not page.doc.has_id("add-script-form") and not page.doc.has_id("remove-script-ok")
    assert tech.post("/scripts", {"name": "mine", "content": "echo\n"}).status == 403
    assert tech.post("/scripts/ok/remove").status == 403
    assert [s["name"] for s in console.store.scripts_repo.scripts()] == ["ok"]
