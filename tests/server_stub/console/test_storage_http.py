"""The Storage page's HTTP transport (issue 17): a node added or edited with its http_url, the list saying how
deploys read it, a bad URL refused next to its field with what was typed kept."""
from __future__ import annotations

from typing import Any


def test_add_and_edit_a_nodes_http_transport(console: Any, tmp_path: Any) -> None:
    done = console.post("/storage/nodes", {"name": "web", "export": "10.0.0.9:/img", "rsync_target": str(tmp_path),
                                           "http_url": "server"})
    assert done.status == 303 and console.store.storage("web")["http_url"] == "server"
    console.post("/storage/nodes", {"name": "nfs", "export": "10.0.0.8:/img"})
    rows = {row[0]: row for row in console.get("/storage").by_id("storage-nodes").rows()}
    assert rows["web"][8] == "HTTP (this server)" and rows["nfs"][8] == "NFS"
    bad = console.post("/storage/nodes", {"name": "n3", "export": "10.0.0.9:/img", "http_url": "ftp://x/"})
    assert bad.status == 400 and "not an HTTP transport" in bad.by_id("add-node-form-http_url-error").text
    assert bad.form("add-node-form").form_values()["http_url"] == "ftp://x/"
    form = console.get("/storage/nodes/web").form("edit-node-form").form_values()
    assert form["http_url"] == "server"
    bad = console.post("/storage/nodes/web", {**form, "http_url": "http://user@host/"})
    assert bad.status == 400 and "not an HTTP transport" in bad.by_id("edit-node-http_url-error").text
    done = console.post("/storage/nodes/web", {**form, "http_url": "http://10.0.0.9/images"})
    assert done.status == 303 and console.store.storage("web")["http_url"] == "http://10.0.0.9/images/"
    rows = {row[0]: row for row in console.get("/storage").by_id("storage-nodes").rows()}
    assert rows["web"][8] == "HTTP http://10.0.0.9/images/"
    done = console.post("/storage/nodes/web", {**form, "http_url": ""})
    assert done.status == 303 and console.store.storage("web")["http_url"] is None
