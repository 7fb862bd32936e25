"""TFTP windowsize (RFC 7440), loss, concurrency and refusals, against the real server on loopback.

Clients: atftp (Debian's, it speaks windowsize), curl without options, and tests/server_stub/tftp_client.py,
a raw-socket client that can lose packets on purpose and records what arrived.
"""
import hashlib
import os
import random
import socket
import struct
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.server_stub.tftp_client import TftpError, fetch, request


@pytest.fixture
def files(server):
    root = server["data"] / "tftp"
    content = {"small.bin": os.urandom(20 * 512 - 100),  # 20 blocks of 512, the last one short
               "big.bin": os.urandom(3_000_000),
               "even.bin": os.urandom(16 * 512)}  # a multiple of the block size: an empty block ends it
    for name, data in content.items():
        (root / name).write_bytes(data)
    return content


def drop_once(kind: str, block: int):
    """A drop rule: lose the first copy of one DATA block, or the first try of one ACK."""
    return lambda k, b, seen: k == kind and b == block and seen == 0


@pytest.mark.parametrize("asked, granted", [("8", "8"), ("1", "1"), ("64", "64"), ("200", "64")])
def test_windowsize_is_negotiated_and_clamped(server, files, asked, granted):
    got = fetch(server["tftp_port"], "big.bin", {"windowsize": asked, "blksize": "1428"})
    assert got.oack == {"windowsize": granted, "blksize": "1428"}
    assert got.data == files["big.bin"]


@pytest.mark.parametrize("asked", ["0", "many", "", "65536"])
def test_a_meaningless_windowsize_is_refused_with_error_8(server, files, asked):
    with pytest.raises(TftpError) as refused:  # RFC 2347: an option the server cannot accept
        fetch(server["tftp_port"], "small.bin", {"windowsize": asked, "tsize": "0"})
    assert refused.value.code == 8 and refused.value.message.startswith("bad windowsize")


def test_a_whole_window_is_sent_before_an_ack_is_awaited(server, files):
    got = fetch(server["tftp_port"], "small.bin", {"windowsize": "8"})
    assert got.data == files["small.bin"]
    assert got.received == list(range(1, 21))
    assert got.acks == [0, 8, 16, 20]  # the client acknowledged once per window, and the server went on


def test_a_file_ending_on_a_block_boundary_ends_with_an_empty_block(server, files):
    got = fetch(server["tftp_port"], "even.bin", {"windowsize": "5"})
    assert got.data == files["even.bin"] and got.received[-1] == 17 and got.acks[-1] == 17


def test_lost_data_inside_the_window_slides_it(server, files):
    got = fetch(server["tftp_port"], "small.bin", {"windowsize": "8"}, drop=drop_once("data", 5))
    assert got.data == files["small.bin"]
    assert got.received[:8] == list(range(1, 9))
    # The client acknowledged block 4; the server resent from 5, not from the window's start.
    assert 4 in got.acks and got.received[8:16] == list(range(5, 13))
    assert got.received.count(1) == 1 and got.received.count(4) == 1


def test_lost_first_block_of_a_window_is_resent_after_the_timeout(server, files):
    got = fetch(server["tftp_port"], "small.bin", {"windowsize": "8"}, drop=drop_once("data", 9))
    assert got.data == files["small.bin"]
    # The client's ACK 8 for the gap is a duplicate: ignored, the timeout resent the window 9..16.
    assert got.received[8:16] == list(range(9, 17)) and got.received[16:24] == list(range(9, 17))


def test_a_lost_ack_makes_the_server_resend_the_window(server, files):
    got = fetch(server["tftp_port"], "small.bin", {"windowsize": "8"}, drop=drop_once("ack", 8))
    assert got.data == files["small.bin"]
    assert got.received[:16] == list(range(1, 9)) * 2  # the window again, after the server's timeout
    assert got.received[16:] == list(range(9, 21))


def test_a_lost_oack_ack_makes_the_server_resend_the_oack(server, files):
    got = fetch(server["tftp_port"], "small.bin", {"windowsize": "4"}, drop=drop_once("ack", 0))
    assert got.data == files["small.bin"] and got.acks[0] == 0


def test_lock_step_without_options_recovers_from_loss(server, files):
    rules = [drop_once("data", 3), drop_once("ack", 7)]
    got = fetch(server["tftp_port"], "small.bin", drop=lambda *a: any(rule(*a) for rule in rules))
    assert got.oack == {} and got.data == files["small.bin"]
    assert got.received.count(3) == 2 and got.received.count(7) == 2 and got.received.count(8) == 1


