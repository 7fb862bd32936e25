"""A minimal Windows registry hive (regf) written from scratch, for tests.

hivex edits hives but cannot create one: this writes the smallest file it
accepts — a base block, one 4 KiB hbin holding the root key (nk), its security
cell (sk) and one free cell — and the tests grow it with hivex itself.
Layout per the public regf format notes: base block 4096 bytes with an XOR
checksum of its first 508 bytes at 0x1FC; offsets are relative to the first hbin.
"""
from __future__ import annotations

import struct

BASE_BLOCK = 4096
HBIN = 4096
HBIN_HEADER = 0x20
# FILETIME of 2024-01-01: any plausible timestamp will do.
FILETIME = 133485408000000000
NONE = 0xFFFFFFFF
KEY_HIVE_ENTRY, KEY_NO_DELETE, KEY_COMP_NAME = 0x0004, 0x0008, 0x0020
# Self-relative security descriptor: revision 1, control SE_SELF_RELATIVE|SE_DACL_PRESENT,
# no owner/group/SACL, DACL at offset 20 = an empty ACL (revision 2, size 8, 0 ACEs).
SECURITY_DESCRIPTOR = struct.pack("<BBHIIII", 1, 0, 0x8004, 0, 0, 0, 20) + struct.pack("<BBHHH", 2, 0, 8, 0, 0)


def _cell(payload: bytes) -> bytes:
    """An allocated cell: negative size (header included), padded to 8 bytes."""
    size = (4 + len(payload) + 7) // 8 * 8
    return struct.pack("<i", -size) + payload.ljust(size - 4, b"\0")


def _root_nk(name: str, sk_offset: int) -> bytes:
    raw = name.encode("ascii")
    return struct.pack(
        "<2sHQIIIIIIIIIIIIIIIHH", b"nk", KEY_HIVE_ENTRY | KEY_NO_DELETE | KEY_COMP_NAME, FILETIME, 0,
        NONE,           # parent: none for the root
        0, 0,           # subkeys, volatile subkeys
        NONE, NONE,     # their lists
        0, NONE,        # values, value list
        sk_offset, NONE,  # security cell, class name
        0, 0, 0, 0, 0,  # largest subkey name / class / value name / value data, workvar
        len(raw), 0) + raw


def _sk(self_offset: int) -> bytes:
    # The only sk cell: the list of security cells is a ring of one, used once (by the root).
    return struct.pack("<2sHIIII", b"sk", 0, self_offset, self_offset, 1, len(SECURITY_DESCRIPTOR)) \
        + SECURITY_DESCRIPTOR


def checksum(base: bytes) -> int:
    value = 0
    for (word,) in struct.iter_unpack("<I", base[:0x1FC]):
        value ^= word
    return {0: 1, NONE: 0xFFFFFFFE}.get(value, value)


def empty_hive(root_name: str = "ROOT", file_name: str = "SYSTEM") -> bytes:
    """An empty hive: a root key and nothing else."""
    nk_offset = HBIN_HEADER
    nk_len = len(_cell(_root_nk(root_name, 0)))
    sk_offset = nk_offset + nk_len
    cells = _cell(_root_nk(root_name, sk_offset)) + _cell(_sk(sk_offset))
    free = HBIN - HBIN_HEADER - len(cells)
    cells += struct.pack("<i", free) + bytes(free - 4)  # positive size: a free cell up to the end
    hbin = struct.pack("<4sIIQQI", b"hbin", 0, HBIN, 0, FILETIME, 0) + cells
    base = bytearray(BASE_BLOCK)
    struct.pack_into("<4sIIQIIIIIII", base, 0, b"regf", 1, 1, FILETIME, 1, 3, 0, 1, nk_offset, HBIN, 1)
    name = file_name.encode("utf-16-le")[:64]
    base[0x30:0x30 + len(name)] = name
    struct.pack_into("<I", base, 0x1FC, checksum(bytes(base)))
    return bytes(base) + hbin
