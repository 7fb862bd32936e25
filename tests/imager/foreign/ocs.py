"""Clonezilla's own ``ocs-sr savedisk`` (Debian's clonezilla package) on the test's loop disks only.

ocs-sr runs ``parted print`` on every disk the machine lists, so it runs in a private mount
namespace whose /proc/partitions shows the test's loop devices and nothing else.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path


def ocs_savedisk(devices: list[str], repo: Path, name: str, *, compression: str = "-z9p",
                 checksums: tuple[str, ...] = ()) -> Path:
    """``ocs-sr -batch -nogui savedisk`` of ``devices`` into ``repo/name``; returns the image directory."""
    names = [d.removeprefix("/dev/") for d in devices]
    own = re.compile(rf"^\s*\d+\s+\d+\s+\d+\s+({'|'.join(map(re.escape, names))})(p\d+)?\s*$")
    lines = Path("/proc/partitions").read_text().splitlines()
    fake = repo / ".partitions"
    repo.mkdir(parents=True, exist_ok=True)
    fake.write_text("\n".join(lines[:2] + [line for line in lines[2:] if own.match(line)]) + "\n")
    ocs = ["ocs-sr", "-or", str(repo), "-q2", "-batch", "-nogui", "-j2", compression, *checksums, "-i", "4096",
           "-sfsck", "-senc", "-p", "true", "savedisk", name, " ".join(names)]
    script = 'mount --bind "$0" /proc/partitions && exec "$@"'
    result = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, str(fake), *ocs],
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
    fake.unlink()
    image = repo / name
    if result.returncode != 0 or not (image / "clonezilla-img").exists():
        raise AssertionError(f"ocs-sr savedisk failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}")
    return image
