"""Checking an image without writing anything: ``imager verify`` and ``imager deploy --verify-first``.

Every stream is read whole and decompressed (zstd's frame checksum guards the data) while the
SHA-256 of its stored bytes is compared with the manifest; the small files (tables, LVM metadata)
are hashed.  Nothing is written: the decompressed bytes are counted and dropped.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

from contract import chunkindex
from imager import datapath, manifest
from imager.chunkstore import LocalChunks, store_root
from imager.errors import ChecksumMismatch, ImagerError
from imager.manifest import Manifest
from imager.progress import Progress


@dataclass
class FileCheck:
    name: str
    stored_bytes: int
    ok: bool
    reason: str = ""   # why not ok: the checksum, the size, a corrupt zstd stream


class Discard:
    """Where decompressed bytes go when only their checksum matters."""

    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        pass


def streams(image: Manifest) -> list[str]:
    """The zstd streams a deploy decompresses (partitions, logical volumes, a raw disk), in restore order."""
    names: list[str] = []
    for disk in image["disks"]:
        if disk.get("mode") == "raw":
            names.append(disk["file"])
            continue
        for part in disk.get("partitions", []):
            if part.get("file") and not part.get("chunks"):  # a chunk index is checked with its chunks
                names.append(part["file"] or "")
            group = part.get("lvm")
            names += [vol["file"] or "" for vol in (group["volumes"] if group else []) if vol.get("file")]
    return names


def stream_bytes(image: Manifest, partition: int | None = None) -> int:
    """The decompressed bytes a deploy streams (of one partition only, when given): Progress.expect's total."""
    total = 0
    for disk in image["disks"]:
        if disk.get("mode") == "raw":
            total += disk.get("raw_bytes", 0)
            continue
        for part in disk.get("partitions", []):
            if partition is None or part["number"] == partition:
                total += part.get("raw_bytes", 0)
    return total


def verify_image(image_dir: str, progress: Progress | None = None,
                 on_file: Callable[[FileCheck], None] | None = None) -> list[FileCheck]:
    """Every file of the image against its manifest entry; ``on_file`` hears each result as it comes."""
    image = manifest.load(image_dir)
    files = image["files"]
    stream_names = set(streams(image))
    if progress is not None:
        progress.expect(sum(meta["size"] for meta in files.values()))
    results = []
    chunks: LocalChunks | None = None
    checked: set[str] = set()  # chunks shared by two indexes are read once
    for name in sorted(files):
        meta = files[name]
        path = os.path.join(image_dir, name)
        if progress is not None:
            progress.set_stage(f"verifying {name}", total=meta["size"])
        try:
            if name in stream_names:
                with open(path, "rb") as src:
                    datapath.decompress_stream(src, name, Discard(), expected_sha256=meta["sha256"],  # type: ignore[arg-type]
                                               expected_size=meta["size"],
                                               on_stored=progress.add if progress is not None else None)
                check = FileCheck(name, meta["size"], True)
            else:
                size, sha = datapath.hash_file(path)
                if progress is not None:
                    progress.add(size)
                reason = "" if size == meta["size"] and sha == meta["sha256"] else \
                    f"{name}: SHA-256 {sha} ({size} bytes) does not match the manifest's {meta['sha256']}"
                if not reason and name.endswith(chunkindex.INDEX_SUFFIX):
                    reason = check_chunks(path, chunks or LocalChunks(store_root(image_dir)), checked)
                check = FileCheck(name, size, not reason, reason)
        except ImagerError as exc:  # ChecksumMismatch, or InvalidImage: not a valid zstd stream
            check = FileCheck(name, meta["size"], False, exc.message)
        except OSError as exc:
            check = FileCheck(name, meta["size"], False, f"{name} cannot be read: {exc.strerror or exc}")
        if progress is not None:
            progress.flush()
        if on_file is not None:
            on_file(check)
        results.append(check)
    return results


def check_chunks(index_path: str, chunks: LocalChunks, checked: set[str]) -> str:
    """Every chunk an index names: present, decompressing to bytes whose SHA-256 is its name. '' or why not."""
    try:
        index = chunkindex.read(index_path)
    except chunkindex.IndexError_ as exc:
        return str(exc)
    block = index.info.block_size
    bad: list[str] = []
    for chunk in index.chunks:
        if chunk.sha256 in checked:
            continue
        try:
            chunks.fetch(chunk, chunk.used_blocks * block)
            checked.add(chunk.sha256)
        except ImagerError:
            bad.append(chunk.sha256)
    if bad:
        return (f"{os.path.basename(index_path)}: {len(bad)} of its {len(index.chunks)} chunks are missing or "
                f"damaged in {chunks.dir} (first: {bad[0]})")
    return ""


def require_intact(image_dir: str, progress: Progress | None = None,
                   on_file: Callable[[FileCheck], None] | None = None) -> int:
    """``verify_image``, raising ChecksumMismatch naming the damaged files; returns the number of files."""
    results = verify_image(image_dir, progress, on_file)
    bad = [r.name for r in results if not r.ok]
    if bad:
        raise ChecksumMismatch(f"{len(bad)} file(s) of {image_dir} do not match the manifest: {', '.join(bad)}",
                               hint="The image is damaged: capture it again, or deploy another copy of it. "
                                    "Nothing was written.")
    return len(results)
