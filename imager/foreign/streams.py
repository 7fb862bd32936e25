"""A foreign stream's compression and contents, told from its first bytes.

FOG names no compression in its file names (``imgFormat`` lives in FOG's database), so the magic
bytes decide; Clonezilla names it (``.zst.aa``) and the magic confirms it.  What lies under the
compression is a partclone image, raw ``dd`` bytes, or a partimage volume (FOG before 1.0), which
we refuse by name rather than write.
"""
from __future__ import annotations

import io
import os

from imager import datapath, partclone
from imager.errors import InvalidImage
from imager.foreign.model import Stream

_MAGIC = [(b"\x1f\x8b", "gzip"), (b"\x28\xb5\x2f\xfd", "zstd"), (b"\xfd7zXZ\x00", "xz"), (b"BZh", "bzip2")]
PARTCLONE_MAGIC = b"partclone-image"
PARTIMAGE_MAGIC = b"PaRtImAgE-VoLuMe"
# Clonezilla's name for each compression (…-ptcl-img.<tag>.aa); lz4 and lzo have no decoder here.
CLONEZILLA_TAGS = {"gz": "gzip", "zst": "zstd", "xz": "xz", "bz2": "bzip2", "uncomp": "none"}


def sniff_compression(path: str, raw: bool = False) -> str:
    """The compression of the stream starting in ``path``; uncompressed partclone/partimage (or raw) is "none"."""
    with open(path, "rb") as f:
        head = f.read(16)
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if raw or head.startswith((PARTCLONE_MAGIC, PARTIMAGE_MAGIC)):
        return "none"
    raise InvalidImage(f"{os.path.basename(path)}: neither gzip, zstd, xz, bzip2 nor an uncompressed partclone "
                       f"image (first bytes {head[:8].hex()})")


class _Head(io.RawIOBase):
    """Keeps the first ``limit`` decompressed bytes, then stops the decompression."""

    def __init__(self, limit: int) -> None:
        self.data = bytearray()
        self.limit = limit

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.data += data[: self.limit - len(self.data)]
        if len(self.data) >= self.limit:
            raise _Enough
        return len(data)


class _Enough(Exception):
    pass


def head(stream: Stream, size: int = partclone.HEADER_SIZE) -> bytes:
    """The first ``size`` decompressed bytes of ``stream`` (fewer if it is shorter)."""
    sink = _Head(size)
    try:
        datapath.decompress_pieces(stream.pieces[:1], stream.compression, sink, check_end=False)  # type: ignore[arg-type]
    except _Enough:
        pass
    return bytes(sink.data)


def check_pieces(stream: Stream) -> None:
    """Split pieces numbered without a gap, every one but the last of the same size: a piece lost or cut
    short in a copy is found before anything is written."""
    if len(stream.pieces) < 2:
        return
    suffixes = [os.path.basename(p).rsplit(".", 1)[-1] for p in stream.pieces]
    if all(len(s) == 2 and s.isalpha() for s in suffixes):   # Clonezilla: .aa, .ab, … (split -a 2)
        expected = [chr(97 + n // 26) + chr(97 + n % 26) for n in range(len(suffixes))]
    else:   # FOG: d1pN.img, .001, .002 … (FOS renamed .000); raw images: <name>.000, .001 …
        first = 0 if suffixes[0] == "000" else 1
        suffixes = suffixes if first == 0 else suffixes[1:]
        expected = [f"{n:03d}" for n in range(first, first + len(suffixes))]
    missing = sorted(set(expected) - set(suffixes))
    if missing:
        raise InvalidImage(f"{stream.name}: split piece(s) .{', .'.join(missing)} missing from the image")
    sizes = [os.path.getsize(p) for p in stream.pieces[:-1]]
    short = [os.path.basename(p) for p, size in zip(stream.pieces, sizes) if size != max(sizes)]
    if short:
        raise InvalidImage(f"{', '.join(short)}: shorter than the other split pieces of {stream.name} (cut short "
                           "in a copy?)")


def check_contents(stream: Stream) -> partclone.StreamHeader | None:
    """The partclone header of a partition stream (None for raw bytes); refuses what we cannot restore."""
    check_pieces(stream)
    first = head(stream)
    if first.startswith(PARTIMAGE_MAGIC):
        raise InvalidImage(f"{stream.name} is a partimage volume (FOG's image format 1, from before FOG 1.0); "
                           "imager restores partclone images only",
                           hint="Deploy it once with the FOG that made it and capture it again with imager.")
    if stream.raw:
        return None
    header = partclone.parse_header(first)
    if header is None:
        raise InvalidImage(f"{stream.name} does not hold a partclone image (version 2) under its "
                           f"{stream.compression} compression")
    return header


def expected_bytes(stream: Stream) -> int:
    """Decompressed bytes to expect (a partclone image's size without block checksums; raw: stored size)."""
    header = check_contents(stream)
    return header.stream_size if header else stream.stored_bytes
