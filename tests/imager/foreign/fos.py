"""FOG images laid out file for file as FOG's client (FOS) uploads them, made here with the same tools.

Written from the description of FOS's upload in docs/image-format.md ("FOG images"); the steps
and their order are FOS's:
- ``n`` (single disk, resizable): the fixed list, ``d1.partitions`` (the original table), each
  ext/NTFS filesystem and its partition shrunk (NTFS to its minimum plus max(pct %, 500 MiB)),
  GPT starts compacted in the table only, then ``d1.minimum.partitions`` and ``d1.mbr`` (an
  ``sgdisk -b`` backup on GPT) saved from that shrunk table, the partitions captured shrunk, and
  the original table and sizes put back;
- ``mps``: the tables and every partition as they are; ``mpa``: that for each disk, with ``dD.size``;
- ``dd``: ``partclone.imager`` of the whole disk into ``<name>.000``.
Streams are partclone ``-a0`` compressed per ``imgFormat`` (0 gzip, 2 gzip split, 3 none, 4 none
split, 5 zstd, 6 zstd split); split pieces are ``dDpN.img``, ``dDpN.img.001``, … (FOS renames ``.000``).
"""
from __future__ import annotations

import math
import re
import subprocess
from pathlib import Path

FORMATS = {0: ("gzip", False), 2: ("gzip", True), 3: ("none", False), 4: ("none", True),
           5: ("zstd", False), 6: ("zstd", True)}
RESIZABLE = {"ntfs", "ext2", "ext3", "ext4", "btrfs", "f2fs", "xfs", "LVM2_member"}
PARTCLONE = {"ext2": "extfs", "ext3": "extfs", "ext4": "extfs", "ntfs": "ntfs", "vfat": "fat", "btrfs": "btrfs",
             "xfs": "xfs"}
NTFS_MIN_SLACK = 524_288_000


def sh(command: str, cwd: Path | None = None, input: str | None = None) -> str:
    return subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=cwd, check=True, capture_output=True,
                          text=True, input=input).stdout


def fstype(part: str) -> str:
    out = subprocess.run(["blkid", "-p", "-o", "export", part], capture_output=True, text=True).stdout
    found = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return found.get("TYPE", "")


def partitions(dev: str) -> list[dict]:
    """Number, start, size and type of each partition, from ``sfdisk -d``."""
    return parse_dump(sh(f"sfdisk -d {dev}"))


def parse_dump(text: str) -> list[dict]:
    rows = []
    for line in text.splitlines():
        match = re.match(r"^\S+?(\d+) : start=\s*(\d+), size=\s*(\d+), type=([^,\s]+)", line)
        if match:
            rows.append({"number": int(match.group(1)), "start": int(match.group(2)), "size": int(match.group(3)),
                         "type": match.group(4).lower()})
    return rows


def partitions_of_dump(text: str) -> dict[int, tuple[int, int]]:
    """{number: (start, size)} of an ``sfdisk -d`` text."""
    return {r["number"]: (r["start"], r["size"]) for r in parse_dump(text)}


def is_container(row: dict) -> bool:
    return row["type"] in ("5", "f")


def gpt(dev: str) -> bool:
    return "label: gpt" in sh(f"sfdisk -d {dev}")


