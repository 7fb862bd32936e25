"""A small TFTP client on raw UDP sockets (RFC 1350 + RFC 2347 options + RFC 7440 windowsize), for tests.

It can lose packets on purpose: ``drop(kind, block, seen)`` is asked for every DATA received and every
ACK about to be sent (kind "data" / "ack", block = absolute block number, seen = how often this DATA block
arrived, or this ACK was to be sent, before; dropped copies count); True throws the packet away.
It never retransmits on its own timeout, so every recovery it sees is the server's doing.
"""
from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field
from typing import Callable

RRQ, DATA, ACK, ERROR, OACK = 1, 3, 4, 5, 6


class TftpError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"TFTP error {code}: {message}")
        self.code = code
        self.message = message


@dataclass
class Transfer:
    data: bytes = b""
    oack: dict[str, str] = field(default_factory=dict)
    received: list[int] = field(default_factory=list)  # absolute numbers of every DATA that arrived, in order
    acks: list[int] = field(default_factory=list)  # ACKs actually sent (absolute), 0 = the OACK's


def request(filename: bytes | str, mode: bytes = b"octet", options: dict[str, str] | None = None) -> bytes:
    name = filename.encode() if isinstance(filename, str) else filename
    packet = struct.pack("!H", RRQ) + name + b"\0" + mode + b"\0"
    for key, value in (options or {}).items():
        packet += key.encode() + b"\0" + value.encode() + b"\0"
    return packet


def fetch(port: int, filename: bytes | str, options: dict[str, str] | None = None, *,
          mode: bytes = b"octet", drop: Callable[[str, int, int], bool] | None = None,
          wait: float = 10.0) -> Transfer:
    """Download ``filename`` from 127.0.0.1:port; raises TftpError on an ERROR packet, TimeoutError on silence."""
    drop = drop or (lambda kind, block, seen: False)
    result = Transfer()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(wait)
        sock.sendto(request(filename, mode, options), ("127.0.0.1", port))
        blksize, window, server = 512, 1, None
        expected, in_window, seen, acked = 1, 0, {}, {}
        chunks: list[bytes] = []

        def ack(number: int) -> None:
            acked[number] = acked.get(number, 0) + 1
            if not drop("ack", number, acked[number] - 1):
                result.acks.append(number)
                sock.sendto(struct.pack("!HH", ACK, number & 0xFFFF), server)

        while True:
            packet, source = sock.recvfrom(70000)
            if server is None:
                server = source  # the server's transfer ID
            elif source != server:
                continue
            opcode = struct.unpack("!H", packet[:2])[0]
            if opcode == ERROR:
                code = struct.unpack("!H", packet[2:4])[0]
                raise TftpError(code, packet[4:].rstrip(b"\0").decode(errors="replace"))
            if opcode == OACK:
                if expected == 1 and not result.oack:
                    fields = packet[2:].split(b"\0")[:-1]
                    result.oack = {fields[i].decode(): fields[i + 1].decode() for i in range(0, len(fields), 2)}
                    blksize = int(result.oack.get("blksize", blksize))
                    window = int(result.oack.get("windowsize", window))
                if expected == 1:
                    ack(0)
                continue
            number = struct.unpack("!H", packet[2:4])[0]
            # The absolute number nearest to what we expect (block numbers wrap at 65536).
            absolute = expected + ((number - expected + 0x8000) & 0xFFFF) - 0x8000
            result.received.append(absolute)
            seen[absolute] = seen.get(absolute, 0) + 1
            if drop("data", absolute, seen[absolute] - 1):
                continue
            payload = packet[4:]
            if absolute != expected:  # a duplicate or a gap: say where we are (RFC 7440 section 4)
                in_window = 0
                ack(expected - 1)
                continue
            chunks.append(payload)
            expected += 1
            in_window += 1
            last = len(payload) < blksize
            if in_window == window or last:
                in_window = 0
                ack(absolute)
            if last:
                result.data = b"".join(chunks)
                return result
