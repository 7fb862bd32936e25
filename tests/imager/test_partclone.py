import struct

from imager.filesystems import CONTAINER, SWAP, tool_for
from imager.partclone import HEADER_SIZE, RAW, clone_argv, parse_header


def header(total=65536, used=9513, block=1024):
    head = struct.pack("<16s14s4sH16sQQQQI", b"partclone-image\0", b"0.3.23", b"0002", 0xC0DE, b"EXTFS",
                       total * block, total, used, used, block)
    return head + bytes(HEADER_SIZE - len(head))


def test_header_gives_the_stream_size():
    parsed = parse_header(header())
    assert parsed.fs == "EXTFS" and parsed.used_blocks == 9513 and parsed.block_size == 1024
    # Measured with partclone 0.3.23 on a 64 MiB ext4: 9,749,618 bytes with -a0.
    assert parsed.stream_size == 9749618


def test_non_partclone_data_has_no_header():
    assert parse_header(bytes(4096)) is None
    assert parse_header(header()[:50]) is None


def test_filesystems_map_to_partclone_flavours():
    assert tool_for("ext4") == "extfs" and tool_for("vfat") == "fat" and tool_for("ntfs") == "ntfs"
    assert tool_for("crypto_BitLocker") == RAW and tool_for("") == RAW
    assert tool_for("swap") == SWAP and tool_for("", "extended") == CONTAINER
    assert clone_argv("extfs", "/dev/vda1")[:3] == ["partclone.extfs", "-c", "-a0"]
    assert clone_argv(RAW, "/dev/vda1")[0] == "partclone.dd"
