"""``imager verify`` and ``imager info`` for FOG and Clonezilla images; nothing is written.

Verify reads every file the image's own checksum lists name (Clonezilla's MD5SUMS, SHA1SUMS …, where
saving asked for them), then decompresses every stream and hands it to ``partclone.chkimg``, which
checks the header, the bitmap's CRC and, where the image has them (Clonezilla), every block's
checksum. FOG captures without partclone checksums (-a0): its gzip or zstd checks are what remain.
"""
from __future__ import annotations

import hashlib
import os
import re
from typing import Callable

from imager import datapath
from imager.errors import ChecksumMismatch, ImagerError
from imager.foreign import streams
from imager.foreign.plan import smallest_disk_bytes
from imager.foreign.model import ForeignDisk, ForeignImage, Stream
from imager.progress import Progress, human
from imager.verify import Discard, FileCheck

_ALGORITHMS = {"MD5SUMS": "md5", "SHA1SUMS": "sha1", "SHA256SUMS": "sha256", "SHA512SUMS": "sha512",
               "B2SUMS": "blake2b"}   # B3SUMS (BLAKE3) has no hashlib algorithm: its streams are still checked


def verify_foreign(image: ForeignImage, progress: Progress | None = None,
                   on_file: Callable[[FileCheck], None] | None = None) -> list[FileCheck]:
    results = []
    for check in _listed_checksums(image):
        results.append(check)
        if on_file is not None:
            on_file(check)
    for disk in image.disks:
        for stream in disk.streams:
            check = check_stream(stream, progress)
            results.append(check)
            if on_file is not None:
                on_file(check)
    return results


def require_intact(image: ForeignImage, progress: Progress | None = None,
                   on_file: Callable[[FileCheck], None] | None = None) -> int:
    """``verify_foreign``, raising ChecksumMismatch naming what is damaged; returns the number of checks."""
    results = verify_foreign(image, progress, on_file)
    bad = [r for r in results if not r.ok]
    if bad:
        raise ChecksumMismatch(f"{len(bad)} file(s) of the {image.format} image {image.path} are damaged: "
                               + "; ".join(r.reason for r in bad),
                               hint="Nothing was written. Use another copy of the image, or capture it again.")
    return len(results)


def _listed_checksums(image: ForeignImage) -> list[FileCheck]:
    checks = []
    for listing in image.checksum_files:
        algorithm = _ALGORITHMS.get(listing)
        if algorithm is None:
            continue
        with open(os.path.join(image.path, listing), errors="replace") as f:
            for line in f:
                match = re.match(r"^([0-9a-fA-F]+) [ *](.+)$", line.rstrip("\n"))
                if not match or os.path.basename(match.group(2)) in image.checksum_files:
                    continue
                checks.append(_check_listed(image.path, listing, algorithm, match.group(2), match.group(1).lower()))
    return checks


def _check_listed(image_dir: str, listing: str, algorithm: str, name: str, expected: str) -> FileCheck:
    path = os.path.join(image_dir, os.path.basename(name))
    digest = hashlib.new(algorithm)
    size = 0
    try:
        with open(path, "rb") as f:
            while chunk := f.read(datapath.CHUNK):
                digest.update(chunk)
                size += len(chunk)
    except OSError as exc:
        return FileCheck(name, 0, False, f"{name}, listed in {listing}, cannot be read: {exc.strerror or exc}")
    if digest.hexdigest() != expected:
        return FileCheck(name, size, False, f"{name}: its {algorithm.upper()} does not match {listing}")
    return FileCheck(name, size, True)


def check_stream(stream: Stream, progress: Progress | None = None) -> FileCheck:
    """Decompress ``stream`` whole; partclone.chkimg reads a partclone image through to its last block."""
    label = stream.name + (f" (+{len(stream.pieces) - 1} pieces)" if len(stream.pieces) > 1 else "")
    try:
        header = streams.check_contents(stream)
        if progress is not None:
            progress.set_stage(f"verifying {label}", total=header.stream_size if header else stream.stored_bytes)
        add = progress.add if progress is not None else None
        if header is None:
            datapath.decompress_pieces(stream.pieces, stream.compression, Discard(), add)  # type: ignore[arg-type]
        else:
            datapath.feed_process(["partclone.chkimg", "-B", "-s", "-"], lambda sink: datapath.decompress_pieces(
                stream.pieces, stream.compression, sink, add))
    except ImagerError as exc:
        return FileCheck(label, stream.stored_bytes, False, f"{stream.name}: {exc.message}")
    except BrokenPipeError:
        return FileCheck(label, stream.stored_bytes, False, f"{stream.name}: data after the end of the partclone image")
    except OSError as exc:
        return FileCheck(label, stream.stored_bytes, False, f"{stream.name} cannot be read: {exc.strerror or exc}")
    return FileCheck(label, stream.stored_bytes, True)


def describe(image: ForeignImage) -> list[str]:
    """``imager info``: the table, sizes and filesystems the image holds, and the disk it needs."""
    lines = [f"image {image.name}: {image.format} {image.kind}, {len(image.disks)} disk(s)"
             + (f"; checksums: {', '.join(image.checksum_files)}" if image.checksum_files else "")]
    for disk in image.disks:
        lines += _describe_disk(disk)
    return lines


def _describe_disk(disk: ForeignDisk) -> list[str]:
    if disk.raw is not None:
        return [f"  disk {disk.name}: raw, {human(disk.raw.stored_bytes)} stored  {disk.raw.name}"]
    layout = disk.layout
    lines = [f"  disk {disk.name}: table {layout.label}  sector {layout.sector_size}  source disk "
             f"{human(layout.disk_sectors * layout.sector_size)}  needs {human(smallest_disk_bytes(disk))}"]
    for part, slot in zip(disk.partitions, layout.partitions):
        size = human(slot.sectors * layout.sector_size)
        if part.stream is None:
            lines.append(f"    p{part.number}: {part.kind if part.kind != 'swap' else 'swap':11} {size:>10}  "
                         + (f"UUID {part.swap_uuid}" if part.kind == "swap" else "(extended)"))
            continue
        try:
            header = streams.check_contents(part.stream)
        except ImagerError as exc:
            lines.append(f"    p{part.number}: unreadable  {exc.message}")
            continue
        fs = header.fs.lower() if header else "raw"
        used = f"{human(header.used_blocks * header.block_size)} used" if header else "raw bytes"
        fixed = "  fixed size" if part.number in disk.fixed else ""
        lines.append(f"    p{part.number}: {fs:11} {size:>10}  {used:>14} → {human(part.stream.stored_bytes):>10} "
                     f"{part.stream.compression}, {len(part.stream.pieces)} piece(s){fixed}")
    return lines



