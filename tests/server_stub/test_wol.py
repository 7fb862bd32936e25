"""Wake-on-LAN's pure parts: the magic packet, the checks of MACs, addresses and interface names, and the sender's
repeats and grouping (to a listener on loopback)."""
import socket

import pytest

from server_stub.errors import Invalid
from server_stub.wol import WakeTarget, check_broadcast, check_interface, magic_packet, send_magic


def test_a_magic_packet_is_six_ff_then_the_mac_sixteen_times():
    packet = magic_packet("52:54:00:12:34:ab")
    assert len(packet) == 102 and packet[:6] == b"\xff" * 6
    assert packet[6:] == bytes.fromhex("5254001234ab") * 16
    assert magic_packet("52-54-00-12-34-AB") == magic_packet("525400 1234ab".replace(" ", "")) == packet


@pytest.mark.parametrize("mac", ["52:54:00:12:34", "52:54:00:12:34:zz", "52:54-00:12:34:56", "", "5254001234567",
                                 "52:54:00:12:34:56\n00"])
def test_a_bad_mac_is_refused_naming_it(mac):
    with pytest.raises(Invalid, match="is not a MAC address") as exc:
        magic_packet(mac)
    assert exc.value.details["field"] == "mac"


@pytest.mark.parametrize("address, expected", [("10.0.3.255", "10.0.3.255"), (" 192.168.1.255 ", "192.168.1.255"),
                                               ("255.255.255.255", "255.255.255.255")])
def test_broadcast_addresses(address, expected):
    assert check_broadcast(address) == expected


@pytest.mark.parametrize("address", ["10.0.3", "10.0.3.256", "224.0.0.1", "127.0.0.1", "0.0.0.0", "ff02::1",
                                     "lab3", "", None, 10])
def test_a_bad_broadcast_address_is_refused(address):
    with pytest.raises(Invalid, match="must be an IPv4 broadcast address") as exc:
        check_broadcast(address)
    assert exc.value.details["field"] == "broadcast"


@pytest.mark.parametrize("name", ["eth0", "enp3s0f1", "vlan30", "br-lab.3", "a" * 15])
def test_interface_names(name):
    assert check_interface(name) == name


@pytest.mark.parametrize("name", ["", "a" * 16, "eth 0", "eth0/x", "..", ".", None, "eth0\n"])
def test_a_bad_interface_name_is_refused(name):
    with pytest.raises(Invalid, match="must be a network interface name"):
        check_interface(name)


def test_each_mac_is_sent_three_times_and_a_failed_send_names_its_host():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.settimeout(2)
        port = listener.getsockname()[1]
        loopback = WakeTarget("127.0.0.1", None, "test")  # a WakeTarget as the store would make, to loopback
        report = send_magic([("pc1", "52:54:00:00:00:01", loopback), ("pc2", "52:54:00:00:00:02", loopback),
                             ("pc3", "52:54:00:00:00:03", WakeTarget("127.0.0.1", "nosuch0", "test"))], port=port)
        got = [listener.recv(200) for _ in range(6)]
        listener.settimeout(0.3)
        with pytest.raises(TimeoutError):
            listener.recv(200)
    assert sorted(p[6:12].hex() for p in got) == ["525400000001"] * 3 + ["525400000002"] * 3
    assert [s["host"] for s in report["sent"]] == ["pc1", "pc2"]
    assert [f["host"] for f in report["failed"]] == ["pc3"]
    assert "no network interface nosuch0" in report["failed"][0]["reason"]
