"""``imager-server storage add|set --http-url`` (issue 17) against a real server: the node's transport shown in
``storage list`` and in its record, cleared with '', a bad URL refused with the reason and no traceback."""
from __future__ import annotations

import json
from typing import Any

from tests.server_stub.cliproc import cli
from tests.server_stub.conftest import server, server_args  # noqa: F401


def test_storage_http_url_add_set_clear_and_refusal(server: dict[str, Any]) -> None:  # noqa: F811
    added = cli(server, "storage", "add", "web", "10.0.0.1:/images", "--http-url", "http://10.0.0.1/images")
    assert added.returncode == 0, added.stderr
    assert "http_url" in added.stdout and "http://10.0.0.1/images/" in added.stdout
    listed = cli(server, "storage", "list")
    assert listed.returncode == 0 and listed.stdout.splitlines()[0].split()[-1] == "HTTP"
    assert "http://10.0.0.1/images/" in listed.stdout
    changed = cli(server, "--json", "storage", "set", "web", "--http-url", "server", "--rsync-target", "/srv/images")
    assert changed.returncode == 0 and json.loads(changed.stdout)["http_url"] == "server"
    cleared = cli(server, "--json", "storage", "set", "web", "--http-url", "")
    assert cleared.returncode == 0 and json.loads(cleared.stdout)["http_url"] is None
    refused = cli(server, "storage", "set", "web", "--http-url", "ftp://10.0.0.1/images/")
    assert refused.returncode != 0 and "is not an HTTP transport" in refused.stderr
    assert "Traceback" not in refused.stderr
