"""The DHCP settings ``imager-server init`` prints, served for real: dnsmasq, ISC dhcpd and Kea run the printed text
in a network namespace of this test, and busybox's udhcpc in another asks as a BIOS PXE ROM, a UEFI one, a UEFI HTTP
boot client and iPXE (option 93, vendor class, user class, option 175). Each must get the boot file and next
server the lab and docs/secure-boot.md use. Namespaces are this test's own (unique names), removed on every path."""
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.server_stub.cliproc import REPO, clean_env

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(not all(shutil.which(tool) for tool in ("dnsmasq", "dhcpd", "kea-dhcp4", "busybox")),
                                 reason="dnsmasq, dhcpd (isc-dhcp-server), kea-dhcp4 (kea-dhcp4-server), busybox: "
                                        "make setup")]

SERVER_IP = "10.99.0.1"
UDHCPC_SCRIPT = """#!/bin/sh
[ "$1" = bound ] || exit 0
{ echo "boot_file=$boot_file"; echo "siaddr=$siaddr"; echo "ip=$ip"; } > "$OUT"
"""
IPXE = ["-x", "0x4d:69505845", "-x", "0xaf:150101"]  # user class "iPXE", and an option 175 like iPXE's
# (udhcpc's options, the boot file expected, the next server expected: None for a URL, which needs none)
CLIENTS = {
    "bios": (["-x", "0x5d:0000"], "undionly.kpxe", SERVER_IP),
    "uefi-x64": (["-x", "0x5d:0007"], "snponly.efi", SERVER_IP),
    "uefi-x64-9": (["-x", "0x5d:0009"], "snponly.efi", SERVER_IP),
    "uefi-http": (["-x", "0x5d:0010", "-V", "HTTPClient:Arch:00016"], f"http://{SERVER_IP}/files/snponly.efi", None),
    "ipxe-uefi": (["-x", "0x5d:0007", *IPXE], f"http://{SERVER_IP}/boot.ipxe", None),
    "ipxe-bios": (["-x", "0x5d:0000", *IPXE], f"http://{SERVER_IP}/boot.ipxe", None),
}


