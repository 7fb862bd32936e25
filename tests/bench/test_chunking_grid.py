"""The grid chunker bench/chunking.py measures (issue 17): exact restores, only changed ranges written."""
from __future__ import annotations

import hashlib
import random
import subprocess
from pathlib import Path

import pytest
import zstandard

from bench import chunking_grid as grid
from imager.partclone import clone_argv, restore_argv
from tests.disktools import attached, mounted, tree_checksums

GRID_BLOCKS = 64  # 256 KiB of 4 KiB blocks: small ranges, so a small filesystem has many


def naive_runs(bits: int) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    position = 0
    while bits >> position:
        if bits >> position & 1:
            start = position
            while bits >> position & 1:
                position += 1
            runs.append((start, position - start))
        else:
            position += 1
    return runs


def test_used_runs_are_the_runs_of_set_bits() -> None:
    rng = random.Random(17)
    samples = [0, 1, (1 << 64) - 1, 1 << 63, 0b1011_0111] + [rng.getrandbits(64) for _ in range(300)]
    samples += [rng.getrandbits(64) & rng.getrandbits(64) & rng.getrandbits(64) for _ in range(300)]
    for bits in samples:
        assert grid.used_runs(bits) == naive_runs(bits), bin(bits)


def test_range_bits_read_partclone_bitmap_lsb_first() -> None:
    # partclone: block n is bit n % 8 of byte n // 8.  Range 1 of an 8-block grid is byte 1.
    bitmap = bytes([0b0000_0001, 0b1000_0001])
    assert grid.used_runs(grid.range_bits(bitmap, 8, 0)) == [(0, 1)]
    assert grid.used_runs(grid.range_bits(bitmap, 8, 1)) == [(0, 1), (7, 1)]
    assert grid.used_runs(grid.range_bits(bitmap, 16, 0)) == [(0, 1), (8, 1), (15, 1)]


def test_a_chunk_two_workers_hold_at_once_is_written_once(tmp_path: Path) -> None:
    claims = grid._Claims()
    path = grid.chunk_path(tmp_path, "ab" * 32)
    assert claims.claim("ab" * 32, path)  # the first worker writes it
    assert not claims.claim("ab" * 32, path)  # the second, before the file exists, does not


def _image(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    with open(path, "wb") as f:
        f.truncate(96 * 1024 * 1024)
    return path


def _capture(device: str, out: Path) -> str:
    with open(out, "wb") as f:
        subprocess.run(clone_argv("extfs", device), stdout=f, stderr=subprocess.DEVNULL, check=True)
    return hashlib.sha256(out.read_bytes()).hexdigest()


def _stream_sha256(device: str) -> str:
    done = subprocess.run(clone_argv("extfs", device), capture_output=True, check=True)
    return hashlib.sha256(done.stdout).hexdigest()


def _restore(stream: Path, device: str) -> None:
    with open(stream, "rb") as f:
        subprocess.run(restore_argv("extfs", device), stdin=f, capture_output=True, check=True)


@pytest.mark.root
def test_seeded_restore_onto_v1_is_exact_and_fetches_and_writes_only_changed_ranges(tmp_path: Path) -> None:
    rng = random.Random(17)
    store, v1, v2 = tmp_path / "store", tmp_path / "v1.pcl", tmp_path / "v2.pcl"
    with attached(_image(tmp_path, "source.img")) as source, attached(_image(tmp_path, "target.img")) as target:
        subprocess.run(["mkfs.ext4", "-q", "-F", source], check=True)
        with mounted(source, readonly=False) as root:
            for n in range(40):
                (root / f"file-{n:02}.bin").write_bytes(rng.randbytes(256 * 1024))
        _capture(source, v1)
        index1, first = grid.capture(v1, store, GRID_BLOCKS, 2)
        names = [c.sha256 for c in index1.chunks]
        assert first.new_chunks == len(set(names)) > 10  # a chunk twice in v1 (zeros) is stored once
        assert first.new_stored_bytes == sum(p.stat().st_size for p in store.rglob("*.zst"))

        with mounted(source, readonly=False) as root:  # v2: two files rewritten, one added
            for n in (3, 30):
                (root / f"file-{n:02}.bin").write_bytes(rng.randbytes(256 * 1024))
            (root / "added.bin").write_bytes(rng.randbytes(1024 * 1024))
            expected_tree = tree_checksums(root)
        v2_sha = _capture(source, v2)
        index2, second = grid.capture(v2, store, GRID_BLOCKS, 2)
        assert 0 < second.new_chunks < len(index2.chunks) // 2  # most of v2 was already stored

        _restore(v1, target)
        seeded = grid.restore_seeded(index2, store, target, 2)
        raw_v2 = index2.info.used_blocks * index2.info.block_size
        assert _stream_sha256(target) == v2_sha
        assert seeded.reused_bytes + seeded.written_bytes == raw_v2
        assert 1024 * 1024 <= seeded.written_bytes < raw_v2 // 3
        assert 0 < seeded.fetched_bytes <= second.new_stored_bytes
        with mounted(target) as root:
            assert tree_checksums(root) == expected_tree

        again = grid.restore_seeded(index2, store, target, 2)  # nothing left to do
        assert (again.fetched_bytes, again.written_bytes, again.reused_bytes) == (0, 0, raw_v2)


@pytest.mark.root
def test_full_restore_is_exact_and_refuses_a_damaged_chunk(tmp_path: Path) -> None:
    rng = random.Random(18)
    store, v1 = tmp_path / "store", tmp_path / "v1.pcl"
    with attached(_image(tmp_path, "source.img")) as source, attached(_image(tmp_path, "target.img")) as target:
        subprocess.run(["mkfs.ext4", "-q", "-F", source], check=True)
        with mounted(source, readonly=False) as root:
            for n in range(10):
                (root / f"file-{n}.bin").write_bytes(rng.randbytes(512 * 1024))
        v1_sha = _capture(source, v1)
        index, _ = grid.capture(v1, store, GRID_BLOCKS, 2)
        assert grid.restore_full(index, store, target, 2) > 0
        assert _stream_sha256(target) == v1_sha

        victim = max(index.chunks, key=lambda c: c.used_blocks)
        path = grid.chunk_path(store, victim.sha256)
        data = bytearray(zstandard.ZstdDecompressor().decompress(path.read_bytes()))
        data[100] ^= 0xFF  # same size, one byte changed: only the name's hash can tell
        path.write_bytes(zstandard.ZstdCompressor().compress(bytes(data)))
        with pytest.raises(ValueError, match=f"chunk {victim.sha256} is damaged"):
            grid.restore_full(index, store, target, 2)
        subprocess.run(["blkdiscard", "-f", target], check=True)  # nothing on the target matches: all fetched
        with pytest.raises(ValueError, match=f"chunk {victim.sha256} is damaged"):
            grid.restore_seeded(index, store, target, 2)
