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
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)

RRQ, WRQ, DATA, ACK, ERROR, OACK = 1, 2, 3, 4, 5, 6
ERR_UNDEFINED, ERR_NOT_FOUND, ERR_ACCESS, ERR_ILLEGAL, ERR_OPTION = 0, 1, 2, 4, 8
DEFAULT_BLKSIZE = 512
MAX_BLKSIZE = 65464
MAX_WINDOW = 64  # RFC 7440 allows 65535; 64 blocks in flight is plenty and bounds the memory per transfer
RETRIES = 5
MAX_TIMEOUT = 2  # seconds a client may ask to wait for each ACK: longer asks are left out of the OACK
MAX_TRANSFERS = 512  # at once, all clients: each holds a socket
MAX_TRANSFERS_PER_CLIENT = 16  # at once, from one address

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


class TftpError(Exception):
    """A request refused: the ERROR packet's code and message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True)
class Request:
    """A read request, its options checked: blksize, timeout, tsize and windowsize are numbers in range."""

    filename: str
    mode: str
    options: dict[str, str]


# Ranges of the options we understand (RFC 2348, 2349, 7440); others are ignored, as RFC 2347 asks.
_OPTION_RANGES = {"blksize": (8, 10**9), "timeout": (1, 255), "tsize": (0, 10**18), "windowsize": (1, 65535)}


def parse_request(packet: bytes) -> Request:
    """The read request in ``packet``; TftpError (with the code to answer) for anything else.

    Pure and total: any bytes give a Request or a TftpError, never another exception.
    """
    if len(packet) < 2:
        raise TftpError(ERR_ILLEGAL, "malformed request")
    opcode = int.from_bytes(packet[:2], "big")
    if opcode == WRQ:
        raise TftpError(ERR_ACCESS, "read-only server")
    if opcode != RRQ:
        raise TftpError(ERR_ILLEGAL, "expected a read request")
    fields = packet[2:].split(b"\0")
    if len(fields) < 3 or fields[-1] != b"":
        raise TftpError(ERR_ILLEGAL, "malformed request")
    filename = fields[0].decode("latin-1")
    mode = fields[1].decode("latin-1").lower()
    if mode not in ("octet", "netascii"):  # also what is left of a name cut short by a NUL byte
        raise TftpError(ERR_ILLEGAL, f"unsupported mode {mode[:20]!r}")
    rest = fields[2:-1]
    if len(rest) % 2:
        raise TftpError(ERR_OPTION, "an option without a value")
    options: dict[str, str] = {}
    for i in range(0, len(rest), 2):
        name, value = rest[i].decode("latin-1").lower(), rest[i + 1].decode("latin-1")
        if name in options:
            raise TftpError(ERR_OPTION, f"option {name[:20]!r} given twice")
        if name in _OPTION_RANGES:
            low, high = _OPTION_RANGES[name]
            # At most 19 digits: int() of a huge digit string is slow or refused.
            if not (value.isascii() and value.isdigit() and len(value) <= 19 and low <= int(value) <= high):
                raise TftpError(ERR_OPTION, f"bad {name} {value[:20]!r}")
        options[name] = value
    return Request(filename, mode, options)


class _Listener(asyncio.DatagramProtocol):
    def __init__(self, server: "TftpServer") -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.server.received(data, addr)


class TftpServer:
    def __init__(self, root: str, dynamic: DynamicFiles | None = None, timeout: float = 1.0,
                 max_transfers: int = MAX_TRANSFERS, max_per_client: int = MAX_TRANSFERS_PER_CLIENT) -> None:
        self.root = root
        self.dynamic = dynamic
        self.timeout = timeout
        self.max_transfers, self.max_per_client = max_transfers, max_per_client
        self.transfers: set[asyncio.Task] = set()
        self.per_client: Counter[str] = Counter()
        self.refused = 0
        self.transport: asyncio.DatagramTransport | None = None

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        # "::" binds both families where the system allows it (Linux: bindv6only=0), like the HTTP side.
        self.transport, _ = await loop.create_datagram_endpoint(lambda: _Listener(self), local_addr=(host, port))
        log.info("TFTP serving %s on %s port %d", self.root, host, port)

    def close(self) -> None:
        if self.transport:
            self.transport.close()
        for task in self.transfers:
            task.cancel()

    def received(self, packet: bytes, addr: Address) -> None:
        """A packet on the well-known port: refusals are answered from it at once, without a socket of their own;
        a read request within the limits starts a transfer."""
        assert self.transport is not None
        try:
            request = parse_request(packet)
        except TftpError as refused:
            self.transport.sendto(_error_packet(refused.code, refused.message), addr)
            return
        client = addr[0]
        if len(self.transfers) >= self.max_transfers or self.per_client[client] >= self.max_per_client:
            self.refused += 1
            if self.refused % 1000 == 1:  # a flood is logged, not each of its requests
                log.warning("TFTP %s: %s refused, too many transfers (%d refused so far)", client,
                            request.filename[:100], self.refused)
            self.transport.sendto(_error_packet(ERR_UNDEFINED, "too many transfers, try again later"), addr)
            return
        self.per_client[client] += 1
        task = asyncio.get_running_loop().create_task(self.handle(request, addr))
        self.transfers.add(task)
        task.add_done_callback(lambda done: self._finished(done, client))

    def _finished(self, task: asyncio.Task, client: str) -> None:
        self.transfers.discard(task)
        self.per_client[client] -= 1
        if self.per_client[client] <= 0:
            del self.per_client[client]

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
        return open(real, "rb")  # read block by block as the client acknowledges, never whole

    async def handle(self, request: Request, addr: Address) -> None:
        assert self.transport is not None
        bind_ip = self.transport.get_extra_info("sockname")[0]
        sock = socket.socket(socket.AF_INET6 if ":" in bind_ip else socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            sock.bind((bind_ip, 0))
            try:
                source = self._open(request.filename, addr[0])
            except Exception:  # a bug behind a generated file: the client hears of it, the log says what
                log.exception("TFTP %s: %s", addr[0], request.filename)
                await loop.sock_sendto(sock, _error_packet(ERR_UNDEFINED, "server error"), addr)
                return
            if source is None:
                log.info("TFTP %s: %s not found", addr[0], request.filename)
                await loop.sock_sendto(sock, _error_packet(ERR_NOT_FOUND, "file not found"), addr)
                return
            with source:
                await self._send(sock, addr, source, request.options, request.filename)
        finally:
            sock.close()

    async def _send(self, sock: socket.socket, addr: Address, source: io.BufferedIOBase, options: dict[str, str],
                    filename: str) -> None:
        blksize, timeout, window, accepted = DEFAULT_BLKSIZE, self.timeout, 1, {}
        # The options' values were checked by parse_request.
        if "blksize" in options:
            blksize = min(int(options["blksize"]), MAX_BLKSIZE)
            accepted["blksize"] = str(blksize)
        if "timeout" in options and int(options["timeout"]) <= MAX_TIMEOUT:  # a transfer nobody acknowledges ends
            timeout = float(options["timeout"])                              # within RETRIES × MAX_TIMEOUT
            accepted["timeout"] = options["timeout"]
        if "tsize" in options:
            size = source.seek(0, os.SEEK_END)
            source.seek(0)
            accepted["tsize"] = str(size)
        # Never answer more than was asked (RFC 7440).
        if "windowsize" in options:
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
