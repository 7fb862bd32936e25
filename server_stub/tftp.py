"""A read-only TFTP server (RFC 1350, options per RFC 2347-2349 and windowsize per RFC 7440) on asyncio.

Each transfer runs on its own UDP socket (its own TID, as the RFC asks), so
many clients are served at once by one event loop.  Paths are confined to the
root: '..', absolute paths, NUL bytes and symlinks leading outside are refused.
Dynamic files (the boot script) come from a callback before the disk is asked.
"""
from __future__ import annotations

import asyncio
import io
import logging
import os
import socket
import struct
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)

RRQ, WRQ, DATA, ACK, ERROR, OACK = 1, 2, 3, 4, 5, 6
ERR_UNDEFINED, ERR_NOT_FOUND, ERR_ACCESS, ERR_ILLEGAL, ERR_OPTION = 0, 1, 2, 4, 8
DEFAULT_BLKSIZE = 512
MAX_BLKSIZE = 65464
MAX_WINDOW = 64  # RFC 7440 allows 65535; 64 blocks in flight is plenty and bounds the memory per transfer
RETRIES = 5

# (path, client ip) → content, a file to send (read block by block, like the root's), or None: look in the root
DynamicFiles = Callable[[str, str], bytes | Path | None]
Address = tuple[str, int]


def safe_path(root: str, requested: str) -> str | None:
    """The file under ``root`` that ``requested`` names, or None if it would leave the root."""
    if "\0" in requested or not requested:
        return None
    parts = [p for p in requested.replace("\\", "/").split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts) or not parts:
        return None
    real_root = os.path.realpath(root)
    candidate = os.path.realpath(os.path.join(real_root, *parts))
    if os.path.commonpath([real_root, candidate]) != real_root:
        return None
    return candidate


def _error_packet(code: int, message: str) -> bytes:
    return struct.pack("!HH", ERROR, code) + message.encode()[:200] + b"\0"


def parse_request(packet: bytes) -> tuple[int, str, str, dict[str, str]]:
    opcode = struct.unpack("!H", packet[:2])[0]
    fields = packet[2:].split(b"\0")
    if len(fields) < 3:
        raise ValueError("malformed request")
    filename = fields[0].decode("latin-1")
    mode = fields[1].decode("latin-1").lower()
    options = {}
    rest = fields[2:-1]
    for i in range(0, len(rest) - 1, 2):
        options[rest[i].decode("latin-1").lower()] = rest[i + 1].decode("latin-1")
    return opcode, filename, mode, options


class _Listener(asyncio.DatagramProtocol):
    def __init__(self, server: "TftpServer") -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: Address) -> None:
        task = asyncio.get_running_loop().create_task(self.server.handle(data, addr))
        self.server.transfers.add(task)
        task.add_done_callback(self.server.transfers.discard)


