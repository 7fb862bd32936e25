"""TFTP resource bounds against the real server on loopback: transfers capped per client, abandoned ones ended within
seconds, garbage options refused with ERROR 8, and a flood of unanswered requests that does not stop a real client.

Flooders send from their own loopback addresses (127.0.2.x), the real clients from 127.0.0.1.
"""
import io
import socket
import statistics
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from server_stub import tftp
from tests.server_stub.tftp_client import request

ERROR, OACK, DATA = 5, 6, 3


def sock_from(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((address, 0))
    return sock


def first_reply(sock: socket.socket, wait: float = 5.0) -> tuple[int, int, bytes]:
    sock.settimeout(wait)
    packet = sock.recv(70000)
    opcode, number = struct.unpack("!HH", packet[:4])
    return opcode, number, packet[4:]


@pytest.mark.parametrize("packet, code", [
    (b"", 4), (b"\0", 4), (b"\0\2x\0octet\0", 2), (b"\0\3\0\1", 4), (b"\0\1name\0octet", 4),
    (b"\0\1name\0mail\0", 4), (b"\0\1name\0octet\0blksize\0", 8), (b"\0\1name\0octet\0blksize\0x\0", 8),
    (b"\0\1name\0octet\0blksize\x007\0", 8), (b"\0\1name\0octet\0timeout\0" + b"9" * 5000 + b"\0", 8),
    (b"\0\1name\0octet\0timeout\x00256\0", 8), (b"\0\1name\0octet\0tsize\0-1\0", 8),
    (b"\0\1name\0octet\0windowsize\x000\0", 8), (b"\0\1name\0octet\0tsize\x000\0TSIZE\x000\0", 8),
    (b"\0\1name\0octet\0blksize\0\xb2\0", 8)])
def test_parse_request_refuses_with_the_code_to_answer(packet, code):
    with pytest.raises(tftp.TftpError) as refused:
        tftp.parse_request(packet)
    assert refused.value.code == code


def test_parse_request_reads_names_modes_and_options():
    got = tftp.parse_request(b"\0\1/Boot.IPXE\0OCTET\0BLKSIZE\x001468\0tsize\x000\0whatever\0x\0")
    assert got == tftp.Request("/Boot.IPXE", "octet", {"blksize": "1468", "tsize": "0", "whatever": "x"})


def test_garbage_options_get_error_8_on_the_wire(server):
    with sock_from("127.0.0.1") as sock:
        sock.sendto(request("undionly.kpxe", options={"blksize": "lots"}), ("127.0.0.1", server["tftp_port"]))
        opcode, code, message = first_reply(sock)
    assert (opcode, code) == (ERROR, 8) and message.startswith(b"bad blksize")


def test_transfers_are_capped_per_client_and_an_abandoned_one_ends_within_seconds(server):
    port = server["tftp_port"]
    # A client that asks for a 255-second timeout and never acknowledges: it does not get it.
    hogs = [sock_from("127.0.2.1") for _ in range(tftp.MAX_TRANSFERS_PER_CLIENT)]
    try:
        for sock in hogs:
            sock.sendto(request("undionly.kpxe", options={"timeout": "255", "tsize": "0"}), ("127.0.0.1", port))
        replies = [first_reply(sock) for sock in hogs]
        assert all(opcode == OACK and b"timeout" not in body for opcode, _, body in replies)
        with sock_from("127.0.2.1") as one_more:
            one_more.sendto(request("undionly.kpxe"), ("127.0.0.1", port))
            assert first_reply(one_more)[:2] == (ERROR, 0)  # "too many transfers"
        with sock_from("127.0.2.2") as other_client:  # another address is not affected
            other_client.sendto(request("undionly.kpxe"), ("127.0.0.1", port))
            assert first_reply(other_client)[:2] == (DATA, 1)
        # The server resends the OACK RETRIES times at its own 1 s timeout, then gives up.
        started = time.monotonic()
        while True:
            try:
                first_reply(hogs[0], wait=3)
            except socket.timeout:
                break
        assert time.monotonic() - started < tftp.RETRIES * tftp.MAX_TIMEOUT + 3
        time.sleep(0.5)
        with sock_from("127.0.2.1") as later:  # the slots are free again
            later.sendto(request("undionly.kpxe"), ("127.0.0.1", port))
            assert first_reply(later)[:2] == (DATA, 1)
    finally:
        for sock in hogs:
            sock.close()


def flood(port: int, count: int, addresses: int, stop: threading.Event) -> None:
    """``count`` read requests nobody acknowledges, from 127.0.2.1..N, as fast as they go."""
    socks = [sock_from(f"127.0.2.{i + 1}") for i in range(addresses)]
    try:
        for i in range(count):
            socks[i % addresses].sendto(request("undionly.kpxe", options={"tsize": "0"}), ("127.0.0.1", port))
            if i % 250 == 249:
                time.sleep(0.1)  # 5000 over 2 s, while the real client is served; replies are left unread
        stop.wait(20)
    finally:
        for sock in socks:
            sock.close()


def boot_script_latencies(url: str, count: int) -> list[float]:
    latencies = []
    with requests.Session() as session:
        for _ in range(count):
            started = time.monotonic()
            answer = session.get(f"{url}/boot/52:54:00:00:00:01.ipxe", timeout=10)
            latencies.append(time.monotonic() - started)
            time.sleep(0.03)  # spread over the flood
            assert answer.status_code == 200 and answer.text.startswith("#!ipxe")
    return latencies


def p99_ms(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=100, method="inclusive")[98] * 1000


def test_a_flood_of_unanswered_requests_does_not_stop_a_real_client(server):
    stop = threading.Event()
    flooder = threading.Thread(target=flood, args=(server["tftp_port"], 5000, 20, stop))
    flooder.start()
    try:
        time.sleep(0.2)
        latencies = boot_script_latencies(server["url"], 50)
        curl = subprocess.run(["curl", "-s", "--max-time", "15", f"tftp://127.0.0.1:{server['tftp_port']}/undionly.kpxe"],
                              capture_output=True)
        initrd = subprocess.run(["curl", "-s", "--max-time", "15", "--tftp-blksize", "1468",
                                 f"tftp://127.0.0.1:{server['tftp_port']}/imager/initrd.img"], capture_output=True)
        over_http = requests.get(f"{server['url']}/files/initrd.img", timeout=15)
    finally:
        stop.set()
        flooder.join()
    print(f"\nTFTP flood (5000 unanswered RRQs from 20 addresses): boot-script p99 {p99_ms(latencies):.1f} ms, "
          f"max {max(latencies) * 1000:.1f} ms over {len(latencies)} fetches")
    assert curl.returncode == 0 and curl.stdout == Path("/usr/lib/ipxe/undionly.kpxe").read_bytes()
    assert initrd.returncode == 0 and initrd.stdout == (server["boot"] / "initrd.img").read_bytes()
    assert over_http.status_code == 200 and over_http.content == (server["boot"] / "initrd.img").read_bytes()
    assert p99_ms(latencies) < 2000
    log = (server["data"].parent / "server.log").read_text()
    assert "too many transfers" in log  # the caps were reached: the flood was a flood


def test_files_are_opened_for_reading_block_by_block_never_read_whole(tmp_path):
    (tmp_path / "big.bin").write_bytes(b"x" * 100_000)
    boot_file = tmp_path / "initrd.img"
    boot_file.write_bytes(b"y" * 100_000)
    server = tftp.TftpServer(str(tmp_path), lambda path, ip: boot_file if path == "imager/initrd.img" else None)
    for name in ("big.bin", "imager/initrd.img"):
        source = server._open(name, "10.0.0.9")
        assert source is not None and source.tell() == 0 and not isinstance(source, io.BytesIO)  # a file on disk
        source.close()
