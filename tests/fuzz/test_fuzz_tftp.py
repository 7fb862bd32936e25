"""The TFTP request parser and server under arbitrary packets: parse_request gives a Request or a TftpError and
nothing else, and the server on loopback answers every packet (an ERROR, or the transfer's first packet)."""
from __future__ import annotations

import asyncio
import os
import socket
import struct
from typing import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server_stub import tftp
from tests.fuzz.profiles import FIGURES, cases

OPTION_NAMES = ["blksize", "tsize", "timeout", "windowsize", "BLKSIZE", "multicast", "", "x" * 300]
OPTION_VALUES = ["0", "1", "8", "512", "1468", "65464", "65465", "99999999999999999999", "-1", "1e3", "٣", "",
                 " 512", "0x10", "255", "256"]
FILENAMES = ["hello.txt", "/hello.txt", "nope", "../etc/passwd", "/etc/passwd", "a\\..\\..\\b", "."]


def _field(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[bytes]:
    return strategy.map(lambda s: s.encode("latin-1", "replace"))


latin1 = st.text(st.characters(max_codepoint=0xFF), max_size=40)
requests_ = st.builds(
    lambda opcode, name, mode, options, tail: struct.pack("!H", opcode) + name + b"\0" + mode + b"\0" +
    b"".join(k + b"\0" + v + b"\0" for k, v in options) + tail,
    st.sampled_from([tftp.RRQ, tftp.RRQ, tftp.RRQ, tftp.WRQ, tftp.DATA, tftp.ACK, tftp.ERROR, tftp.OACK, 0, 7,
                     65535]),
    _field(st.sampled_from(FILENAMES) | latin1), _field(st.sampled_from(["octet", "netascii", "OCTET", "mail"]) | latin1),
    st.lists(st.tuples(_field(st.sampled_from(OPTION_NAMES) | latin1), _field(st.sampled_from(OPTION_VALUES) | latin1)),
             max_size=5),
    st.sampled_from([b"", b"\0", b"x", b"\0\0"]))
packets = st.binary(max_size=600) | requests_


@cases("tftp_parser")
@given(packets)
def test_the_parser_gives_a_request_or_a_tftp_error(packet):
    FIGURES["tftp parser cases"] += 1
    try:
        request = tftp.parse_request(packet)
    except tftp.TftpError as refused:
        assert refused.code in (tftp.ERR_ILLEGAL, tftp.ERR_ACCESS, tftp.ERR_OPTION) and refused.message
        answer = tftp._error_packet(refused.code, refused.message)
        assert answer[:2] == struct.pack("!H", tftp.ERROR) and answer.endswith(b"\0") and len(answer) <= 205
        return
    assert packet[:2] == struct.pack("!H", tftp.RRQ) and request.mode in ("octet", "netascii")
    for name in ("blksize", "tsize", "timeout", "windowsize"):
        if name in request.options:
            assert request.options[name].isdigit()


class Loopback:
    """A TftpServer on 127.0.0.1 in its own loop, over a root with one small file."""

    def __init__(self, root) -> None:
        self.root = root
        (root / "hello.txt").write_bytes(bytes(range(256)) * 4)
        self.loop = asyncio.new_event_loop()
        self.server = tftp.TftpServer(str(root), timeout=0.2)
        self.loop.run_until_complete(self.server.start("127.0.0.1", 0))
        assert self.server.transport is not None
        self.port = self.server.transport.get_extra_info("sockname")[1]

    def exchange(self, packet: bytes) -> bytes | None:
        """The first answer to ``packet``; a transfer it starts is ended with an ERROR from the client."""
        async def run() -> bytes | None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setblocking(False)
            sock.bind(("127.0.0.1", 0))
            try:
                await self.loop.sock_sendto(sock, packet, ("127.0.0.1", self.port))
                try:
                    answer, sender = await asyncio.wait_for(self.loop.sock_recvfrom(sock, 70_000), 3)
                except asyncio.TimeoutError:
                    return None
                if answer[:2] in (struct.pack("!H", tftp.DATA), struct.pack("!H", tftp.OACK)):
                    await self.loop.sock_sendto(sock, tftp._error_packet(tftp.ERR_UNDEFINED, "fuzz: done"), sender)
                return answer
            finally:
                sock.close()
        return self.loop.run_until_complete(run())

    def close(self) -> None:
        self.server.close()
        self.loop.run_until_complete(asyncio.sleep(0))
        pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
        if pending:
            self.loop.run_until_complete(asyncio.wait(pending, timeout=5))
        self.loop.close()


@pytest.fixture(scope="module")
def loopback(tmp_path_factory) -> Iterator[Loopback]:
    served = Loopback(tmp_path_factory.mktemp("tftp"))
    try:
        yield served
    finally:
        served.close()


def test_the_server_answers_every_packet(loopback):
    @cases("tftp_server")
    @given(packets.filter(lambda p: len(p) > 0))
    def fuzz(packet: bytes) -> None:
        FIGURES["tftp server cases"] += 1
        answer = loopback.exchange(packet)
        if answer is None:
            FIGURES["tftp unanswered"] += 1
        assert answer is not None, packet[:100]
        opcode = struct.unpack("!H", answer[:2])[0]
        assert opcode in (tftp.ERROR, tftp.DATA, tftp.OACK), answer[:50]
        if opcode == tftp.ERROR:
            assert answer.endswith(b"\0") and len(answer) >= 5
        else:  # only a well-formed read request of a file in the root starts a transfer
            request = tftp.parse_request(packet)
            assert tftp.safe_path(loopback.root, request.filename) == os.path.realpath(loopback.root / "hello.txt")

    fuzz()
