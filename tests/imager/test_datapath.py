import hashlib
import io
import os

import pytest

from imager import datapath
from imager.errors import ChecksumMismatch, InvalidImage


def payload(size=3 * 1024 * 1024 + 17):
    return os.urandom(size // 2) + bytes(size - size // 2)


def test_round_trip_is_exact_and_hashes_the_stored_bytes(tmp_path):
    data = payload()
    seen = []
    result = datapath.compress_to_file(io.BytesIO(data), str(tmp_path / "p.zst"), threads=2,
                                       on_head=seen.append)
    stored = (tmp_path / "p.zst").read_bytes()
    assert result.raw_bytes == len(data)
    assert result.stored_bytes == len(stored) < len(data)
    assert result.sha256 == hashlib.sha256(stored).hexdigest()
    assert seen and data.startswith(seen[0])
    out = io.BytesIO()
    back = datapath.decompress_from_file(str(tmp_path / "p.zst"), out, expected_sha256=result.sha256,
                                         expected_size=result.stored_bytes)
    assert out.getvalue() == data and back.raw_bytes == len(data)


def test_a_flipped_byte_is_caught_by_zstd(tmp_path):
    result = datapath.compress_to_file(io.BytesIO(payload()), str(tmp_path / "p.zst"))
    raw = bytearray((tmp_path / "p.zst").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (tmp_path / "p.zst").write_bytes(bytes(raw))
    with pytest.raises(InvalidImage, match="not a valid zstd stream") as info:  # the frame checksum fires first
        datapath.decompress_from_file(str(tmp_path / "p.zst"), io.BytesIO(), expected_sha256=result.sha256)
    assert info.value.code == "invalid_image"


def test_a_valid_zstd_stream_that_is_not_the_manifests_is_a_checksum_mismatch(tmp_path):
    """Only our SHA-256 can tell: zstd finds nothing wrong with another image's stream of the same size."""
    result = datapath.compress_to_file(io.BytesIO(payload()), str(tmp_path / "p.zst"))
    other = datapath.compress_to_file(io.BytesIO(payload()), str(tmp_path / "other.zst"))
    out = io.BytesIO()
    with pytest.raises(ChecksumMismatch, match="does not match the manifest's") as info:
        datapath.decompress_from_file(str(tmp_path / "other.zst"), out, expected_sha256=result.sha256,
                                      expected_size=other.stored_bytes)
    assert info.value.code == "checksum_mismatch"
    assert len(out.getvalue()) == other.raw_bytes  # the stream itself was fine, to its end


def test_a_truncated_file_is_caught(tmp_path):
    result = datapath.compress_to_file(io.BytesIO(payload()), str(tmp_path / "p.zst"))
    with open(tmp_path / "p.zst", "r+b") as f:
        f.truncate(result.stored_bytes - 100)
    with pytest.raises(ChecksumMismatch, match="the manifest says") as info:
        datapath.decompress_from_file(str(tmp_path / "p.zst"), io.BytesIO(), expected_sha256=result.sha256,
                                      expected_size=result.stored_bytes)
    assert info.value.code == "checksum_mismatch"