class TftpServer:
    def __init__(self, root: str, dynamic: DynamicFiles | None = None, timeout: float = 1.0) -> None:
        self.root = root
        self.dynamic = dynamic
        self.timeout = timeout
        self.transfers: set[asyncio.Task] = set()
        self.transport: asyncio.DatagramTransport | None = None

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(lambda: _Listener(self), local_addr=(host, port))
        log.info("TFTP serving %s on %s:%d", self.root, host, port)

    def close(self) -> None:
        if self.transport:
            self.transport.close()
        for task in self.transfers:
            task.cancel()

    def _open(self, filename: str, client_ip: str) -> io.BufferedIOBase | None:
        path = filename.lstrip("/")
        if self.dynamic:
            content = self.dynamic(path, client_ip)
            if isinstance(content, Path):
                return open(content, "rb") if content.is_file() else None
            if content is not None:
                return io.BytesIO(content)
        real = safe_path(self.root, filename)
        if real is None or not os.path.isfile(real):
            return None
        return open(real, "rb")

    async def handle(self, packet: bytes, addr: Address) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        bind_ip = self.transport.get_extra_info("sockname")[0] if self.transport else "0.0.0.0"
        sock.bind((bind_ip, 0))
        loop = asyncio.get_running_loop()
        try:
            try:
                opcode, filename, mode, options = parse_request(packet)
            except (ValueError, struct.error, UnicodeDecodeError):
                await loop.sock_sendto(sock, _error_packet(ERR_ILLEGAL, "malformed request"), addr)
                return
            if opcode == WRQ:
                await loop.sock_sendto(sock, _error_packet(ERR_ACCESS, "read-only server"), addr)
                return
            if opcode != RRQ:
                await loop.sock_sendto(sock, _error_packet(ERR_ILLEGAL, "expected a read request"), addr)
                return
            if mode not in ("octet", "netascii"):  # also what is left of a name cut short by a NUL byte
                await loop.sock_sendto(sock, _error_packet(ERR_ILLEGAL, f"unsupported mode {mode[:20]!r}"), addr)
                return
            try:
                source = self._open(filename, addr[0])
            except Exception:  # a bug behind a generated file: the client hears of it, the log says what
                log.exception("TFTP %s: %s", addr[0], filename)
                await loop.sock_sendto(sock, _error_packet(ERR_UNDEFINED, "server error"), addr)
                return
            if source is None:
                log.info("TFTP %s: %s not found", addr[0], filename)
                await loop.sock_sendto(sock, _error_packet(ERR_NOT_FOUND, "file not found"), addr)
                return
            with source:
                await self._send(sock, addr, source, options, filename)
        finally:
            sock.close()

    async def _send(self, sock: socket.socket, addr: Address, source: io.BufferedIOBase, options: dict[str, str],
                    filename: str) -> None:
        blksize, timeout, window, accepted = DEFAULT_BLKSIZE, self.timeout, 1, {}
        if "blksize" in options and options["blksize"].isdigit():
            blksize = max(8, min(int(options["blksize"]), MAX_BLKSIZE))
            accepted["blksize"] = str(blksize)
        if "timeout" in options and options["timeout"].isdigit() and 1 <= int(options["timeout"]) <= 255:
            timeout = float(options["timeout"])
            accepted["timeout"] = options["timeout"]
        if "tsize" in options:
            size = source.seek(0, os.SEEK_END)
            source.seek(0)
            accepted["tsize"] = str(size)
        # RFC 7440: 0 or garbage is not a window; ignore the option. Never answer more than was asked.
        if options.get("windowsize", "").isdigit() and int(options["windowsize"]) >= 1:
            window = min(int(options["windowsize"]), MAX_WINDOW)
            accepted["windowsize"] = str(window)
        loop = asyncio.get_running_loop()
        answer: int | bool | None = None
        if accepted:
            oack = struct.pack("!H", OACK) + b"".join(f"{k}\0{v}\0".encode() for k, v in accepted.items())
            for _ in range(RETRIES):  # the OACK is acknowledged as block 0
                await loop.sock_sendto(sock, oack, addr)
                if (answer := await self._wait_ack(sock, addr, -1, 0, timeout)) is not None:
                    break
            if answer is None or answer is False:
                return
        # Window 1 is RFC 1350's lock-step. Block numbers are counted absolutely here and sent modulo 2^16.
        pending: dict[int, bytes] = {}  # blocks sent (or about to be) but not yet acknowledged
        acked, next_read, last, failures = 0, 1, 0, 0
        while True:
            while not last and next_read <= acked + window:
                pending[next_read] = data = source.read(blksize)
                if len(data) < blksize:
                    last = next_read  # the short block ends the file
                next_read += 1
            top = min(acked + window, last or acked + window)
            for number in range(acked + 1, top + 1):  # the whole window, from the first unacknowledged block
                await loop.sock_sendto(sock, struct.pack("!HH", DATA, number & 0xFFFF) + pending[number], addr)
            answer = await self._wait_ack(sock, addr, acked, top, timeout)
            if answer is False:
                log.info("TFTP %s: %s aborted by the client at block %d", addr[0], filename, acked + 1)
                return
            if answer is None:
                failures += 1
                if failures >= RETRIES:
                    log.info("TFTP %s: %s abandoned at block %d", addr[0], filename, acked + 1)
                    return
                continue
            failures = 0
            for number in range(acked + 1, answer + 1):
                del pending[number]
            acked = answer
            if acked == last:
                log.info("TFTP %s: sent %s", addr[0], filename)
                return

    async def _wait_ack(self, sock: socket.socket, addr: Address, acked: int, top: int,
                        timeout: float) -> int | bool | None:
        """The absolute block number that a client ACK in (acked, top] names; None on timeout; False on ERROR.

        ACKs of blocks before the window (duplicates, or a client asking for a resend of the window) are
        ignored: the timeout resends the window, so a duplicate never doubles the traffic (Sorcerer's Apprentice).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (remaining := deadline - loop.time()) > 0:
            try:
                reply, source = await asyncio.wait_for(loop.sock_recvfrom(sock, 65536), remaining)
            except asyncio.TimeoutError:
                return None
            if source != addr:  # a stranger on our TID: tell it off, keep waiting
                await loop.sock_sendto(sock, _error_packet(5, "unknown transfer ID"), source)
                continue
            if len(reply) >= 4:
                opcode, number = struct.unpack("!HH", reply[:4])
                if opcode == ERROR:
                    return False
                step = (number - acked) & 0xFFFF
                if opcode == ACK and 1 <= step <= top - acked:
                    return acked + step
        return None
