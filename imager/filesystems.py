"""What we know about each filesystem: how it travels, and how it is recreated or resized."""
from __future__ import annotations

import contextlib
import os
import re
import tempfile
from typing import Iterator

from imager import process
from imager.errors import CommandFailed

# blkid TYPE → partclone flavour.  Anything else (unknown, unformatted, BitLocker) is copied raw,
# and so is FAT12 ("fat12", see partitions.probe_filesystem): partclone 0.3.23 corrupts files past
# ~1 MiB on FAT12 (found by tests/imager/test_filesystems_on_loop_devices.py); FAT12 volumes are tiny.
PARTCLONE = {
    "ext2": "extfs", "ext3": "extfs", "ext4": "extfs",
    "vfat": "fat", "msdos": "fat",
    "ntfs": "ntfs", "xfs": "xfs", "btrfs": "btrfs",
}
RAW = "dd"
SWAP = "swap"          # not copied: recreated with its UUID and label
CONTAINER = "none"     # an MBR extended partition: sfdisk recreates it, nothing to copy
# Filesystems we can shrink offline before capture and grow after deploy (FOG does ext* and NTFS).
SHRINKABLE = {"ext2", "ext3", "ext4", "ntfs"}
# Filesystems that cannot shrink offline (xfs never shrinks; btrfs only while mounted and slowly) but grow
# when mounted: in resizable images they keep at least their size and take the room of a larger disk.
GROW_ONLY = {"xfs", "btrfs"}


def tool_for(fstype: str, kind: str = "normal") -> str:
    if kind == "extended":
        return CONTAINER
    if fstype == "swap":
        return SWAP
    return PARTCLONE.get(fstype, RAW)


def recreate_swap(device: str, uuid: str, label: str) -> None:
    argv = ["mkswap"]
    if uuid:
        argv += ["-U", uuid]
    if label:
        argv += ["-L", label]
    process.run(argv + [device])


def minimum_bytes(device: str, fstype: str) -> int | None:
    """Smallest size the filesystem can be shrunk to, or None when we do not shrink it."""
    if fstype in ("ext2", "ext3", "ext4"):
        blocks = int(process.run(["resize2fs", "-P", device]).text.strip().rsplit(":", 1)[1])
        header = process.run(["dumpe2fs", "-h", device]).text
        found = re.search(r"Block size:\s+(\d+)", header)
        if found is None:
            raise CommandFailed(f"dumpe2fs -h {device} names no block size")
        block_size = int(found.group(1))
        return blocks * block_size
    if fstype == "ntfs":
        text = process.run(["ntfsresize", "--info", "--force", "--no-progress-bar", device]).text
        match = re.search(r"You might resize at (\d+) bytes", text)
        return int(match.group(1)) if match else None
    return None


def shrink(device: str, fstype: str, size_bytes: int) -> None:
    if fstype in ("ext2", "ext3", "ext4"):
        process.run(["e2fsck", "-f", "-y", device], check=False)
        process.run(["resize2fs", device, f"{size_bytes // 1024}K"])
    elif fstype == "ntfs":
        process.run(["ntfsresize", "--force", "--force", "--no-progress-bar", "--size", str(size_bytes), device],
                    input=b"y\n")
        clear_ntfs_check_flag(device)
    else:
        raise ValueError(f"{fstype} is not shrinkable")


def grow(device: str, fstype: str) -> None:
    """Grow the filesystem to fill its partition."""
    if fstype in ("ext2", "ext3", "ext4"):
        process.run(["e2fsck", "-f", "-y", device], check=False)
        # New groups' inode tables zeroed now, not left to the kernel's lazy init: the grown filesystem is then
        # the same bytes whatever the disk held before (an incremental redeploy equals a full one).
        process.run(["env", "RESIZE2FS_FORCE_ITABLE_INIT=1", "resize2fs", device])
    elif fstype == "ntfs":
        process.run(["ntfsresize", "--force", "--force", "--no-progress-bar", device], input=b"y\n")
        clear_ntfs_check_flag(device)
    elif fstype == "xfs":
        with mounted(device, fstype) as point:
            process.run(["xfs_growfs", point])
    elif fstype == "btrfs":
        with mounted(device, fstype) as point:
            process.run(["btrfs", "filesystem", "resize", "max", point])


def clear_ntfs_check_flag(device: str) -> None:
    """ntfsresize leaves the volume marked for chkdsk, and partclone.ntfs refuses such a volume;
    the resize itself was consistent, so clear the mark (FOG does the same with ntfsfix)."""
    process.run(["ntfsfix", "-d", device])


@contextlib.contextmanager
def mounted(device: str, fstype: str) -> Iterator[str]:
    """``device`` mounted read-write on a fresh directory for the block; always unmounted."""
    point = tempfile.mkdtemp(prefix="imager-fs-")
    process.run(["mount", "-t", fstype, device, point])  # -t: the kernel loads the module
    try:
        yield point
    finally:
        process.run(["umount", point], check=False)
        os.rmdir(point)
