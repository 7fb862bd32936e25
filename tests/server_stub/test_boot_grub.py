"""The Secure Boot chain and UEFI HTTP boot as the server serves them: GRUB configs per MAC over TFTP and HTTP,
logged like iPXE's; shim, GRUB and iPXE's EFI loaders over TFTP and HTTP (Debian's signed binaries)."""
import hashlib
from pathlib import Path

import pytest
import requests

from server_stub import startup
from server_stub.boot import BootService
from server_stub.config import ServerConfig
from server_stub.store import Store
from tests.server_stub import tftp_client

MAC = "52:54:00:00:00:01"
SIGNED = {"shimx64.efi": Path("/usr/lib/shim/shimx64.efi.signed"),
          "grubx64.efi": Path("/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed")}


@pytest.fixture
def store(tmp_path):
    store = Store(str(tmp_path / "boot.sqlite3"))
    yield store
    store.close()


def service(store, tmp_path, **settings) -> BootService:
    return BootService(store, ServerConfig(admin_token="x", boot_dir=str(tmp_path), data_dir=str(tmp_path),
                                           bind="10.0.0.1", http_port=8080, **settings))


def with_task(store):
    store.add_storage("main", "10.0.0.1:/images")
    store.add_host(MAC, "pc1")
    store.add_image("win10", "main")
    return store.add_task("pc1", "capture", "win10")


def need_signed_binaries():
    missing = [str(path) for path in SIGNED.values() if not path.is_file()]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: apt-get install shim-signed grub-efi-amd64-signed")


def test_the_tftp_table_has_grubs_entry_and_a_config_per_mac_logged_like_ipxe(store, tmp_path):
    boot = service(store, tmp_path)
    task = with_task(store)
    entry = boot.tftp_file("grub/grub.cfg", "10.0.0.9")
    assert isinstance(entry, bytes) and b"configfile /grub/grub.cfg-${imager_mac}\n" in entry
    config = boot.tftp_file(f"grub/grub.cfg-{MAC}", "10.0.0.9")
    assert isinstance(config, bytes)
    text = config.decode()
    assert "  linux /imager/vmlinuz imager.server=http://${net_default_server}:8080 " in text
    assert f" imager.task={task['id']} " in text and "  initrd /imager/initrd.img\n" in text
    assert [(e["mac"], e["decision"], e["task_id"]) for e in store.boot_log()] == [(MAC, "imager", task["id"])]
    # GRUB fetches the kernel from where pxelinux does: the boot directory, over TFTP
    assert boot.tftp_file("imager/vmlinuz", "10.0.0.9") == tmp_path / "vmlinuz"


def test_a_malformed_mac_in_a_grub_path_is_not_found_and_logs_nothing(store, tmp_path):
    boot = service(store, tmp_path)
    assert boot.tftp_file("grub/grub.cfg-zz:zz:zz:zz:zz:zz", "10.0.0.9") is None
    assert boot.tftp_file("grub/grub.cfg-52:54:00", "10.0.0.9") is None
    assert boot.tftp_file("grub/grub.cfg-525400000001-----", "10.0.0.9") is None  # the path's shape, no MAC
    assert store.boot_log() == []


def test_ipxe_on_uefi_chains_our_grub_only_when_set_and_installed(store, tmp_path):
    assert service(store, tmp_path).context("http://s:8080").uefi_loader == ""  # not installed: exit
    (tmp_path / "tftp").mkdir()
    (tmp_path / "tftp" / "grubx64.efi").write_bytes(b"grub")
    assert service(store, tmp_path).context("http://s:8080").uefi_loader == "http://s:8080/files/grubx64.efi"
    assert service(store, tmp_path, uefi_local_boot="exit").context("http://s:8080").uefi_loader == ""
    store.add_host(MAC, "pc1")
    script = service(store, tmp_path).tftp_file(f"boot/{MAC}.ipxe", "10.0.0.9")
    assert isinstance(script, bytes)
    assert b"chain --autofree http://${next-server}:8080/files/grubx64.efi || exit\n" in script


def test_startup_installs_the_signed_chain_where_shim_looks_for_grub(tmp_path):
    need_signed_binaries()
    written = startup.install_boot_binaries(tmp_path)
    assert {"shimx64.efi", "grubx64.efi", "mmx64.efi"} <= set(written)
    for name, source in SIGNED.items():  # shim loads grubx64.efi from its own directory: both in the root
        assert (tmp_path / name).read_bytes() == source.read_bytes()


def test_a_real_server_serves_grub_configs_over_http_with_a_4xx_for_a_bad_mac(server):
    url = server["url"]
    entry = requests.get(f"{url}/grub/grub.cfg", timeout=10)
    assert entry.status_code == 200
    assert f"configfile (http,{url.split('//')[1]})/boot/${{imager_mac}}.grub\n" in entry.text
    local = requests.get(f"{url}/boot/{MAC}.grub", timeout=10)
    assert local.status_code == 200 and "chainloader /EFI/BOOT/BOOTX64.EFI" in local.text
    assert "set default=local" in local.text and "linux" in local.text  # unknown: the menu, local by default
    for bad in ("not-a-mac", "zz:zz:zz:zz:zz:zz", "52:54:00:00:00:01:02"):
        assert requests.get(f"{url}/boot/{bad}.grub", timeout=10).status_code == 400
    log = requests.get(f"{url}/api/boot-log", headers=server["admin"], timeout=10).json()
    assert [e["mac"] for e in log] == [MAC]


def test_a_real_server_sends_the_signed_loaders_over_tftp_and_http(server):
    need_signed_binaries()
    for name, source in SIGNED.items():
        got = tftp_client.fetch(server["tftp_port"], name, {"blksize": "1468"}).data
        assert hashlib.sha256(got).digest() == hashlib.sha256(source.read_bytes()).digest(), name
        r = requests.get(f"{server['url']}/files/{name}", timeout=30)
        assert r.status_code == 200 and r.content == source.read_bytes()
        assert r.headers["Content-Length"] == str(source.stat().st_size)
        assert r.headers["Content-Type"] == "application/efi"
    entry = tftp_client.fetch(server["tftp_port"], "/grub/grub.cfg").data  # GRUB asks with $prefix's slash
    assert b"configfile /grub/grub.cfg-${imager_mac}" in entry
    config = tftp_client.fetch(server["tftp_port"], f"/grub/grub.cfg-{MAC}").data
    assert b"chainloader /EFI/Microsoft/Boot/bootmgfw.efi" in config
    assert requests.get(f"{server['url']}/files/bootx64.efi", timeout=10).status_code == 404

