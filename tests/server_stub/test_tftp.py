"""The TFTP server against a real client (curl), on loopback."""
import hashlib
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from server_stub.tftp import safe_path


def tftp_get(server, path, *extra):
    return subprocess.run(["curl", "-s", "--max-time", "20", *extra,
                           f"tftp://127.0.0.1:{server['tftp_port']}/{path}"], capture_output=True)


def test_serves_ipxe_binaries_byte_for_byte(server):
    got = tftp_get(server, "undionly.kpxe")
    assert got.returncode == 0
    assert got.stdout == Path("/usr/lib/ipxe/undionly.kpxe").read_bytes()


def test_blksize_option_and_a_multi_megabyte_file(server):
    big = server["data"] / "tftp" / "big.bin"
    big.write_bytes(bytes(range(256)) * 20000)  # 5 MB: block numbers pass 65535 at 512 bytes? not here, at 1468
    got = tftp_get(server, "big.bin", "--tftp-blksize", "1468")
    assert hashlib.sha256(got.stdout).digest() == hashlib.sha256(big.read_bytes()).digest()


def test_many_clients_at_once(server):
    expected = Path("/usr/lib/ipxe/ipxe.efi").read_bytes()
    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(lambda _: tftp_get(server, "ipxe.efi").stdout, range(12)))
    assert all(r == expected for r in results)


def test_the_entry_script_is_generated(server):
    got = tftp_get(server, "boot.ipxe")
    assert got.stdout.startswith(b"#!ipxe") and b"/boot/${net0/mac}.ipxe" in got.stdout


@pytest.mark.parametrize("path", ["../../../etc/passwd", "%2e%2e/%2e%2e/etc/passwd", "nothing-here"])
def test_missing_and_escaping_paths_get_an_error(server, path):
    got = tftp_get(server, path)
    assert got.returncode != 0 and got.stdout == b""


def test_safe_path_confines_to_the_root(tmp_path):
    (tmp_path / "ok").write_text("x")
    (tmp_path / "out").symlink_to("/etc/passwd")
    assert safe_path(str(tmp_path), "/ok") == str(tmp_path / "ok")
    assert safe_path(str(tmp_path), "ok") == str(tmp_path / "ok")
    for bad in ("../etc/passwd", "a/../../etc", "out", "ok\0.txt", ""):
        assert safe_path(str(tmp_path), bad) is None


def test_the_per_mac_script_is_served_over_tftp_too(server):
    got = tftp_get(server, "boot/52:54:00:00:00:07.ipxe")
    assert got.returncode == 0
    assert b"sanboot --no-describe --drive 0x80" in got.stdout  # unknown MAC: the menu's default, local disk


def test_pxelinux_clients_get_a_per_mac_config_and_the_boot_files(server):
    import requests
    admin = server["admin"]
    url = server["url"]
    requests.post(f"{url}/api/storage", json={"name": "main", "export": "10.0.0.1:/images"}, headers=admin)
    requests.post(f"{url}/api/hosts", json={"mac": "52:54:00:00:00:08", "name": "pc8"}, headers=admin)
    requests.post(f"{url}/api/images", json={"name": "win10", "storage": "main"}, headers=admin)
    unknown = tftp_get(server, "pxelinux.cfg/01-52-54-00-00-00-09").stdout.decode()
    # Unknown MAC, default policy: a prompt whose default (after the timeout) is the local disk.
    assert unknown.startswith("DEFAULT local\nPROMPT 1\nTIMEOUT 30\n") and "LOCALBOOT 0" in unknown
    assert "imager.mode=register" in unknown and "imager.claim" not in unknown
    task = requests.post(f"{url}/api/tasks", json={"host": "pc8", "type": "capture", "image": "win10"},
                         headers=admin).json()
    config = tftp_get(server, "pxelinux.cfg/01-52-54-00-00-00-08").stdout.decode()
    assert "KERNEL imager/vmlinuz" in config and "INITRD imager/initrd.img" in config
    assert f"imager.task={task['id']}" in config and "imager.claim=" in config
    assert tftp_get(server, "imager/initrd.img").stdout == (server["boot"] / "initrd.img").read_bytes()
    (server["boot"] / "vmlinuz").unlink()  # not built: "file not found", the transfer ends at once
    missing = tftp_get(server, "imager/vmlinuz")
    assert missing.returncode != 0 and missing.stdout == b""
    assert tftp_get(server, "boot/::::::::::::::::.ipxe").returncode != 0  # the pattern of a script, but no MAC


@pytest.mark.parametrize("name, source", [("pxelinux.0", "/usr/lib/PXELINUX/pxelinux.0"),
                                          ("ldlinux.c32", "/usr/lib/syslinux/modules/bios/ldlinux.c32")])
def test_serves_the_syslinux_boot_files(server, name, source):
    got = tftp_get(server, name, "--tftp-blksize", "1408")
    assert got.returncode == 0 and got.stdout == Path(source).read_bytes()
