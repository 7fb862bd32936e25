"""Split pieces and compression told from names and magic bytes (no root)."""
from __future__ import annotations

import gzip

import pytest

from imager.errors import InvalidImage
from imager.foreign.model import Stream
from imager.foreign.streams import check_pieces, head, sniff_compression


def pieces(tmp_path, names, sizes):
    paths = []
    for name, size in zip(names, sizes):
        (tmp_path / name).write_bytes(b"x" * size)
        paths.append(str(tmp_path / name))
    return Stream(paths, "none")


def test_whole_split_streams_pass(tmp_path):
    check_pieces(pieces(tmp_path, ["d1p2.img", "d1p2.img.001", "d1p2.img.002"], [100, 100, 7]))
    check_pieces(pieces(tmp_path, ["sda1.ext4-ptcl-img.zst.aa", "sda1.ext4-ptcl-img.zst.ab"], [50, 3]))


def test_a_missing_piece_is_named(tmp_path):
    with pytest.raises(InvalidImage, match=r"\.002 missing"):
        check_pieces(pieces(tmp_path, ["d1p2.img", "d1p2.img.001", "d1p2.img.003"], [100, 100, 7]))
    with pytest.raises(InvalidImage, match=r"\.ab missing"):
        check_pieces(pieces(tmp_path, ["sda1.ext4-ptcl-img.zst.aa", "sda1.ext4-ptcl-img.zst.ac"], [50, 3]))


def test_a_piece_cut_short_in_the_middle_is_named(tmp_path):
    with pytest.raises(InvalidImage, match="d1p2.img.001: shorter"):
        check_pieces(pieces(tmp_path, ["d1p2.img", "d1p2.img.001", "d1p2.img.002"], [100, 60, 100]))


def test_compression_is_told_by_magic_and_partimage_is_not_mistaken_for_garbage(tmp_path):
    (tmp_path / "a").write_bytes(gzip.compress(b"PaRtImAgE-VoLuMe" + bytes(200)))
    (tmp_path / "b").write_bytes(b"partclone-image\x000.3.23" + bytes(200))
    (tmp_path / "c").write_bytes(b"\x00\x01garbage")
    assert sniff_compression(str(tmp_path / "a")) == "gzip"
    assert head(Stream([str(tmp_path / "a")], "gzip"), 16) == b"PaRtImAgE-VoLuMe"
    assert sniff_compression(str(tmp_path / "b")) == "none"
    with pytest.raises(InvalidImage, match="neither gzip"):
        sniff_compression(str(tmp_path / "c"))
    assert sniff_compression(str(tmp_path / "c"), raw=True) == "none"