def upload(dev: str, out: Path, image_type: str = "n", img_format: int = 6, pct: int = 5,
           split_bytes: int = 1024 * 1024, fixed_extra: tuple[int, ...] = ()) -> Path:
    """Capture ``dev`` into ``out`` as FOS does for ``image_type`` (n, mps or dd)."""
    out.mkdir(parents=True, exist_ok=True)
    if image_type == "dd":
        _stream(f"partclone.imager -c -a0 -s {dev} -o -", out, out.name, img_format, split_bytes, rename=False)
        return out
    if image_type == "mps":
        _save_tables(dev, out, 1, "d1.partitions")
        _save_partitions(dev, out, 1, img_format, split_bytes)
        return out
    assert image_type == "n"
    rows = partitions(dev)
    fixed = sorted({r["number"] for r in rows if fstype(_part(dev, r["number"])) not in RESIZABLE} | set(fixed_extra))
    (out / "d1.fixed_size_partitions").write_text(":".join(map(str, fixed)) + "\n")
    sh(f"sfdisk -d {dev} > d1.partitions", out)
    (out / "d1.original.swapuuids").write_text("")
    (out / "d1.original.fstypes").write_text("")
    shrunk = []
    for row in rows:
        if row["number"] not in fixed and _shrink(dev, row, out, pct):
            shrunk.append(row["number"])
    if gpt(dev):
        sh(f"sfdisk -d {dev} > d1.shrunken.partitions", out)
        _compact_gpt(dev)
    _save_tables(dev, out, 1, "d1.minimum.partitions")
    if gpt(dev):
        sh(f"sfdisk --quiet --no-reread --force {dev} < d1.shrunken.partitions && partprobe {dev}", out)
    _save_partitions(dev, out, 1, img_format, split_bytes)
    sh(f"sfdisk --quiet --no-reread --force {dev} < d1.partitions && partprobe {dev}", out)
    for number in shrunk:  # FOS's expandPartition: the source gets its full filesystems back
        part = _part(dev, number)
        if fstype(part) == "ntfs":
            sh(f"ntfsresize -f -b -P {part} <<< y && ntfsfix -d {part}")
        else:
            sh(f"e2fsck -fp {part}; resize2fs {part}")
    return out


def upload_all_disks(devs: list[str], out: Path, img_format: int = 3, split_bytes: int = 1024 * 1024) -> Path:
    """``mpa``: every disk D as ``mps`` with its dD prefix, and ``dD.size``."""
    out.mkdir(parents=True, exist_ok=True)
    for number, dev in enumerate(devs, 1):
        size = int(sh(f"blockdev --getsize64 {dev}"))
        (out / f"d{number}.size").write_text(f"{number}:{size}\n")
        _save_tables(dev, out, number, f"d{number}.partitions")
        _save_partitions(dev, out, number, img_format, split_bytes)
    return out


def _part(dev: str, number: int) -> str:
    return f"{dev}p{number}"


def _resize_partition(dev: str, number: int, sectors: int) -> None:
    sh(f"echo ',{sectors}' | sfdisk --quiet --no-reread --force -N {number} {dev} && partprobe {dev}")


