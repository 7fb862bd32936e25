"""``imager-server image add|set --format`` (issue 17) against a real server: the format in ``image list`` and in
the record, changed field by field, a bad one refused by argparse and a refused change said without a traceback;
``multicast start`` of a chunked image says why it cannot."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from server_stub.store import Store
from tests.server_stub.cliproc import cli
from tests.server_stub.conftest import server, server_args  # noqa: F401
from tests.server_stub.test_api_image_format import chunked_version


def test_image_format_add_set_list_show(server: dict[str, Any], tmp_path: Path) -> None:  # noqa: F811
    assert cli(server, "storage", "add", "nas", "10.0.0.1:/images").returncode == 0
    added = cli(server, "image", "add", "inc", "--storage", "nas", "--format", "stream")
    assert added.returncode == 0, added.stderr
    assert any(line.split() == ["format:", "stream"] for line in added.stdout.splitlines()), added.stdout
    assert cli(server, "image", "add", "lab", "--storage", "nas").returncode == 0
    listed = cli(server, "image", "list").stdout.splitlines()
    header = listed[0].split()
    rows = {line.split()[1]: line.split() for line in listed[1:]}
    assert header[2:4] == ["TYPE", "FORMAT"] and rows["inc"][3] == "stream" and rows["lab"][3] == "chunked"
    changed = cli(server, "--json", "image", "set", "lab", "--format", "stream", "--description", "room 2")
    assert changed.returncode == 0, changed.stderr
    image = json.loads(changed.stdout)
    assert (image["format"], image["type"], image["description"]) == ("stream", "resizable", "room 2")
    kept = json.loads(cli(server, "--json", "image", "set", "lab", "--type", "multipart").stdout)
    assert (kept["format"], kept["type"], kept["description"]) == ("stream", "multipart", "room 2")
    shown = cli(server, "image", "show", "lab")
    assert shown.returncode == 0 and any(line.split() == ["format:", "stream"] for line in shown.stdout.splitlines())
    bad = cli(server, "image", "set", "lab", "--format", "casync")
    assert bad.returncode == 2 and "invalid choice: 'casync'" in bad.stderr
    missing = cli(server, "image", "set", "nothing", "--format", "stream")
    assert missing.returncode != 0 and "no image 'nothing'" in missing.stderr and "Traceback" not in missing.stderr


def test_multicast_start_of_a_chunked_image_is_refused(server: dict[str, Any],  # noqa: F811
                                                       tmp_path: Path) -> None:
    root = tmp_path / "node"
    root.mkdir()
    assert cli(server, "storage", "add", "nas", "10.0.0.1:/images", "--rsync-target", str(root)).returncode == 0
    assert cli(server, "image", "add", "inc", "--storage", "nas", "--format", "chunked").returncode == 0
    assert cli(server, "host", "add", "52:54:00:00:00:01", "pc1").returncode == 0
    chunked_version(root, "inc")
    store = Store(str(server["data"] / "imager.sqlite3"))  # a capture's end, without running one
    store.db.execute("UPDATE images SET captured = ?", time.time())
    store.close()
    refused = cli(server, "multicast", "start", "inc", "--hosts", "pc1", "--interface", "lo", "--no-wake")
    assert refused.returncode != 0 and "d1p1.cidx is too short to be a chunk index" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert json.loads(cli(server, "--json", "multicast", "list").stdout) == []
