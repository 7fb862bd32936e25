"""``imager-server init``: the directories (created, corrected, left alone the second time), the printed NFS,
firewall and Kea settings checked by parsing them (and nft checking its rules), and clear refusals.
The DHCP snippets are served for real in test_siteinit_dhcp.py."""
import ipaddress
import json
import os
import pwd
import re
import shutil
import subprocess
import sys

import pytest

from server_stub import siteinit
from tests.server_stub.cliproc import REPO, clean_env

ME = pwd.getpwuid(os.getuid()).pw_name


def init(tmp_path, *args, user=ME):
    argv = [sys.executable, "-m", "server_stub", "init", "--data-dir", str(tmp_path / "data"), "--images-dir",
            str(tmp_path / "images"), "--user", user, *args]
    return subprocess.run(argv, capture_output=True, text=True, env=clean_env(), cwd=REPO, timeout=30)


def sections(output):
    """The printed settings by section name (the ``===== name: title =====`` lines)."""
    parts = re.split(r"^===== ([a-z-]+): .* =====$", output, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2]))


def mode(path):
    return path.stat().st_mode & 0o7777


def test_creates_the_directories_then_changes_nothing(tmp_path):
    first = init(tmp_path, "--server-ip", "10.20.0.1", "--clients", "10.20.0.0/24")
    assert first.returncode == 0, first.stderr
    assert mode(tmp_path / "data") == 0o750 and mode(tmp_path / "data" / "boot") == 0o755
    assert mode(tmp_path / "images") == 0o755
    assert f"created {tmp_path / 'data'}" in first.stdout
    assert "lacks vmlinuz and initrd.img" in first.stdout
    second = init(tmp_path, "--server-ip", "10.20.0.1", "--clients", "10.20.0.0/24")
    assert second.returncode == 0
    assert "nothing changed" in second.stdout and "created" not in second.stdout
    assert sections(second.stdout) == sections(first.stdout)
    assert set(sections(first.stdout)) == set(siteinit.sitesettings.SECTIONS)


def test_a_wrong_mode_is_corrected_and_boot_files_are_seen(tmp_path):
    assert init(tmp_path, "--server-ip", "10.20.0.1").returncode == 0
    os.chmod(tmp_path / "data", 0o777)
    for name in ("vmlinuz", "initrd.img"):
        (tmp_path / "data" / "boot" / name).write_bytes(b"x")
    again = init(tmp_path, "--server-ip", "10.20.0.1")
    assert f"{tmp_path / 'data'}: mode set to 0750" in again.stdout
    assert mode(tmp_path / "data") == 0o750
    assert "lacks" not in again.stdout


@pytest.mark.root
def test_files_a_root_run_serve_left_are_given_to_the_user(tmp_path):
    (tmp_path / "data" / "tftp").mkdir(parents=True)
    (tmp_path / "data" / "admin.token").write_text("secret")
    nobody = pwd.getpwnam("nobody")
    result = init(tmp_path, "--server-ip", "10.20.0.1", user="nobody")
    assert result.returncode == 0, result.stderr
    for path in (tmp_path / "data", tmp_path / "data" / "tftp", tmp_path / "data" / "admin.token",
                 tmp_path / "images"):
        assert (path.stat().st_uid, path.stat().st_gid) == (nobody.pw_uid, nobody.pw_gid), path
    assert "2 file(s)" in result.stdout
    assert "nothing changed" in init(tmp_path, "--server-ip", "10.20.0.1", user="nobody").stdout


