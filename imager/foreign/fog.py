"""FOG image directories, as FOG's client (FOS) writes them.

    dD.partitions             sfdisk -d of disk D as it was (the original layout)
    dD.minimum.partitions     resizable images: the shrunk table the partitions were captured in
                              (only its sizes count: FOS also moves GPT starts in it)
    dD.fixed_size_partitions  resizable images: "1:2:4", partitions that keep their size
    dD.mbr                    MBR: the sectors before the first partition (≤ 1 MiB; for resizable
                              images with the shrunk entries); GPT: an sgdisk -b backup (17,920 bytes)
    dD.grub.mbr               GPT disks with GRUB in sector 0: those first sectors
    dD.original.swapuuids     "N UUID" per swap partition (no stream)
    dDpN.img [.001 .002 …]    partclone stream (-a0), gzip / zstd / none; split pieces after the first
                              keep their number (FOS renames piece .000 to dDpN.img)
    dD.size                   all-disks images: "D:<bytes>"
    <name>.000 [.001 …]       raw images ("dd"): partclone.imager of the whole disk, no table files
Ignored: dD.original.fstypes, dD.shrunken.partitions, dDpN.ebr (sfdisk writes the EBRs again).
"""
from __future__ import annotations

import glob
import os
import re


from imager.errors import InvalidImage
from imager.foreign import streams
from imager.foreign.model import FOG, ForeignDisk, ForeignImage, ForeignPartition, Stream
from imager.foreign.tables import parse_sfdisk_dump, read_if_present
from imager.partitions import Layout

MAX_DISKS = 64


def load(image_dir: str) -> ForeignImage:
    if not os.path.exists(os.path.join(image_dir, "d1.mbr")) and not os.path.exists(
            os.path.join(image_dir, "d1.partitions")):
        pieces = _raw_pieces(image_dir)
        if pieces:
            return ForeignImage(FOG, "raw", image_dir, [_raw_disk(pieces)])
    disks = []
    for number in range(1, MAX_DISKS + 1):
        prefix = f"d{number}"
        if not any(os.path.exists(os.path.join(image_dir, f"{prefix}.{s}"))
                   for s in ("partitions", "original.partitions", "mbr")):
            break
        disks.append(_load_disk(image_dir, prefix))
    if not disks:
        raise InvalidImage(f"{image_dir}: a FOG image without d1.partitions or d1.mbr")
    resizable = os.path.exists(os.path.join(image_dir, "d1.minimum.partitions"))
    kind = "resizable" if resizable else ("all disks" if len(disks) > 1 else "multiple partitions")
    return ForeignImage(FOG, kind, image_dir, disks)


def _load_disk(image_dir: str, prefix: str) -> ForeignDisk:
    dump = (read_if_present(image_dir, f"{prefix}.partitions")
            or read_if_present(image_dir, f"{prefix}.original.partitions"))   # older FOG's name
    if not dump:
        raise InvalidImage(f"{image_dir}: {prefix}.mbr without {prefix}.partitions: the original layout is missing")
    layout = parse_sfdisk_dump(dump.decode(errors="replace"))
    mbr = read_if_present(image_dir, f"{prefix}.mbr")
    gpt = mbr[512:520] == b"EFI PART"
    if mbr and gpt != (layout.label == "gpt"):
        raise InvalidImage(f"{image_dir}: {prefix}.mbr holds {'a GPT' if gpt else 'an MBR'} but "
                           f"{prefix}.partitions describes {'a GPT' if layout.label == 'gpt' else 'an MBR'} disk")
    if layout.label == "gpt":
        boot = (read_if_present(image_dir, f"{prefix}.grub.mbr") or mbr)[:440]   # the boot code; sfdisk writes the rest
    else:
        boot = mbr[:layout.boot_area_bytes]
    minimum_text = read_if_present(image_dir, f"{prefix}.minimum.partitions")
    minimum = parse_sfdisk_dump(minimum_text.decode(errors="replace")) if minimum_text else None
    fixed_text = read_if_present(image_dir, f"{prefix}.fixed_size_partitions").decode(errors="replace")
    fixed = {int(n) for n in re.findall(r"\d+", fixed_text)}
    swaps = {}
    for line in read_if_present(image_dir, f"{prefix}.original.swapuuids").decode(errors="replace").splitlines():
        match = re.match(r"^\S*?(\d+)\s+(\S+)\s*$", line)   # "N UUID" (older FOS: "/dev/sdaN UUID")
        if match:
            swaps[int(match.group(1))] = match.group(2)
    partitions = [_partition(image_dir, prefix, p.number, p.kind, swaps) for p in layout.partitions]
    return ForeignDisk(prefix, layout, dump, boot, partitions, minimum=minimum, fixed=fixed)


def _partition(image_dir: str, prefix: str, number: int, kind: str, swaps: dict[int, str]) -> ForeignPartition:
    if kind == "extended":
        return ForeignPartition(number, "container")
    if os.path.exists(os.path.join(image_dir, f"{prefix}p{number}.lvm")):
        raise InvalidImage(f"{image_dir}: partition {number} is an LVM volume group in FOG's LVM layout "
                           f"({prefix}p{number}.lvm), which is not read yet")
    base = f"{prefix}p{number}.img"
    pieces = [os.path.join(image_dir, base)] if os.path.exists(os.path.join(image_dir, base)) else []
    pieces += sorted(p for p in glob.glob(os.path.join(glob.escape(image_dir), base + ".*"))
                     if re.fullmatch(r"\.\d{3}", p[len(os.path.join(image_dir, base)):]))
    if pieces:
        return ForeignPartition(number, "stream", Stream(pieces, streams.sniff_compression(pieces[0])))
    if number in swaps:
        return ForeignPartition(number, "swap", swap_uuid=swaps[number], fstype="swap")
    return ForeignPartition(number, "empty")   # FOS restores only the partitions that have a file


def _raw_pieces(image_dir: str) -> list[str]:
    name = os.path.basename(os.path.normpath(image_dir))
    found = glob.glob(os.path.join(glob.escape(image_dir), glob.escape(name) + ".[0-9][0-9][0-9]"))
    return sorted(found)


def _raw_disk(pieces: list[str]) -> ForeignDisk:
    """A raw image: partclone.imager of the whole disk; its header tells the disk's size."""
    stream = Stream(pieces, streams.sniff_compression(pieces[0]))
    header = streams.check_contents(stream)
    assert header is not None
    layout = Layout("raw", 512, -(-header.device_size // 512), [])
    return ForeignDisk("d1", layout, b"", b"", raw=stream)


