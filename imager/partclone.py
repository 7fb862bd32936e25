"""partclone: which binary reads which filesystem, and its image header."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from contract.chunkindex import HEADER_SIZE, parse_partclone_header

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
    info = parse_partclone_header(head)
    return StreamHeader(**asdict(info)) if info else None
