"""chunkpath's plan for repeated chunks (pure logic), and a full restore that fetches each repeated chunk once
(real partclone on a loop device, the store read through LocalChunks)."""
from __future__ import annotations

import collections
import hashlib
import subprocess
from pathlib import Path

import pytest

from contract import chunkindex
from contract.chunkindex import Chunk
from imager import chunkpath
from imager.chunkstore import LocalChunks
from imager.ops.capture import capture_image
from imager.progress import Progress
from tests.imager.ops.test_capture_deploy_on_loop_devices import blank, make_disk
from tests.qemu.lab import attached


def chunks(names: str) -> list[Chunk]:
    """One chunk a letter: the same letter, the same chunk."""
    return [Chunk(at * 16, 16, 100, hashlib.sha256(name.encode()).hexdigest()) for at, name in enumerate(names)]


def plan(names: str, held_most: int = chunkpath.REPEATS_HELD) -> str:
    """F: fetched and dropped; K: fetched and kept; k: from memory, kept; m: from memory, its last use."""
    return "".join(("K" if step.keep else "F") if step.fetch else ("k" if step.keep else "m")
                   for step in chunkpath.repeat_plan(chunks(names), held_most))


def test_a_repeated_chunk_is_fetched_once_and_kept_until_its_last_use() -> None:
    assert plan("abcd") == "FFFF"
    assert plan("azbzcz") == "FKFkFm"
    assert plan("zzzz") == "Kkkm"
    assert plan("abab") == "KKmm"


def test_no_more_than_held_most_repeated_chunks_are_kept_at_once() -> None:
    assert plan("abcabc", held_most=2) == "KKFmmF"
    assert plan("abacbc", held_most=1) == "KFmKFm"   # a's memory is freed at its last use, then c is kept


class CountingChunks(LocalChunks):
    """The real store, each fetch's chunk recorded."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.asked: list[str] = []

    def fetch(self, chunk: Chunk, raw_size: int) -> bytes:
        self.asked.append(chunk.sha256)
        return super().fetch(chunk, raw_size)


@pytest.mark.root
def test_a_full_restore_fetches_each_repeated_chunk_once_and_is_exact(tmp_path: Path) -> None:
    make_disk(tmp_path / "source.img", "gpt")
    with attached(tmp_path / "source.img") as source:
        done = capture_image(source, str(tmp_path / "store"), "img", Progress(), image_type="multipart",
                             image_format="chunked")
    index = chunkindex.read(str(tmp_path / "store" / ".images" / done["version"] / "d1p1.cidx"))
    repeats = collections.Counter(c.sha256 for c in index.chunks)
    assert max(repeats.values()) > 1, "the filesystem was expected to repeat a chunk (its zeroed metadata)"
    reader = CountingChunks(str(tmp_path / "store"))
    blank(tmp_path / "target.img", 200)
    with attached(tmp_path / "target.img") as target:
        subprocess.run(["sgdisk", "-n1:2048:+40M", target], check=True, capture_output=True)
        subprocess.run(["partprobe", target], check=False, capture_output=True)
        chunkpath.restore_full(index, reader, "partclone.extfs", f"{target}p1", Progress(), chunkpath.Transfer())
        stream = subprocess.run(["partclone.extfs", "-c", "-a0", "-q", "-s", f"{target}p1", "-o", "-"],
                                capture_output=True, check=True).stdout
    assert sorted(reader.asked) == sorted(repeats)   # every distinct chunk, once
    image = hashlib.sha256(index.header + index.bitmap)
    store = LocalChunks(str(tmp_path / "store"))
    for chunk in index.chunks:
        image.update(store.fetch(chunk, chunk.used_blocks * index.info.block_size))
    assert hashlib.sha256(stream).hexdigest() == image.hexdigest()
