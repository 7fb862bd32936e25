"""A deploy over HTTP with no NFS server running (issue 17): the lab's node 'lab' has http_url 'server', so a
PXE-booted client fetches the image from imager-server's image route with its task token, and mounts nothing.

The image is captured on the host (loop devices) into the node's directory and its capture reported done through
the client API, so the only VM boot is the deploy's (≈ 40 s of VM time)."""
from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from imager.ops.capture import capture_image
from imager.progress import Progress
from tests.qemu.lab import Lab, attached, make_source_disk, read_disk

pytestmark = [pytest.mark.qemu, pytest.mark.root]

IMAGE = "web-image"
MAC_CAPTURER = "52:54:00:12:37:01"   # never boots: its capture task is reported done by hand
MAC_TARGET = "52:54:00:12:37:02"


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab(nfs=False) as lab:
        yield lab
    shutil.rmtree(lab.dir, ignore_errors=True)


def published_on_host(lab: Lab, source: Path) -> None:
    """The image captured on the host into the node's directory, and the server told, as a capture would."""
    with attached(source) as device:
        capture_image(device, str(lab.images), IMAGE, Progress())
    lab.cli("image", "add", IMAGE, "--storage", "lab")
    lab.cli("host", "add", MAC_CAPTURER, "capturer")
    task = lab.cli_json("task", "capture", "capturer", IMAGE)
    token = lab.task_token(MAC_CAPTURER)
    assert lab.client_call(task["id"], token, "checkin")["storage"]["transport"] == "nfs"  # captures: NFS
    lab.client_call(task["id"], token, "done", {"result": {"image": IMAGE}})


def test_a_client_deploys_over_http_with_no_nfs_server(lab: Lab) -> None:
    listening = lab.netns("ss", "-ltnH").stdout
    assert ":2049 " not in listening, "an NFS server listens in the lab"
    source = lab.dir / "source.img"
    written = make_source_disk(source, size_mib=256)
    published_on_host(lab, source)
    target = lab.dir / "target.img"
    with open(target, "wb") as f:
        f.truncate(384 * 1024 * 1024)  # larger: the resizable image's last partition grows
    lab.cli("host", "add", MAC_TARGET, "web-target")
    task = lab.cli_json("task", "deploy", "web-target", IMAGE)
    vm = lab.boot("web-target", MAC_TARGET, target)
    vm.wait_exit(300)
    done = lab.task(task["id"])
    assert done["state"] == "done", (done.get("error"), vm.console_text()[-3000:])
    assert "over HTTP from the imager server" in vm.console_text()
    _, files = read_disk(target)
    assert files == written
