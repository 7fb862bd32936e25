"""What a deployed disk must show: its table, its files, GPT's usable area, grown filesystems."""
from __future__ import annotations

import re
import subprocess

from tests.disktools import filesystem_fingerprint
from tests.imager.foreign import fos

MiB = 1024 * 1024


def blank(path, mib):
    with open(path, "wb") as f:
        f.truncate(mib * MiB)
    return path


def table(dev):
    """``sfdisk -d`` without device names: the header and every partition's start, size, type, GUIDs, name."""
    text = subprocess.run(["sfdisk", "-d", dev], capture_output=True, text=True, check=True).stdout
    return [re.sub(r"^\S+?(\d+) :", r"\1 :", line) for line in text.splitlines() if not line.startswith("device:")]


def dump_table(path):
    return [re.sub(r"^\S+?(\d+) :", r"\1 :", line) for line in path.read_text().splitlines()
            if not line.startswith("device:")]


def rows(dev):
    return {r["number"]: (r["start"], r["size"]) for r in fos.partitions(dev)}


def last_lba(dev):
    return int(re.search(r"^last-lba: (\d+)$", "\n".join(table(dev)), re.M).group(1))


def sgdisk_clean(dev):
    return "No problems found" in subprocess.run(["sgdisk", "-v", dev], capture_output=True, text=True).stdout


def fills_partition(device, kind):
    """The filesystem was grown to its partition after a shrunk capture."""
    with open(device, "rb") as f:
        part_bytes = f.seek(0, 2)
    if kind == "ntfs":
        out = subprocess.run(["ntfsresize", "--info", "--force", "--no-progress-bar", device], capture_output=True,
                             text=True).stdout
        fs_bytes = int(re.search(r"Current volume size: (\d+) bytes", out).group(1))
    else:
        out = subprocess.run(["dumpe2fs", "-h", device], capture_output=True, text=True).stdout
        fs_bytes = int(re.search(r"Block count:\s+(\d+)", out).group(1)) * int(
            re.search(r"Block size:\s+(\d+)", out).group(1))
    return part_bytes - fs_bytes < 2 * MiB


def check_files(dev, expected, swap_label=True):
    """Every file of every filesystem (swap: its identity) as on the source."""
    for n, (kind, fingerprint) in expected.items():
        got = filesystem_fingerprint(f"{dev}p{n}", kind)
        if kind == "swap" and not swap_label:
            fingerprint = {k: v for k, v in fingerprint.items() if k != "LABEL"}
        assert got == fingerprint, f"partition {n} ({kind})"
