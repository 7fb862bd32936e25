"""Every filesystem a fleet has, captured and deployed with the real tools on loop devices."""
from __future__ import annotations

import subprocess

import pytest

from imager import imagestore
from imager.ops.capture import capture_image
from imager.ops.deploy import deploy_image
from imager.progress import Progress
from tests.disktools import attached, filesystem_fingerprint, make_filesystem

pytestmark = pytest.mark.root
MiB = 1024 * 1024

# (kind, size in MiB, GPT type code)
GPT_LAYOUT = [
    ("raw", 1, "ef02"),      # BIOS boot partition: GRUB's core image, no filesystem
    ("fat32", 64, "ef00"),   # EFI System Partition
    ("fat16", 32, "0700"),
    ("fat12", 4, "0700"),
    ("ntfs", 48, "0700"),
    ("xfs", 300, "8300"),
    ("btrfs", 128, "8300"),
    ("ext2", 16, "8300"),
    ("ext3", 24, "8300"),
    ("swap", 16, "8200"),
    ("raw", 8, "8300"),      # unformatted / unknown: copied block for block
]


def blank(path, mib):
    with open(path, "wb") as f:
        f.truncate(mib * MiB)


def build(path, label):
    """Lay out and fill a disk; returns {number: (kind, fingerprint)}."""
    if label == "gpt":
        blank(path, 720)
        args = []
        for n, (_, size, code) in enumerate(GPT_LAYOUT, 1):
            args += [f"-n{n}:0:+{size}M", f"-t{n}:{code}", f"-c{n}:part{n}"]
        subprocess.run(["sgdisk", *args, str(path)], check=True, capture_output=True)
        numbered = {n: kind for n, (kind, _, _) in enumerate(GPT_LAYOUT, 1)}
    else:
        blank(path, 300)
        script = "label: dos\n,40M,83,*\n,,5\n,40M,0c\n,60M,7\n,16M,82\n,,83\n"
        subprocess.run(["sfdisk", "--quiet", str(path)], input=script.encode(), check=True)
        numbered = {1: "ext4", 5: "fat32", 6: "ntfs", 7: "swap", 8: "ext2"}
    with attached(path) as dev:
        for n, kind in numbered.items():
            make_filesystem(f"{dev}p{n}", kind)
        return {n: (kind, filesystem_fingerprint(f"{dev}p{n}", kind)) for n, kind in numbered.items()}


@pytest.mark.parametrize("label", ["gpt", "dos"])
def test_every_filesystem_survives_capture_and_deploy(tmp_path, label):
    expected = build(tmp_path / "src.img", label)
    blank(tmp_path / "dst.img", 720 if label == "gpt" else 300)
    store = str(tmp_path / "store")
    with attached(tmp_path / "src.img") as src, attached(tmp_path / "dst.img") as dst:
        capture_image(src, store, "fleet", Progress())
        deploy_image(imagestore.resolve(store, "fleet"), dst, Progress())
        for n, (kind, fingerprint) in expected.items():
            assert filesystem_fingerprint(f"{dst}p{n}", kind) == fingerprint, f"partition {n} ({kind})"
            assert filesystem_fingerprint(f"{src}p{n}", kind) == fingerprint, f"source partition {n} changed"
        src_table = subprocess.run(["sfdisk", "--dump", src], capture_output=True, text=True).stdout
        dst_table = subprocess.run(["sfdisk", "--dump", dst], capture_output=True, text=True).stdout
    assert src_table.replace(src, "X") == dst_table.replace(dst, "X")