@pytest.mark.parametrize("args, message", [
    (["--server-ip", "10.0.0.300"], "--server-ip '10.0.0.300' is not an IP address"),
    (["--server-ip", "lab-server"], "--server-ip 'lab-server' is not an IP address"),
    (["--server-ip", "fd00::1"], "an IPv4 address is needed"),
    (["--server-ip", "127.0.0.1"], "clients cannot reach the server there"),
    (["--server-ip", "0.0.0.0"], "clients cannot reach the server there"),
    (["--server-ip", "10.0.0.1", "--clients", "10.1.0.0/16"], "does not contain the server's address 10.0.0.1"),
    (["--server-ip", "10.0.0.1", "--clients", "10.0.0.0/33"], "is not an IPv4 network"),
    (["--server-ip", "10.0.0.1", "--http-port", "70000"], "a port from 1 to 65535"),
    (["--server-ip", "10.0.0.1", "--images-dir", "srv/images"], "an absolute path without spaces"),
    (["--server-ip", "10.0.0.1", "--images-dir", "/srv/my images"], "an absolute path without spaces"),
])
def test_bad_input_is_refused_clearly_and_nothing_is_created(tmp_path, args, message):
    result = init(tmp_path, *args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()


def test_an_unknown_user_is_refused(tmp_path):
    result = init(tmp_path, "--server-ip", "10.0.0.1", user="no-such-user-16")
    assert result.returncode == 2 and "no user 'no-such-user-16'" in result.stderr
    assert not (tmp_path / "data").exists()


def test_a_file_in_the_data_directory_s_place_is_refused(tmp_path):
    (tmp_path / "data").write_text("not a directory")
    result = init(tmp_path, "--server-ip", "10.0.0.1")
    assert result.returncode == 2 and "is not a directory" in result.stderr


def test_only_prints_one_section_and_creates_nothing(tmp_path):
    result = init(tmp_path, "--server-ip", "10.0.0.1", "--only", "exports")
    assert result.returncode == 0
    assert result.stdout.startswith("# imager: /etc/exports") and "=====" not in result.stdout
    assert not (tmp_path / "data").exists()


def export_options(text):
    line = next(line for line in text.splitlines() if line and not line.startswith("#"))
    match = re.fullmatch(r"(\S+) (\S+)\((\S+)\)", line)
    assert match, line
    return match.group(1), match.group(2), dict(o.partition("=")[::2] for o in match.group(3).split(","))


def test_nfs_exports_map_every_client_write_to_the_service_user(tmp_path):
    uid, gid = os.getuid(), os.getgid()
    out = sections(init(tmp_path, "--server-ip", "192.168.5.10", "--clients", "192.168.5.0/24").stdout)
    path, clients, options = export_options(out["exports"])
    assert path == str(tmp_path / "images") and clients == "192.168.5.0/24"
    assert {"rw", "sync", "no_subtree_check", "all_squash"} <= set(options)
    assert options["anonuid"] == str(uid) and options["anongid"] == str(gid)
    assert "no_root_squash" not in options and "async" not in options
    ganesha = out["ganesha"]
    assert ganesha.count("{") == ganesha.count("}")
    assert f'Path = "{tmp_path / "images"}"' in ganesha and "Squash = All_Squash" in ganesha
    assert f"Anonymous_Uid = {uid};" in ganesha and "Clients = 192.168.5.0/24; Access_Type = RW; Protocols = 4;" in ganesha
    assert "storage add main 192.168.5.10:/images" in ganesha


def test_kea_classes_are_json_and_ipxe_comes_first(tmp_path):
    kea = sections(init(tmp_path, "--server-ip", "10.0.0.1", "--http-port", "8080").stdout)["kea"]
    config = json.loads("\n".join(line for line in kea.splitlines() if not line.startswith("//")))
    classes = config["Dhcp4"]["client-classes"]
    assert [c["name"] for c in classes] == ["imager-ipxe", "imager-efi-http", "imager-efi-x64", "imager-bios"]
    by_name = {c["name"]: c for c in classes}
    assert by_name["imager-ipxe"]["boot-file-name"] == "http://10.0.0.1:8080/boot.ipxe"
    assert by_name["imager-efi-http"]["boot-file-name"] == "http://10.0.0.1:8080/files/snponly.efi"
    assert by_name["imager-efi-x64"]["boot-file-name"] == "snponly.efi"
    assert by_name["imager-bios"]["boot-file-name"] == "undionly.kpxe"
    assert all("not member('imager-ipxe')" in c["test"] for c in classes[1:])
    assert by_name["imager-efi-x64"]["next-server"] == "10.0.0.1"


def test_windows_dhcp_sets_options_66_and_67_per_architecture(tmp_path):
    text = sections(init(tmp_path, "--server-ip", "10.0.0.1").stdout)["windows-dhcp"]
    assert 'Add-DhcpServerv4Class -Name "imager UEFI x64" -Type Vendor -Data "PXEClient:Arch:00007"' in text
    assert 'Set-DhcpServerv4OptionValue -PolicyName "imager BIOS" -OptionId 67 -Value "undionly.kpxe"' in text
    assert 'Set-DhcpServerv4OptionValue -PolicyName "imager UEFI x64" -OptionId 66 -Value "10.0.0.1"' in text
    assert '-PolicyName "imager iPXE" -OptionId 67 -Value "http://10.0.0.1/boot.ipxe"' in text


@pytest.mark.root
@pytest.mark.skipif(not shutil.which("nft"), reason="nftables: make setup")
def test_nftables_rules_pass_nft_check_and_open_the_ports(tmp_path):
    rules = sections(init(tmp_path, "--server-ip", "10.0.0.1", "--clients", "10.0.0.0/23").stdout)["nftables"]
    ruleset = tmp_path / "ruleset.nft"
    ruleset.write_text("table inet imager_check_16 {\n chain input {\n  type filter hook input priority 0; "
                       "policy drop;\n" + rules + " }\n}\n")
    check = subprocess.run(["nft", "-c", "-f", str(ruleset)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    opened = set(re.findall(r"ip saddr 10\.0\.0\.0/23 (udp|tcp) dport (\S+) accept", rules))
    assert opened == {("udp", "69"), ("tcp", "80"), ("tcp", "8443"), ("tcp", "2049"), ("udp", "9000-58999")}
    ruleset.write_text(ruleset.read_text().replace("dport 69", "dport 69x"))  # nft's check can fail
    assert subprocess.run(["nft", "-c", "-f", str(ruleset)], capture_output=True, timeout=30).returncode != 0


def test_the_clients_network_is_the_server_address_s_own():
    ip_json = json.dumps([{"ifname": "eth1", "addr_info": [{"local": "172.16.4.2", "prefixlen": 22}]},
                          {"ifname": "lo", "addr_info": [{"local": "127.0.0.1", "prefixlen": 8}]}])
    address = ipaddress.IPv4Address("172.16.4.2")
    assert siteinit.network_of(address, ip_json) == ipaddress.IPv4Network("172.16.4.0/22")
    assert siteinit.network_of(ipaddress.IPv4Address("10.9.9.9"), ip_json) is None
    assert siteinit.network_of(address, "not json") is None


def test_multicast_ports_cover_every_session_slot():
    from server_stub.store import multicast
    low, high = siteinit.sitesettings.MULTICAST_PORTS
    assert low == multicast.PORTBASE
    assert high == multicast.PORTBASE + multicast.PORTS_PER_SESSION * multicast.SLOTS - 1


def test_json_is_the_api_s_object_with_the_changes(tmp_path):
    result = init(tmp_path, "--server-ip", "10.0.0.1", "--clients", "10.0.0.0/24", "--json")
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["changes"][0] == f"created {tmp_path / 'data'}"
    assert body["server_ip"] == "10.0.0.1" and body["http_port"] == 80
    assert [s["name"] for s in body["sections"]] == list(siteinit.sitesettings.SECTIONS)
    assert json.loads(init(tmp_path, "--server-ip", "10.0.0.1", "--json").stdout)["changes"] == []
