"""What a FOG or Clonezilla image holds, in one typed shape both loaders fill."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from contract.foreign import CLONEZILLA, FOG
from imager.partitions import Layout

__all__ = ["CLONEZILLA", "FOG", "COMPRESSIONS", "Stream", "ForeignPartition", "ForeignDisk", "ForeignImage"]

# How a partition's stream is stored: its pieces concatenated, then decompressed with this.
COMPRESSIONS = ("gzip", "zstd", "xz", "bzip2", "none")


@dataclass
class Stream:
    """One partition's (or a raw disk's) data: split pieces in order, compressed as one stream."""
    pieces: list[str]
    compression: str            # one of COMPRESSIONS
    raw: bool = False           # dd bytes, not a partclone image

    @property
    def name(self) -> str:
        return os.path.basename(self.pieces[0])

    @property
    def stored_bytes(self) -> int:
        return sum(os.path.getsize(p) for p in self.pieces)


@dataclass
class ForeignPartition:
    number: int
    kind: str                   # "stream", "swap" (recreated from its identity), "container" (MBR extended)
    stream: Stream | None = None
    swap_uuid: str = ""
    swap_label: str = ""
    fstype: str = ""            # what the image says the filesystem is ("" when it does not say)


@dataclass
class ForeignDisk:
    name: str                   # "d1", "sda"
    layout: Layout              # the source disk's own layout: what a same-size target gets
    sfdisk_dump: bytes          # the table to write, every GUID, type and name kept
    boot_area: bytes            # bytes before the first partition (MBR: with boot code; GPT: 440 bytes)
    partitions: list[ForeignPartition] = field(default_factory=list)
    minimum: Layout | None = None                    # FOG resizable: the shrunk layout it was captured in
    fixed: set[int] = field(default_factory=set)     # FOG resizable: partitions that keep their size
    raw: Stream | None = None                        # a raw disk image: every byte, no table of its own

    @property
    def streams(self) -> list[Stream]:
        if self.raw is not None:
            return [self.raw]
        return [p.stream for p in self.partitions if p.stream is not None]


@dataclass
class ForeignImage:
    format: str                 # FOG or CLONEZILLA
    kind: str                   # what the admin called it: "resizable", "multiple partitions", "raw", "savedisk"
    path: str
    disks: list[ForeignDisk]
    checksum_files: list[str] = field(default_factory=list)   # Clonezilla's MD5SUMS, SHA1SUMS, …

    @property
    def name(self) -> str:
        return os.path.basename(os.path.normpath(self.path))
