"""After a deploy: make the copy this machine's own (FOG's hostname change)."""
from __future__ import annotations

import logging
import os
import re
import tempfile
from typing import Any

from imager import disks, process
from imager.errors import InvalidTask

log = logging.getLogger(__name__)

_HOSTNAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
LINUX_FILESYSTEMS = {"ext2", "ext3", "ext4", "xfs", "btrfs"}


def check_hostname(name: str) -> str:
    if not _HOSTNAME.match(name or ""):
        raise InvalidTask(f"{name!r} is not a valid hostname (letters, digits, '-', at most 63)",
                          hint="Fix the host's name on the server, or deploy without a hostname.")
    return name


def set_linux_hostname(disk_path: str, partitions: list[dict[str, Any]], hostname: str) -> list[str]:
    """Write /etc/hostname (and the 127.0.1.1 line of /etc/hosts) on every Linux root found.

    Returns the partitions changed; a disk without a Linux root is left alone.
    """
    check_hostname(hostname)
    changed = []
    for part in partitions:
        if part.get("fstype") not in LINUX_FILESYSTEMS:
            continue
        device = disks.partition_path(disk_path, part["number"])
        mountpoint = tempfile.mkdtemp(prefix="imager-root-")
        process.run(["mount", "-t", part["fstype"], device, mountpoint])  # -t: the kernel loads the module
        try:
            etc = os.path.join(mountpoint, "etc")
            if os.path.isfile(os.path.join(etc, "hostname")) and not os.path.islink(os.path.join(etc, "hostname")):
                with open(os.path.join(etc, "hostname"), "w") as f:
                    f.write(hostname + "\n")
                _fix_hosts(os.path.join(etc, "hosts"), hostname)
                changed.append(device)
                log.info("hostname set to %s on %s", hostname, device)
        finally:
            process.run(["umount", mountpoint], check=False)
            os.rmdir(mountpoint)
    return changed


def _fix_hosts(path: str, hostname: str) -> None:
    if not os.path.isfile(path) or os.path.islink(path):
        return
    with open(path) as f:
        lines = f.read().splitlines()
    lines = [line for line in lines if not line.startswith("127.0.1.1")]
    lines.insert(1 if lines else 0, f"127.0.1.1\t{hostname}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
