"""HTTP resource bounds of a real `imager-server serve` on loopback: half-open connections (headers never
finished) and stalled bodies are closed after their timeouts, connections are capped per address, and a flood of
2,000 half-open connections does not stop a real client's boot script, kernel and initrd.

Flooders connect from their own loopback addresses (127.0.3.x), the real client from 127.0.0.1.
"""
import socket
import statistics
import time

import requests

from server_stub import httpguard

MAC = "52:54:00:00:00:01"


def half_open(port: int, source: str, partial: bytes = b"GET /boot/52:54:00:00:00:01.ipxe HTTP/1.1\r\nHost: x")\
        -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    sock.sendall(partial)
    return sock


def closed_by_server(sock: socket.socket, wait: float) -> bool:
    """True once the server closes (EOF or reset; a 503 before the EOF is read away)."""
    sock.settimeout(wait)
    try:
        while sock.recv(4096):
            pass
    except socket.timeout:
        return False
    except ConnectionResetError:
        pass
    return True


def boot_latencies(url: str, count: int) -> list[float]:
    latencies = []
    for _ in range(count):
        started = time.monotonic()
        answer = requests.get(f"{url}/boot/{MAC}.ipxe", timeout=10)  # a new connection each time, as iPXE does
        latencies.append(time.monotonic() - started)
        assert answer.status_code == 200 and answer.text.startswith("#!ipxe")
    return latencies


def test_half_open_connections_and_stalled_bodies_are_closed_and_do_not_stop_boot(server):
    port = int(server["url"].rsplit(":", 1)[1])
    flood = [half_open(port, f"127.0.3.{1 + i % 20}") for i in range(2000)]  # 100 per address, under the cap
    stalled = [half_open(port, "127.0.3.200", b"POST /api/register HTTP/1.1\r\nHost: x\r\nContent-Type: "
                                              b"application/json\r\nContent-Length: 1000\r\n\r\n{\"mac\": ")
               for _ in range(5)]
    opened = time.monotonic()
    try:
        latencies = boot_latencies(server["url"], 50)
        initrd = requests.get(f"{server['url']}/files/initrd.img", timeout=15)
        kernel = requests.get(f"{server['url']}/files/vmlinuz", timeout=15)
        p99 = statistics.quantiles(latencies, n=100, method="inclusive")[98] * 1000
        print(f"\nHTTP flood (2000 half-open connections from 20 addresses): boot-script p99 {p99:.1f} ms, "
              f"max {max(latencies) * 1000:.1f} ms over {len(latencies)} fetches")
        assert initrd.content == (server["boot"] / "initrd.img").read_bytes()
        assert kernel.content == (server["boot"] / "vmlinuz").read_bytes()
        assert p99 < 2000
        # Every half-open connection is closed by the server after the header timeout, each stalled body after
        # the body timeout (answered 408).
        deadline = opened + max(httpguard.HEADER_TIMEOUT, httpguard.BODY_TIMEOUT) + 5
        answers = []
        for sock in stalled:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            answers.append(sock.recv(4096))
        assert all(a.startswith(b"HTTP/1.1 408") and b"\"error\"" in a for a in answers), answers[0]
        assert all(closed_by_server(sock, max(0.1, deadline - time.monotonic())) for sock in flood)
        assert time.monotonic() - opened > httpguard.HEADER_TIMEOUT - 1  # not closed before their time
    finally:
        for sock in flood + stalled:
            sock.close()


def test_connections_beyond_the_cap_of_one_address_are_refused_at_once(server):
    port = int(server["url"].rsplit(":", 1)[1])
    held = [half_open(port, "127.0.3.99") for _ in range(httpguard.MAX_CONNECTIONS_PER_CLIENT)]
    try:
        time.sleep(0.3)
        extra = half_open(port, "127.0.3.99")
        extra.settimeout(3)
        assert extra.recv(4096).startswith(b"HTTP/1.1 503")
        extra.close()
        other = requests.get(f"{server['url']}/boot/{MAC}.ipxe", timeout=5)  # another address is served
        assert other.status_code == 200
    finally:
        for sock in held:
            sock.close()
