"""An image's format on the console (issue 17): chosen in the add form, shown in the list and on the image's
page, changed in the image's edit form (admins only); a multicast of a chunked image is refused next to the
image field, with the reason."""
from __future__ import annotations

import time
from pathlib import Path

from tests.server_stub.console.conftest import Browser
from tests.server_stub.console.test_multicast import start
from tests.server_stub.test_api_image_format import chunked_version


def test_add_with_a_format_and_see_it(console: Browser) -> None:
    console.store.add_storage("a", "10.0.0.1:/images")
    form = console.get("/images").form("add-image-form").form_values()
    assert form["format"] == "chunked"  # the default
    done = console.post("/images", {**form, "name": "inc", "format": "stream"})
    assert done.status == 303 and console.store.image("inc")["format"] == "stream"
    row = console.get("/images").by_id("images-table").rows()[0]
    assert row[:3] == ["inc", "resizable", "stream"]
    console.post("/images", {**form, "name": "inc2"})
    page = console.get("/images/inc2")
    assert page.by_id("image-format").text.startswith("chunked (chunks shared by its versions")
    bad = console.post("/images", {**form, "name": "x", "format": "rar"})
    assert bad.status == 400 and "'rar'" in bad.by_id("add-image-format-error").text
    assert [i["name"] for i in console.store.images()] == ["inc", "inc2"]


def test_edit_form_changes_format_type_and_description(console: Browser) -> None:
    console.store.add_storage("a", "10.0.0.1:/images")
    console.store.add_image("lab", group="default", description="room 1")
    form = console.get("/images/lab").form("edit-image-form").form_values()
    assert (form["format"], form["type"], form["description"]) == ("chunked", "resizable", "room 1")
    done = console.post("/images/lab/edit", {**form, "format": "stream", "description": "room 2"})
    assert done.status == 303 and done.notice == "Image lab saved; its next capture is resizable, stream."
    image = console.store.image("lab")
    assert (image["format"], image["type"], image["description"]) == ("stream", "resizable", "room 2")
    refused = console.post("/images/lab/edit", {**form, "format": "tar"})
    assert refused.status == 400 and "image format 'tar'" in refused.by_id("image-error").text
    assert console.store.image("lab")["format"] == "stream"
    assert console.post("/images/nothing/edit", form).status == 404
    entries, _ = console.store.accounts.audit_page()
    assert ("console: edit image", "lab", "303") in [(e["action"], e["target"], e["outcome"]) for e in entries]


def test_a_technician_sees_the_format_but_cannot_edit(console: Browser, technician: Browser) -> None:
    console.store.add_storage("a", "10.0.0.1:/images")
    console.store.add_image("lab", group="default", format_="chunked")
    page = technician.get("/images/lab")
    assert page.by_id("image-format").text.startswith("chunked") and not page.doc.has_id("edit-image-form")
    assert technician.post("/images/lab/edit", {"format": "stream"}).status == 403
    assert console.store.image("lab")["format"] == "chunked"


def test_multicast_of_a_chunked_image_is_refused_next_to_the_image(console: Browser, tmp_path: Path) -> None:
    store = console.store
    root = tmp_path / "node"
    root.mkdir()
    store.add_storage("node", "10.0.0.1:/images", rsync_target=str(root))
    store.add_image("img", group="default", format_="chunked")
    store.db.execute("UPDATE images SET captured = ?", time.time())
    chunked_version(root, "img")
    for i in range(2):
        store.add_host(f"52:54:00:00:00:0{i}", f"pc{i}")
    refused = start(console)
    assert refused.status == 400
    assert "d1p1.cidx is too short to be a chunk index" in refused.by_id("start-session-image-error").text
    assert store.sessions() == [] and store.tasks() == []
