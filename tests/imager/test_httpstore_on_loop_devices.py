"""Deploys over HTTP (issue 17) with the real tools on loop devices, from web servers on loopback: Python's
http.server (an ordinary web server, no byte ranges), a ranged server that drops a connection mid-stream, and
the imager server's own route. Each deploy equals the deploy from the image directory (NFS's path) file by file
and table by table; a flipped byte fails on SHA-256 with the disk left blank; a 404 or a wrong size is a clear
error before anything is written."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import requests

from imager import httpstore, imagestore
from imager.api import Backoff, TaskClient
from imager.errors import ChecksumMismatch, ImageNotFound, InvalidImage
from imager.ops.capture import capture_image
from imager.ops.context import OpContext
from imager.ops.deploy import deploy, deploy_image
from imager.progress import Progress
from tests.disktools import attached, file_sha256
from tests.imager.ops.test_capture_deploy_on_loop_devices import blank, make_disk
from tests.imager.webservers import flip_byte, python_http_server, ranged_server
from tests.qemu.lab import read_disk
from tests.server_stub.conftest import server, server_args  # noqa: F401
from tests.server_stub.test_api import token_of

pytestmark = pytest.mark.root
MiB = 1024 * 1024
QUICK = Backoff(attempts=4, base_delay=0.05, max_delay=0.2)
MAC = "52:54:00:00:00:17"
Captured = tuple[Path, Path]  # the store holding image 'img', the source disk's file


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A two-partition GPT disk captured once as image 'img' (resizable): (store, the source disk's file)."""
    work = tmp_path_factory.mktemp("http")
    make_disk(work / "source.img", "gpt")
    (work / "store").mkdir()
    with attached(work / "source.img") as source:
        capture_image(source, str(work / "store"), "img", Progress())
    return work / "store", work / "source.img"


def store_copy(captured: Captured, tmp_path: Path) -> Path:
    """A copy of the captured store a test may damage (the link to the version kept as a link)."""
    copy = tmp_path / "store"
    shutil.copytree(captured[0], copy, symlinks=True)
    return copy


def over_http(url: str, target: Path, **remote: int) -> dict[str, Any]:
    """Deploy image 'img' from ``url`` (the store's root on a web server) onto ``target``, as the op does."""
    with attached(target) as device:
        ctx = OpContext({"type": "deploy", "image": {"name": "img"}, "disk": device,
                         "storage": {"export": "", "transport": "http", "url": url + "img/"}})
        if not remote:
            return deploy(ctx)
        image = httpstore.Remote(url + "img/", requests.Session(), backoff=QUICK, **remote)
        with tempfile.TemporaryDirectory() as local:
            return deploy_image(local, device, Progress(), remote=httpstore.fetch_image(image, local))


def nfs_reference(captured: Captured, tmp_path: Path) -> tuple[str, dict[str, dict[str, str]]]:
    """The same image deployed from its directory, as over NFS: (table, files)."""
    target = blank(tmp_path / "nfs.img", 200)
    with attached(target) as device:
        deploy_image(imagestore.resolve(str(captured[0]), "img"), device, Progress())
    return read_disk(target)


def strip_lba(table: str) -> list[str]:
    return [line for line in table.splitlines() if not line.startswith("last-lba")]


def is_blank(target: Path) -> bool:
    with attached(target) as device:
        dump = subprocess.run(["sfdisk", "--dump", device], capture_output=True, text=True)
    return dump.returncode != 0 and "does not contain a recognized partition table" in dump.stderr


def test_a_deploy_from_an_ordinary_web_server_equals_the_nfs_deploy(captured: Captured, tmp_path: Path) -> None:
    """python3 -m http.server: no Accept-Ranges, so one plain GET a stream; same disk as from the directory."""
    table, files = nfs_reference(captured, tmp_path)
    target = blank(tmp_path / "http.img", 200)
    with python_http_server(captured[0]) as url:
        result = over_http(url, target)
    assert result["partitions"] == 2 and result["image"] == "img"
    table_http, files_http = read_disk(target)
    assert files_http == files and files["2"]  # every file of both filesystems, by SHA-256
    assert strip_lba(table_http) == strip_lba(table)


def test_parallel_range_requests_deliver_the_stream_in_order(captured: Captured, tmp_path: Path) -> None:
    """1 MiB segments, 4 in flight: many ranges a stream, reassembled in order (SHA-256 and the files agree)."""
    _, files = nfs_reference(captured, tmp_path)
    target = blank(tmp_path / "http.img", 200)
    with ranged_server(captured[0]) as web:
        over_http(web.url, target, segment=MiB, parallel=4)
    stream_ranges = [r or "" for name, r in web.ranges if name == "d1p2.pcl.zst"]
    assert len(stream_ranges) >= 3 and all(r and r.startswith("bytes=") for r in stream_ranges)
    assert sorted(int(r.split("=")[1].split("-")[0]) for r in stream_ranges) == \
        [i * MiB for i in range(len(stream_ranges))]
    assert read_disk(target)[1] == files


def test_a_connection_cut_mid_stream_resumes_with_a_range_request(captured: Captured, tmp_path: Path) -> None:
    _, files = nfs_reference(captured, tmp_path)
    target = blank(tmp_path / "http.img", 200)
    size = (captured[0] / "img" / "d1p2.pcl.zst").stat().st_size
    with ranged_server(captured[0]) as web:
        web.cut["d1p2.pcl.zst"] = 300_000  # the first GET of this stream dies after 300,000 bytes of its body
        over_http(web.url, target, segment=64 * MiB, parallel=1)
    asked = [r for name, r in web.ranges if name == "d1p2.pcl.zst"]
    assert asked == [f"bytes=0-{size - 1}", f"bytes=300000-{size - 1}"]  # resumed at the byte after the last one
    assert read_disk(target)[1] == files


