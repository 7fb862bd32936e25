"""Disk images on the host for tests: loop devices, mounts, checksums — with the real tools."""
from __future__ import annotations

import contextlib
import hashlib
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator


def _run(*argv: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=check, text=True, capture_output=True, **kwargs)


@contextlib.contextmanager
def attached(image: Path) -> Iterator[str]:
    """The disk image as a loop device with partition nodes; always detached."""
    device = _run("losetup", "--find", "--show", "--partscan", str(image)).stdout.strip()
    try:
        _run("partprobe", device, check=False)
        yield device
    finally:
        _run("losetup", "--detach", device, check=False)


@contextlib.contextmanager
def mounted(device: str, readonly: bool = True) -> Iterator[Path]:
    point = Path(tempfile.mkdtemp(prefix="imager-mnt-"))
    _run("mount", "-o", "ro" if readonly else "rw", device, str(point))
    try:
        yield point
    finally:
        _run("umount", str(point), check=False)
        point.rmdir()


def tree_checksums(root: Path) -> dict[str, str]:
    sums = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink() and "lost+found" not in path.parts:
            sums[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return sums


def file_sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 * 1024 * 1024):
            sha.update(chunk)
    return sha.hexdigest()


# --- filesystems of every kind: made, filled and read with their own tools -------------

MKFS = {
    "ext2": ["mkfs.ext2", "-q", "-F"], "ext3": ["mkfs.ext3", "-q", "-F"], "ext4": ["mkfs.ext4", "-q", "-F"],
    "fat12": ["mkfs.vfat", "-F", "12"], "fat16": ["mkfs.vfat", "-F", "16"], "fat32": ["mkfs.vfat", "-F", "32"],
    "ntfs": ["mkntfs", "-Q", "-F"], "xfs": ["mkfs.xfs", "-f", "-q"], "btrfs": ["mkfs.btrfs", "-f", "-q"],
    "swap": ["mkswap", "-U", "5f0b5d6e-6d7c-4c5e-9a53-0a7c1b1c2d3e", "-L", "swap-lab"],
}


def sample_files(tag: str) -> dict[str, bytes]:
    import os
    return {"readme.txt": f"{tag}\n".encode() * 200, "dir/random.bin": os.urandom(700_000),
            "dir/sub/zeros.bin": bytes(300_000)}


def make_filesystem(device: str, kind: str) -> None:
    """Format ``device`` as ``kind`` and put sample files on it (raw: random bytes)."""
    import os
    if kind == "raw":
        with open(device, "r+b") as f:
            f.write(os.urandom(1024 * 1024))
        return
    _run(*MKFS[kind], device)
    if kind == "swap":
        return
    files = sample_files(kind)
    if kind.startswith("fat"):
        _run("mmd", "-i", device, "::/dir", "::/dir/sub")
        for name, data in files.items():
            _run("mcopy", "-i", device, "-", f"::/{name}", input=data.decode("latin-1"))
        return
    with mounted_rw(device, kind) as root:
        for name, data in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(data)


@contextlib.contextmanager
def mounted_rw(device: str, kind: str, readonly: bool = False) -> Iterator[Path]:
    if kind != "ntfs":
        with mounted(device, readonly=readonly) as root:
            yield root
        return
    point = Path(tempfile.mkdtemp(prefix="imager-ntfs-"))
    _run("ntfs-3g", "-o", "ro" if readonly else "rw", device, str(point))  # FUSE: no in-kernel NTFS here
    try:
        yield point
    finally:
        _run("umount", str(point), check=False)
        point.rmdir()


def filesystem_fingerprint(device: str, kind: str) -> dict[str, str]:
    """What must survive capture → deploy: every file's SHA-256, or swap's identity, or the raw bytes."""
    if kind == "raw":
        with open(device, "rb") as f:
            return {"bytes": hashlib.sha256(f.read(1024 * 1024)).hexdigest()}
    if kind == "swap":
        out = _run("blkid", "-p", "-o", "export", device).stdout
        return {k: v for k, v in (line.split("=", 1) for line in out.splitlines()) if k in ("TYPE", "UUID", "LABEL")}
    if kind.startswith("fat"):
        listing = _run("mdir", "-i", device, "-/", "-b", "::/").stdout.split()
        sums = {}
        for path in sorted(listing):
            data = subprocess.run(["mtype", "-i", device, path], capture_output=True).stdout
            if not path.endswith("/"):
                sums[path] = hashlib.sha256(data).hexdigest()
        return sums
    with mounted_rw(device, kind, readonly=True) as root:
        return tree_checksums(root)
