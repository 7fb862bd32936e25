"""partclone: which binary reads which filesystem, and its image header."""
from __future__ import annotations

import struct
from dataclasses import dataclass

RAW = "dd"


def clone_argv(flavour: str, device: str) -> list[str]:
    """Capture command writing the used-block stream to stdout.

    -a0: no partclone checksums; the zstd frame checksum and the manifest's
    SHA-256 already cover the stream, and partclone's CRC costs CPU.
    """
    if flavour == RAW:
        return ["partclone.dd", "-q", "-s", device, "-o", "-"]
    return [f"partclone.{flavour}", "-c", "-a0", "-q", "-z", str(8 * 1024 * 1024), "-s", device, "-o", "-"]


def restore_argv(flavour: str, device: str, shrunk: bool = False) -> list[str]:
    """Restore command reading the stream from stdin.

    shrunk: the filesystem was captured shrunk inside a larger partition.  partclone.ntfs records the
    partition's size, not the filesystem's, and would refuse a smaller target partition that still holds
    the shrunk filesystem; our plan has already checked the fit, so partclone's check is turned off (-C).
    """
    if flavour == RAW:
        return ["partclone.dd", "-q", "-s", "-", "-o", device]
    return ["partclone.restore", "-q", "-z", str(8 * 1024 * 1024), *(["-C"] if shrunk else []), "-s", "-", "-o", device]


# Image format v2 header: magic, version strings, then filesystem info (packed).
_HEAD = struct.Struct("<16s14s4sH16sQQQQI")
HEADER_SIZE = 110


@dataclass
class StreamHeader:
    fs: str
    device_size: int
    total_blocks: int
    used_blocks: int
    block_size: int

    @property
    def stream_size(self) -> int:
        """Bytes of a checksum-free (-a0) stream: header, bitmap + CRC, used blocks."""
        return HEADER_SIZE + (self.total_blocks + 7) // 8 + 4 + self.used_blocks * self.block_size


def parse_header(head: bytes) -> StreamHeader | None:
    """Read partclone's v2 header; None when ``head`` is not one (e.g. raw dd)."""
    if len(head) < HEADER_SIZE or not head.startswith(b"partclone-image"):
        return None
    magic, _ptc, version, _endian, fs, dev_size, total, used, _sb_used, block = _HEAD.unpack_from(head)
    if version != b"0002":
        return None
    return StreamHeader(fs.split(b"\0")[0].decode(errors="replace"), dev_size, total, used, block)