def test_a_flipped_byte_fails_on_sha256_and_leaves_the_disk_blank(captured: Captured, tmp_path: Path) -> None:
    store = store_copy(captured, tmp_path)
    stream = store / "img" / "d1p2.pcl.zst"
    flip_byte(stream, stream.stat().st_size // 2)  # same size: only the SHA-256 can tell
    target = blank(tmp_path / "http.img", 200)
    # zstd's frame checksum or the manifest's SHA-256, whichever ends first (both at the stream's end)
    with ranged_server(store) as web, pytest.raises(InvalidImage, match="d1p2.pcl.zst.*(SHA-256|checksum)"):
        over_http(web.url, target, segment=MiB, parallel=2)
    assert is_blank(target)  # p1 was restored, p2 failed: no table left that looks whole


def test_another_valid_stream_fails_on_the_manifests_sha256(captured: Captured, tmp_path: Path) -> None:
    """The web server holds another capture's stream of the same size: zstd finds nothing, the SHA-256 does."""
    store = store_copy(captured, tmp_path)
    manifest = store / "img" / "manifest.json"
    listed = json.loads(manifest.read_text())
    listed["files"]["d1p2.pcl.zst"]["sha256"] = hashlib.sha256(b"another capture").hexdigest()
    manifest.write_text(json.dumps(listed))
    target = blank(tmp_path / "http.img", 200)
    with ranged_server(store) as web, pytest.raises(ChecksumMismatch, match="d1p2.pcl.zst: SHA-256") as info:
        over_http(web.url, target, segment=MiB, parallel=2)
    assert info.value.code == "checksum_mismatch"
    assert is_blank(target)


@pytest.mark.parametrize("damage, error, said", [
    ("remove", ImageNotFound, r"d1p1.pcl.zst: HTTP 404"),
    ("append", InvalidImage, r"^http://127.0.0.1:\d+/img/d1p1.pcl.zst is \d+ bytes, the manifest says \d+$"),
])
def test_a_missing_or_resized_file_is_a_clear_error_before_any_write(captured: Captured, tmp_path: Path, damage: str,
                                                                    error: type[Exception], said: str) -> None:
    store = store_copy(captured, tmp_path)
    stream = store / "img" / "d1p1.pcl.zst"
    if damage == "remove":
        stream.unlink()
    else:
        with open(stream, "ab") as f:
            f.write(b"\0")
    target = blank(tmp_path / "http.img", 200)
    with open(target, "r+b") as f:
        f.write(b"keep me" * 1000)
    before = file_sha256(target)
    with python_http_server(store) as url, pytest.raises(error, match=said):
        over_http(url, target)
    assert file_sha256(target) == before


def admin(server: dict[str, Any], method: str, path: str, **body: Any) -> Any:
    answer = requests.request(method, server["url"] + path, json=body or None, headers=server["admin"], timeout=10)
    assert answer.status_code < 300, answer.text
    return answer.json()


def test_a_deploy_from_the_imager_servers_route_with_its_task_token(captured: Captured,  # noqa: F811
                                                                    server: dict[str, Any], tmp_path: Path) -> None:
    """A node with http_url 'server': the checkin says http and a path pinned to the published version; the
    deploy reads it with the task token; without the token, or outside the image, nothing is served."""
    _, files = nfs_reference(captured, tmp_path)
    admin(server, "POST", "/api/storage", name="web", export="10.0.0.1:/images", rsync_target=str(captured[0]),
          http_url="server")
    admin(server, "POST", "/api/hosts", mac=MAC, name="pc17")
    admin(server, "POST", "/api/images", name="img", storage="web")
    for kind in ("capture", "deploy"):  # the capture reported done (the files are there), then the deploy
        queued = admin(server, "POST", "/api/tasks", host="pc17", type=kind, image="img")
        client = TaskClient(server["url"], queued["id"], token_of(server, MAC), attempts=2, base_delay=0.1)
        task = client.checkin()
        if kind == "capture":
            client.done({"image": "img"})
    version = (captured[0] / "img").readlink().name
    assert task["storage"] is not None
    assert task["storage"]["transport"] == "http"
    assert task["storage"]["url"] == f"/api/tasks/{task['id']}/image/{version}/"
    file_url = server["url"] + task["storage"]["url"] + "d1p1.pcl.zst"
    assert requests.get(file_url, timeout=5).status_code == 401  # no token
    token = {"Authorization": client.session.headers["Authorization"]}
    part = requests.get(file_url, headers={**token, "Range": "bytes=10-19"}, timeout=5)
    assert part.status_code == 206 and part.content == (captured[0] / "img" / "d1p1.pcl.zst").read_bytes()[10:20]
    (captured[0] / "outside.txt").write_text("not an image file")
    (captured[0] / "img" / "link.txt").symlink_to("../../outside.txt")  # a link in the version's directory
    try:
        for outside in ("..%2F..%2Foutside.txt", "link.txt", ".hidden", "nothere.zst"):
            assert requests.get(server["url"] + task["storage"]["url"] + outside, headers=token,
                                timeout=5).status_code == 404, outside
    finally:
        (captured[0] / "img" / "link.txt").unlink()
    target = blank(tmp_path / "http.img", 200)
    with attached(target) as device:
        task["disk"] = device
        result = deploy(OpContext(task, Progress(), client, None))
    assert result["partitions"] == 2
    assert read_disk(target)[1] == files