def test_block_numbers_wrap_past_65535(server):
    data = os.urandom(8 * 66_000 + 3)  # 66 001 blocks of 8 bytes
    (server["data"] / "tftp" / "wrap.bin").write_bytes(data)
    got = fetch(server["tftp_port"], "wrap.bin", {"blksize": "8", "windowsize": "64"}, drop=drop_once("data", 65_540))
    assert got.data == data and max(got.received) == 66_001


def test_many_windowed_transfers_at_once_with_loss(server, files):
    def one(i: int) -> bool:
        window = [1, 4, 16, 64][i % 4]
        lost = {random.randrange(1, 2000) for _ in range(3)}
        got = fetch(server["tftp_port"], "big.bin", {"windowsize": str(window), "blksize": "1428"},
                    drop=lambda kind, block, seen: kind == "data" and block in lost and seen == 0)
        return hashlib.sha256(got.data).digest() == hashlib.sha256(files["big.bin"]).digest()

    with ThreadPoolExecutor(16) as pool:
        assert all(pool.map(one, range(16)))


@pytest.mark.parametrize("window", ["8", "64"])
def test_atftp_with_windowsize(server, files, tmp_path, window):
    out = tmp_path / "out.bin"
    run = subprocess.run(["atftp", "--get", "-r", "big.bin", "-l", str(out), "--option", f"windowsize {window}",
                          "--option", "blksize 1428", "--trace", "127.0.0.1", str(server["tftp_port"])],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert f"received OACK <windowsize: {window}" in run.stdout + run.stderr
    assert out.read_bytes() == files["big.bin"]


def test_clients_without_options_still_work(server, files, tmp_path):
    curl = subprocess.run(["curl", "-s", "--max-time", "60", "--tftp-no-options",
                           f"tftp://127.0.0.1:{server['tftp_port']}/big.bin"], capture_output=True)
    assert curl.returncode == 0 and curl.stdout == files["big.bin"]
    out = tmp_path / "out.bin"
    atftp = subprocess.run(["atftp", "--get", "-r", "small.bin", "-l", str(out), "127.0.0.1",
                            str(server["tftp_port"])], capture_output=True, timeout=60)
    assert atftp.returncode == 0 and out.read_bytes() == files["small.bin"]


def test_atftp_reports_the_servers_file_not_found(server, tmp_path):
    run = subprocess.run(["atftp", "--get", "-r", "nothing-here", "-l", str(tmp_path / "x"), "127.0.0.1",
                          str(server["tftp_port"])], capture_output=True, text=True, timeout=60)
    assert run.returncode != 0 and "file not found" in run.stderr


@pytest.fixture
def links(server):
    root = server["data"] / "tftp"
    (root / "passwd-link").symlink_to("/etc/passwd")
    (root / "etc-link").symlink_to("/etc")
    (root / "inside-link").symlink_to(root / "undionly.kpxe")
    return root


@pytest.mark.parametrize("path", ["nothing-here", "../../../etc/passwd", "a/../../etc/passwd", "..\\..\\etc\\passwd",
                                  "/etc/passwd", "//etc/passwd", "passwd-link", "etc-link/passwd", "pxelinux.cfg/"])
def test_missing_and_escaping_paths_get_error_1(server, links, path):
    with pytest.raises(TftpError) as refused:
        fetch(server["tftp_port"], path, {"windowsize": "8"})
    assert refused.value.code == 1 and refused.value.message == "file not found"


def test_symlinks_that_stay_inside_the_root_and_leading_slashes_are_served(server, links):
    expected = (links / "undionly.kpxe").read_bytes()
    assert fetch(server["tftp_port"], "inside-link").data == expected
    assert fetch(server["tftp_port"], "/undionly.kpxe", {"windowsize": "4"}).data == expected


@pytest.mark.parametrize("name", [b"undionly.kpxe\0../../etc/passwd", b"../../etc/passwd\0x"])
def test_a_nul_byte_in_the_name_is_refused(server, name):
    # TFTP fields end at NUL: what follows becomes the "mode", which is checked.
    with pytest.raises(TftpError) as refused:
        fetch(server["tftp_port"], name, mode=b"octet")
    assert refused.value.code == 4


def test_writes_and_strange_modes_are_refused(server):
    with pytest.raises(TftpError) as mail:
        fetch(server["tftp_port"], "undionly.kpxe", mode=b"mail")
    assert mail.value.code == 4
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(10)
        sock.sendto(struct.pack("!H", 2) + request("x.bin")[2:], ("127.0.0.1", server["tftp_port"]))
        reply = sock.recv(1000)
    assert struct.unpack("!HH", reply[:4]) == (5, 2)  # WRQ: access violation
