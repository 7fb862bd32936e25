"""An incremental redeploy over HTTP with no NFS server running (issue 17): the lab's node 'lab' has http_url
'server', so a PXE-booted client fetches a chunked image's indexes from imager-server's image route and only the
chunks its disk lacks from the chunk route, with its task token, and mounts nothing.

The image is captured chunked on the host (loop devices) into the node's directory as v1, laid onto the target's
disk on the host, the source changed and captured as v2, each capture reported done through the client API; so the
only VM boot is the redeploy's (≈ 40 s of VM time). It must reuse most of the disk and leave exactly v2's files."""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from imager import imagestore
from imager.ops.capture import capture_image
from imager.ops.deploy import deploy_image
from imager.progress import Progress
from tests.qemu.lab import Lab, attached, make_source_disk, mounted, read_disk, tree_checksums

pytestmark = [pytest.mark.qemu, pytest.mark.root]

IMAGE = "web-image"
MAC_CAPTURER = "52:54:00:12:37:01"   # never boots: its capture task is reported done by hand
MAC_TARGET = "52:54:00:12:37:02"
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab(nfs=False) as lab:
        yield lab
    shutil.rmtree(lab.dir, ignore_errors=True)


def published_on_host(lab: Lab, source: Path) -> None:
    """The image captured chunked on the host into the node's directory, and the server told, as a capture would."""
    with attached(source) as device:
        capture_image(device, str(lab.images), IMAGE, Progress(), image_format="chunked")
    if not lab.cli_json("image", "list"):
        lab.cli("image", "add", IMAGE, "--storage", "lab", "--format", "chunked")
        lab.cli("host", "add", MAC_CAPTURER, "capturer")
    task = lab.cli_json("task", "capture", "capturer", IMAGE)
    token = lab.task_token(MAC_CAPTURER)
    assert lab.client_call(task["id"], token, "checkin")["storage"]["transport"] == "nfs"  # captures: NFS
    lab.client_call(task["id"], token, "done", {"result": {"image": IMAGE}})


def test_a_client_redeploys_a_chunked_image_over_http_with_no_nfs_server(lab: Lab) -> None:
    listening = lab.netns("ss", "-ltnH").stdout
    assert ":2049 " not in listening, "an NFS server listens in the lab"
    source = lab.dir / "source.img"
    make_source_disk(source, size_mib=256)
    published_on_host(lab, source)
    target = lab.dir / "target.img"
    with open(target, "wb") as f:
        f.truncate(384 * 1024 * 1024)  # larger: the resizable image's last partition grows
    with attached(target) as device:  # the lab machine holds v1
        deploy_image(imagestore.resolve(str(lab.images), IMAGE), device, Progress())
    with attached(source) as device, mounted(f"{device}p2", readonly=False) as root:  # a month later
        (root / "update.bin").write_bytes(os.urandom(2 * MiB))
        (root / "random.bin").unlink()
        written = tree_checksums(root)
    published_on_host(lab, source)
    lab.cli("host", "add", MAC_TARGET, "web-target")
    task = lab.cli_json("task", "deploy", "web-target", IMAGE)
    vm = lab.boot("web-target", MAC_TARGET, target)
    vm.wait_exit(300)
    done = lab.task(task["id"])
    assert done["state"] == "done", (done.get("error"), vm.console_text()[-3000:])
    assert "over HTTP from the imager server" in vm.console_text()
    result = done["result"]
    # the 2 MiB added (random: as large compressed) and the changed metadata, not the image's ~30 MiB of data
    assert 2 * MiB < result["fetched_bytes"] < 4 * MiB and result["reused_bytes"] > 4 * result["wrote_bytes"], result
    _, files = read_disk(target)
    assert files["2"] == written
