"""imager verify: every stream decompressed, every file checked, nothing written (no disk, no root)."""
from __future__ import annotations

import hashlib
import json
import os

import pytest
import zstandard

from imager import cli
from imager.progress import Progress
from imager.verify import require_intact, stream_bytes, verify_image
from imager.errors import ChecksumMismatch

RAW = os.urandom(256 * 1024) + bytes(768 * 1024)


def _entry(data: bytes) -> dict:
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def make_image(path, stream: bytes | None = None) -> str:
    """A raw image: one zstd stream and a small file beside it, with their manifest."""
    path.mkdir()
    stream = zstandard.ZstdCompressor(write_checksum=True).compress(RAW) if stream is None else stream
    note = b"a small file read whole\n"
    (path / "d1.raw.zst").write_bytes(stream)
    (path / "notes.txt").write_bytes(note)
    image = {"format": "imager-image", "version": 1, "name": "raw1", "created": "2026-12-05T19:00:00Z",
             "image_type": "raw", "compression": {"algorithm": "zstd", "level": 2}, "tools": {}, "source": {},
             "disks": [{"index": 1, "mode": "raw", "file": "d1.raw.zst", "size_bytes": 2 * len(RAW),
                        "sector_size": 512, "raw_bytes": len(RAW)}],
             "files": {"d1.raw.zst": _entry(stream), "notes.txt": _entry(note)}}
    (path / "manifest.json").write_text(json.dumps(image))
    return str(path)


def damage(path: str, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))


def test_an_intact_image_verifies_with_one_line_per_file(tmp_path, capsys):
    image = make_image(tmp_path / "raw1")
    before = {name: os.stat(os.path.join(image, name)).st_mtime_ns for name in os.listdir(image)}
    assert cli.main(["verify", image]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("ok   d1.raw.zst ") and out[1].startswith("ok   notes.txt ")
    assert json.loads(out[-1]) == {"verified_files": 2}
    assert {name: os.stat(os.path.join(image, name)).st_mtime_ns for name in os.listdir(image)} == before


def test_a_damaged_stream_is_named_and_exits_1(tmp_path, capsys):
    image = make_image(tmp_path / "raw1")
    damage(os.path.join(image, "d1.raw.zst"), 100)
    assert cli.main(["verify", image]) == 1
    captured = capsys.readouterr()
    assert "BAD  d1.raw.zst" in captured.out and "ok   notes.txt" in captured.out
    assert "error (checksum_mismatch)" in captured.err and "d1.raw.zst" in captured.err
    assert "Traceback" not in captured.err


def test_a_stream_whose_checksum_matches_but_does_not_decompress_is_bad(tmp_path):
    """Hashing alone (the old verify) passes a stream stored damaged; decompressing it does not."""
    good = zstandard.ZstdCompressor(write_checksum=True).compress(RAW)
    broken = bytearray(good)
    broken[len(broken) - 2] ^= 0xFF          # inside zstd's frame checksum: the data no longer matches it
    image = make_image(tmp_path / "raw1", bytes(broken))   # the manifest lists the damaged bytes' SHA-256
    results = {r.name: r for r in verify_image(image)}
    assert results["notes.txt"].ok
    assert not results["d1.raw.zst"].ok and "not a valid zstd stream" in results["d1.raw.zst"].reason
    with pytest.raises(ChecksumMismatch, match="d1.raw.zst"):
        require_intact(image)
    assert cli.main(["verify", image]) == 1


def test_verifying_reports_overall_progress_over_the_stored_bytes(tmp_path):
    image = make_image(tmp_path / "raw1")
    sent: list[dict] = []
    require_intact(image, Progress([sent.append], interval=0))
    stages = [s["stage"] for s in sent]
    assert "verifying d1.raw.zst" in stages and "verifying notes.txt" in stages
    assert sent[-1]["overall_percent"] == 100.0


def test_the_deploys_expected_bytes_are_the_manifests_streams(tmp_path):
    image = make_image(tmp_path / "raw1")
    from imager import manifest
    assert stream_bytes(manifest.load(image)) == len(RAW)
