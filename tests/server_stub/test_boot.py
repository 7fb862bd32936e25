"""server_stub/boot.py with a real store: what a MAC boots over HTTP and TFTP, and the boot log it leaves."""
import sqlite3
import subprocess

import pytest

from server_stub.boot import BootService
from server_stub.bootpolicy import ImagerBoot, LocalBoot, MenuBoot, claim_of
from server_stub.config import ServerConfig, TlsConfig
from server_stub.errors import Invalid
from server_stub.store import Store, hosts

MAC = "52:54:00:00:00:01"
FP = "sha256:" + "ab" * 32


@pytest.fixture
def store(tmp_path):
    store = Store(str(tmp_path / "boot.sqlite3"))
    yield store
    store.close()


def service(store, tmp_path, **settings) -> BootService:
    return BootService(store, ServerConfig(admin_token="x", boot_dir=str(tmp_path), bind="10.0.0.1",
                                           http_port=8080, **settings))


def with_task(store):
    store.add_storage("main", "10.0.0.1:/images")
    store.add_host(MAC, "pc1")
    store.add_image("win10", "main")
    return store.add_task("pc1", "capture", "win10")


def test_each_decision_is_logged_with_its_task(store, tmp_path):
    boot = service(store, tmp_path)
    assert isinstance(boot.decide_for_mac("52-54-00-00-00-09", "http://s"), MenuBoot)  # unknown: the menu
    task = with_task(store)
    spec = boot.decide_for_mac(MAC.upper(), "http://s")
    assert isinstance(spec, ImagerBoot) and f"imager.claim={claim_of(task['token'])}" in spec.cmdline
    assert [(e["mac"], e["decision"], e["task_id"]) for e in store.boot_log()] == [
        (MAC, "imager", task["id"]), ("52:54:00:00:00:09", "menu: unknown host (local disk after 3 s)", None)]


def test_a_bad_mac_is_invalid_and_logs_nothing(store, tmp_path):
    with pytest.raises(Invalid, match="not a MAC"):
        service(store, tmp_path).decide_for_mac("not-a-mac", "http://s")
    assert store.boot_log() == []


def test_the_context_carries_the_settings_and_the_url_asked(store, tmp_path):
    boot = service(store, tmp_path, kernel_args="quiet", unknown_hosts="local", menu_timeout=7)
    ctx = boot.context("http://10.0.0.1:8080")
    assert (ctx.base_url, ctx.extra_args, ctx.unknown_hosts, ctx.menu_timeout, ctx.api_url) == \
        ("http://10.0.0.1:8080", "quiet", "local", 7, "")
    assert boot.decide_for_mac(MAC, "http://s") == LocalBoot("unknown host")


def test_with_tls_the_imager_calls_the_api_over_https_and_pins(store, tmp_path):
    boot = service(store, tmp_path, tls=TlsConfig(https_port=8443, fingerprint=FP))
    ctx = boot.context("http://${next-server}:8080")
    assert (ctx.api_url, ctx.server_fp) == ("https://${next-server}:8443", FP)
    with_task(store)
    words = boot.decide_for_mac(MAC, "http://10.0.0.1:8080").cmdline.split()
    assert "imager.server=https://10.0.0.1:8443" in words and f"imager.server_fp={FP}" in words


def test_urls_public_or_as_reached(store, tmp_path):
    assert service(store, tmp_path).http_base("10.0.0.5:8080") == "http://10.0.0.5:8080"
    assert service(store, tmp_path).ipxe_base() == "http://${next-server}:8080"
    public = service(store, tmp_path, public_url="http://imager.lan")
    assert public.http_base("10.0.0.5:8080") == public.ipxe_base() == "http://imager.lan"


def test_the_tftp_table(store, tmp_path):
    boot = service(store, tmp_path)
    task = with_task(store)
    assert boot.tftp_file("boot.ipxe", "10.0.0.9") == (b"#!ipxe\nchain http://${next-server}:8080/boot/${net0/mac}.ipxe"
                                                       b" || sanboot --no-describe --drive 0x80 || exit\n")
    script = boot.tftp_file(f"boot/{MAC}.ipxe", "10.0.0.9").decode()
    assert f"imager.task={task['id']}" in script and "kernel http://${next-server}:8080/files/vmlinuz" in script
    pxelinux = boot.tftp_file("pxelinux.cfg/01-52-54-00-00-00-01", "10.0.0.9").decode()
    assert "KERNEL imager/vmlinuz" in pxelinux and "imager.server=http://10.0.0.1:8080" in pxelinux
    assert boot.tftp_file("imager/vmlinuz", "10.0.0.9") == tmp_path / "vmlinuz"  # sent block by block
    assert boot.tftp_file("boot/::::::::::::::::.ipxe", "10.0.0.9") is None  # matches the pattern, no MAC
    assert boot.tftp_file("undionly.kpxe", "10.0.0.9") is None  # a file on disk: not generated
    assert len(store.boot_log()) == 2


def test_a_failing_boot_log_write_never_fails_the_boot_answer(store, tmp_path, monkeypatch, caplog):
    task = with_task(store)

    def disk_full(*args):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(store, "log_boot", disk_full)
    spec = service(store, tmp_path).decide_for_mac(MAC, "http://s")
    assert isinstance(spec, ImagerBoot) and f"imager.task={task['id']}" in spec.cmdline
    assert "boot log of 52:54:00:00:00:01 not written: database or disk is full" in caplog.text


@pytest.fixture
def full_disk(tmp_path):
    """A 2 MiB tmpfs; the test fills it."""
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def test_every_boot_script_is_served_from_a_full_data_disk(full_disk, tmp_path):
    store = Store(str(full_disk / "imager.sqlite3"))
    try:
        task = with_task(store)
        boot = service(store, tmp_path)
        with open(full_disk / "filler", "wb") as filler:
            with pytest.raises(OSError):
                while True:
                    filler.write(b"\0" * 65536)
                    filler.flush()
        with pytest.raises(sqlite3.OperationalError):  # the disk is full indeed
            store.log_boot("52:54:00:00:00:99", "test", None)
        assert f"imager.task={task['id']}" in boot.tftp_file(f"boot/{MAC}.ipxe", "10.0.0.9").decode()
        assert b"sanboot" in boot.tftp_file("boot/52:54:00:00:00:09.ipxe", "10.0.0.9")  # unknown host: the menu
        assert "imager" in boot.tftp_file("pxelinux.cfg/01-52-54-00-00-00-01", "10.0.0.9").decode()
        (full_disk / "filler").unlink()  # space again: the log is written again
        boot.decide_for_mac(MAC, "http://s")
        assert store.boot_log(MAC)[0]["decision"] == "imager"
    finally:
        store.close()


def test_the_boot_log_is_bounded_per_mac_and_in_all(store, monkeypatch):
    monkeypatch.setattr(hosts, "BOOT_LOG_PER_MAC", 5)
    monkeypatch.setattr(hosts, "BOOT_LOG_TOTAL", 12)
    for i in range(8):
        store.log_boot(MAC, f"boot {i}", None)
    assert [e["decision"] for e in store.boot_log(MAC)] == [f"boot {i}" for i in range(7, 2, -1)]
    for i in range(20):
        store.log_boot(f"52:54:00:00:01:{i:02x}", "other", None)
    assert len(store.boot_log(limit=1000)) == 12 and store.boot_log(MAC) == []