def _shrink(dev: str, row: dict, out: Path, pct: int) -> bool:
    """FOS's shrinkPartition: NTFS to its minimum plus max(pct %, 500 MiB); ext to its minimum."""
    part = _part(dev, row["number"])
    kind = fstype(part)
    if kind == "ntfs":
        info = subprocess.run(["ntfsresize", "-f", "-i", "-v", "-P", part], capture_output=True, text=True).stdout
        minimum = int(re.search(r"You might resize at (\d+) bytes", info).group(1))
        slack = max(round(pct / 100 * minimum), NTFS_MIN_SLACK)
        kib = round((minimum + slack) / 1024)
        dry = subprocess.run(["ntfsresize", "-f", "-n", "-s", f"{kib}k", part], capture_output=True, text=True)
        said = dry.stdout + dry.stderr
        if "bigger than the device size" in said:
            with open(out / "d1.fixed_size_partitions", "a") as f:  # FOS appends, the list keeps its old line
                f.write(f":{row['number']}")
            return False
        if "volume size is already OK" not in said:
            sh(f"ntfsresize -f -f -s {kib}k {part} <<< y")
        _resize_partition(dev, row["number"], kib * 1024 // 512)
        sh(f"ntfsfix -b -d {part}")
    elif kind in ("ext2", "ext3", "ext4"):
        sh(f"e2fsck -fp {part}")
        blocks = int(re.search(r"(\d+)\s*$", sh(f"resize2fs -P {part} 2>/dev/null")).group(1))
        block_size = int(re.search(r"Block size:\s+(\d+)", sh(f"dumpe2fs -h {part} 2>/dev/null")).group(1))
        size = blocks * block_size
        sh(f"resize2fs -M {part}")
        _resize_partition(dev, row["number"], math.floor((size + round(pct / 100 * size)) / 512))
        sh(f"e2fsck -fp {part} || e2fsck -fy {part}")
    else:
        return False
    with open(out / "d1.original.fstypes", "a") as f:
        f.write(f"{part} {kind}\n")
    return True


def _compact_gpt(dev: str) -> None:
    """GPT only: later partitions' starts moved down in the table (the data stays where it is)."""
    rows = sorted(partitions(dev), key=lambda r: r["start"])
    for prev, row in zip(rows, rows[1:]):
        prev_end = prev["start"] + prev["size"]
        if row["start"] > prev_end:
            new_start = (prev_end // 512 + 1) * 512
            if new_start < row["start"]:
                sh(f"echo '{new_start},{row['size']}' | sfdisk --quiet --no-reread --force -N {row['number']} {dev}")
                row["start"] = new_start


def _save_tables(dev: str, out: Path, disk: int, dump_name: str) -> None:
    """FOS's savePartitionTablesAndBootLoaders: dD.mbr (and grub files), the dump, the EBRs."""
    rows = partitions(dev)
    first = min(r["start"] for r in rows if r["start"] > 0)
    count = 1 if first in (8, 63) else min(first, 2048)
    with open(dev, "rb") as f:
        sector0 = f.read(512)
    has_grub = b"grub" in sector0.lower()
    if gpt(dev):
        if has_grub:
            sh(f"dd if={dev} of=d{disk}.grub.mbr bs=512 count={count} status=none", out)
        sh(f"sgdisk -b d{disk}.mbr {dev}", out)
    else:
        if has_grub:
            (out / f"d{disk}.has_grub").write_text("")
        sh(f"dd if={dev} of=d{disk}.mbr bs=512 count={count} status=none", out)
        for row in rows:
            if row["number"] >= 5 or is_container(row):
                sh(f"dd if={_part(dev, row['number'])} of=d{disk}p{row['number']}.ebr bs=512 count=1 status=none", out)
    sh(f"sfdisk -d {dev} > {dump_name}", out)


def _save_partitions(dev: str, out: Path, disk: int, img_format: int, split_bytes: int) -> None:
    """FOS's savePartition for each: containers get only their .ebr, swap its UUID, the rest a stream."""
    for row in partitions(dev):
        part = _part(dev, row["number"])
        kind = fstype(part)
        if is_container(row):
            (out / f"d{disk}p{row['number']}.ebr").touch()
        elif kind == "swap":
            uuid = sh(f"blkid -p -s UUID -o value {part}").strip()
            with open(out / f"d{disk}.original.swapuuids", "a") as f:
                f.write(f"{row['number']} {uuid}\n")
        else:
            flavour = PARTCLONE.get(kind, "imager")
            checksum = "" if flavour == "imager" else "-a0"
            _stream(f"partclone.{flavour} -c {checksum} -s {part} -o -", out, f"d{disk}p{row['number']}.img",
                    img_format, split_bytes, rename=True)


def _stream(capture: str, directory: Path, base: str, img_format: int, split_bytes: int, rename: bool) -> None:
    """FOS's uploadFormat: compress into base.000 (split: .000 .001 …); partitions then rename .000 to base."""
    compression, split = FORMATS[img_format]
    squeeze = {"gzip": "pigz -6", "zstd": "zstd -q -T0 --rsyncable -3", "none": "cat"}[compression]
    if split:
        sh(f"{capture} 2>/dev/null | {squeeze} | split -a 3 -d -b {split_bytes} - {base}.", directory)
    else:
        sh(f"{capture} 2>/dev/null | {squeeze} > {base}.000", directory)
    if rename:
        (directory / f"{base}.000").rename(directory / base)