def init_section(section, *extra):
    result = subprocess.run([sys.executable, "-m", "server_stub", "init", "--server-ip", SERVER_IP, "--clients",
                             "10.99.0.0/24", "--user", "root", "--only", section, *extra],
                            capture_output=True, text=True, env=clean_env(), cwd=REPO, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _ip(*args):
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@contextmanager
def link():
    """Two namespaces joined by a veth pair: the DHCP server's (10.99.0.1/24) and the client's."""
    tag = f"i16d{os.getpid() % 10000}{secrets.token_hex(2)}"
    server, client = f"{tag}s", f"{tag}c"
    try:
        _ip("netns", "add", server)
        _ip("netns", "add", client)
        _ip("-n", server, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", client)
        _ip("-n", server, "addr", "add", f"{SERVER_IP}/24", "brd", "+", "dev", "eth0")
        for ns in (server, client):
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "link", "set", "eth0", "up")
        yield server, client
    finally:
        for ns in (server, client):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


@contextmanager
def running(argv, log):
    process = subprocess.Popen(argv, stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    try:
        time.sleep(0.5)
        assert process.poll() is None, log.read_text()
        yield process
    finally:
        process.terminate()  # ours, by its PID
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def ask(client_ns, options, tmp_path, name):
    """One DHCP exchange as a client with ``options``; what the bound script saw."""
    script, out = tmp_path / "udhcpc.sh", tmp_path / f"{name}.env"
    script.write_text(UDHCPC_SCRIPT)
    script.chmod(0o755)
    result = subprocess.run(["ip", "netns", "exec", client_ns, "busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-n",
                             "-t", "6", "-T", "1", "-s", str(script), *options],
                            capture_output=True, text=True, env={**os.environ, "OUT": str(out)}, timeout=60)
    assert result.returncode == 0 and out.exists(), result.stdout + result.stderr
    return dict(line.split("=", 1) for line in out.read_text().splitlines())


def check_answers(client_ns, tmp_path, clients):
    for name, (options, boot_file, next_server) in clients.items():
        answer = ask(client_ns, options, tmp_path, name)
        assert answer["boot_file"] == boot_file, (name, answer)
        if next_server:
            assert answer["siaddr"] == next_server, (name, answer)
        assert answer["ip"].startswith("10.99.0."), answer


def test_dnsmasq_serves_the_printed_settings(tmp_path):
    conf = tmp_path / "imager.conf"
    conf.write_text(init_section("dnsmasq"))
    check = subprocess.run(["dnsmasq", "--test", "-C", str(conf)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0 and "syntax check OK" in check.stderr, check.stderr
    with link() as (server_ns, client_ns), running(
            ["ip", "netns", "exec", server_ns, "dnsmasq", "--no-daemon", f"--conf-file={conf}", "--port=0",
             "--user=root", "--interface=eth0", "--bind-interfaces",
             "--dhcp-range=10.99.0.100,10.99.0.150,255.255.255.0,1h", f"--dhcp-leasefile={tmp_path / 'leases'}",
             f"--pid-file={tmp_path / 'dnsmasq.pid'}", "--log-dhcp"], tmp_path / "dnsmasq.log"):
        check_answers(client_ns, tmp_path, CLIENTS)


def dhcpd_conf(snippet):
    return ("authoritative;\ndefault-lease-time 600;\nmax-lease-time 600;\n" + snippet +
            "subnet 10.99.0.0 netmask 255.255.255.0 {\n  range 10.99.0.100 10.99.0.150;\n}\n")


def test_isc_dhcpd_serves_the_printed_settings(tmp_path):
    conf = tmp_path / "dhcpd.conf"
    conf.write_text(dhcpd_conf(init_section("isc-dhcpd")))
    leases = tmp_path / "dhcpd.leases"
    leases.touch()
    check = subprocess.run(["dhcpd", "-4", "-t", "-cf", str(conf)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    with link() as (server_ns, client_ns), running(
            ["ip", "netns", "exec", server_ns, "dhcpd", "-4", "-f", "-d", "-cf", str(conf), "-lf", str(leases),
             "-pf", str(tmp_path / "dhcpd.pid"), "eth0"], tmp_path / "dhcpd.log"):
        check_answers(client_ns, tmp_path, CLIENTS)


def kea_config(snippet, tmp_path):
    """A whole kea-dhcp4 configuration around the printed classes (comment lines dropped, as Kea would)."""
    classes = json.loads("\n".join(line for line in snippet.splitlines() if not line.startswith("//")))
    config = {"Dhcp4": {"interfaces-config": {"interfaces": ["eth0"]},
                        "lease-database": {"type": "memfile", "persist": False}, "valid-lifetime": 600,
                        "subnet4": [{"subnet": "10.99.0.0/24", "pools": [{"pool": "10.99.0.100 - 10.99.0.150"}]}],
                        **classes["Dhcp4"],
                        "loggers": [{"name": "kea-dhcp4", "output_options": [{"output": "stdout"}],
                                     "severity": "INFO"}]}}
    path = tmp_path / "kea-dhcp4.json"
    path.write_text(json.dumps(config, indent=1))
    return path


def test_kea_serves_the_printed_classes(tmp_path, monkeypatch):
    monkeypatch.setenv("KEA_PIDFILE_DIR", str(tmp_path))  # not /run/kea
    monkeypatch.setenv("KEA_LOCKFILE_DIR", str(tmp_path))
    conf = kea_config(init_section("kea"), tmp_path)
    check = subprocess.run(["kea-dhcp4", "-t", str(conf)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    with link() as (server_ns, client_ns), running(["ip", "netns", "exec", server_ns, "kea-dhcp4", "-c", str(conf)],
                                                   tmp_path / "kea.log"):
        check_answers(client_ns, tmp_path, CLIENTS)


def test_secure_boot_sends_shim_to_uefi_clients(tmp_path):
    conf = tmp_path / "imager.conf"
    conf.write_text(init_section("dnsmasq", "--secure-boot"))
    clients = {"uefi-x64": (CLIENTS["uefi-x64"][0], "shimx64.efi", SERVER_IP),
               "uefi-http": (CLIENTS["uefi-http"][0], f"http://{SERVER_IP}/files/shimx64.efi", None),
               "bios": CLIENTS["bios"]}
    with link() as (server_ns, client_ns), running(
            ["ip", "netns", "exec", server_ns, "dnsmasq", "--no-daemon", f"--conf-file={conf}", "--port=0",
             "--user=root", "--interface=eth0", "--bind-interfaces",
             "--dhcp-range=10.99.0.100,10.99.0.150,255.255.255.0,1h", f"--dhcp-leasefile={tmp_path / 'leases'}",
             f"--pid-file={tmp_path / 'dnsmasq.pid'}"], tmp_path / "dnsmasq.log"):
        check_answers(client_ns, tmp_path, clients)


def test_a_broken_dhcpd_snippet_is_refused_by_dhcpd(tmp_path):
    # The check above can fail: dhcpd -t refuses a snippet with one brace missing.
    conf = tmp_path / "dhcpd.conf"
    conf.write_text(dhcpd_conf(init_section("isc-dhcpd").replace("}\n", "\n", 1)))
    check = subprocess.run(["dhcpd", "-4", "-t", "-cf", str(conf)], capture_output=True, text=True, timeout=30)
    assert check.returncode != 0
