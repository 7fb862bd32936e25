"""Incremental deploys of chunked images: when the target's own blocks can be reused, and the restore itself.

A disk is a candidate only when its partition table already has the planned layout (each partition at the
same start with the same size): then each chunked partition whose filesystem partclone reads as the image's
(same type and block size, big enough) is brought to the version in place (chunkpath.restore_incremental).
Anything else is a full deploy of that partition, with a log line saying why.  Either way the blocks the
version uses end up exactly the version's: each was hashed and matched, or written from a checked chunk.
"""
from __future__ import annotations

import logging
import os

from contract import chunkindex
from imager import chunkpath
from imager.chunkpath import TargetUnreadable, Transfer
from imager.chunkstore import ChunkReader
from imager.errors import ImagerError, InvalidImage
from imager.partitions import Layout, read_layout
from imager.progress import Progress

log = logging.getLogger(__name__)


def reuse_disk(target_path: str, planned: Layout) -> bool:
    """Whether the target's partitions may be brought to the version in place (the log says why not)."""
    reason = why_not_reuse_disk(target_path, planned)
    if reason:
        log.info("full deploy: %s", reason)
    return reason is None


def why_not_reuse_disk(target_path: str, planned: Layout) -> str | None:
    """None when the target's table has the planned layout already; else why its partitions cannot be reused."""
    try:
        current = read_layout(target_path)
    except (ImagerError, OSError, ValueError) as exc:
        return f"{target_path} holds no partition table that can be read ({exc})"
    have = {(p.number, p.start, p.sectors) for p in current.partitions}
    want = {(p.number, p.start, p.sectors) for p in planned.partitions}
    if current.label != planned.label or current.sector_size != planned.sector_size or have != want:
        return f"{target_path}'s partition table differs from the image's layout"
    return None


class FromChunkStore:
    """A stream source whose chunked partitions come from a chunk store (a node's directory, or over HTTP)."""

    def chunk_reader(self) -> ChunkReader:
        raise NotImplementedError

    def restore_chunks(self, image_dir: str, file: str, tool: str, device: str, progress: Progress,
                       transfer: Transfer, reuse: bool = False, shrunk: bool = False) -> None:
        restore_chunked(image_dir, file, tool, device, self.chunk_reader(), progress, transfer, reuse, shrunk)


def restore_chunked(image_dir: str, index_file: str, tool: str, device: str, reader: ChunkReader,
                    progress: Progress, transfer: Transfer, reuse: bool, shrunk: bool = False) -> None:
    """One chunked partition onto ``device``: in place when ``reuse`` and its filesystem allows, else in full."""
    try:
        index = chunkindex.read(os.path.join(image_dir, index_file))
    except chunkindex.IndexError_ as exc:
        raise InvalidImage(str(exc)) from exc
    reason = chunkpath.why_not_incremental(index, tool, device) if reuse else None
    if reuse and reason is None:
        log.info("%s: incremental: only the blocks that differ from %s are fetched and written", device, index_file)
        reused_before = transfer.reused
        try:
            chunkpath.restore_incremental(index, reader, device, progress, transfer)
            return
        except TargetUnreadable as exc:
            reason = str(exc)
            transfer.count(reused=reused_before - transfer.reused)  # it is all written anew: none of it reused
    if reuse:
        log.info("%s: full deploy: %s", device, reason)
    chunkpath.restore_full(index, reader, tool, device, progress, transfer, shrunk=shrunk)
