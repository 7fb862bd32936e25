"""The GRUB rendering of the boot decision (server_stub/bootpolicy.py): the same outcomes as iPXE's, in text
that GRUB's own parser (grub-script-check, from Debian's grub-common) accepts."""
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from server_stub.bootpolicy import (GRUB_TFTP_INITRD, GRUB_TFTP_KERNEL, BootContext, ImagerBoot, LocalBoot, MenuBoot,
                                    claim_of, decide, grub_path, render_grub, render_grub_entry, render_ipxe)

CTX = BootContext(base_url="http://10.0.0.1:8080", extra_args="console=ttyS0")
HOST = {"id": 1, "mac": "52:54:00:00:00:01", "name": "pc1"}
TASK = {"id": 9, "state": "queued", "token": "tok"}
CHAINLOAD = ("  if search --no-floppy --file --set=root /EFI/Microsoft/Boot/bootmgfw.efi; then\n"
             "    chainloader /EFI/Microsoft/Boot/bootmgfw.efi\n"
             "  elif search --no-floppy --file --set=root /EFI/BOOT/BOOTX64.EFI; then\n"
             "    chainloader /EFI/BOOT/BOOTX64.EFI\n"
             "  else\n"
             "    echo 'imager: no boot loader on a local disk: back to the firmware'\n"
             "    exit\n"
             "  fi\n"
             "  boot\n")


def grub_accepts(config: str) -> None:
    """GRUB's own script parser on the text: a syntax error names its line."""
    checker = shutil.which("grub-script-check")
    if checker is None:
        pytest.fail("grub-script-check is missing: apt-get install grub-common (Makefile's APT_PACKAGES)")
    checked = subprocess.run([checker], input=config.encode(), capture_output=True)
    assert checked.returncode == 0, checked.stderr.decode() + config


def entry(config: str, entry_id: str) -> str:
    """The body of the menuentry with --id entry_id."""
    start = config.index(f"--id {entry_id} {{\n")
    return config[start:config.index("\n}\n", start)]


def test_a_task_boots_the_imager_over_grubs_http_with_the_ipxe_command_line():
    spec = decide(HOST["mac"], HOST, TASK, CTX)
    assert isinstance(spec, ImagerBoot)
    config = render_grub(spec)
    grub_accepts(config)
    assert config.startswith("set timeout=0\nset default=imager\n")
    body = entry(config, "imager")
    assert f"  linux (http,10.0.0.1:8080)/files/vmlinuz {spec.cmdline}\n" in body
    assert "  initrd (http,10.0.0.1:8080)/files/initrd.img\n" in body
    words = body.split("linux ", 1)[1].split("\n", 1)[0].split()[1:]
    assert words == spec.cmdline.split()  # the same command line as the iPXE script's
    assert "imager.task=9" in words and f"imager.claim={claim_of('tok')}" in words and "chainloader" not in config


def test_over_tftp_the_kernel_comes_from_grubs_own_tftp_server_and_the_api_address_from_grub():
    spec = decide(HOST["mac"], HOST, TASK, replace(CTX, base_url="http://${net_default_server}:8080"))
    config = render_grub(spec, GRUB_TFTP_KERNEL, GRUB_TFTP_INITRD)
    grub_accepts(config)
    assert "  linux /imager/vmlinuz imager.server=http://${net_default_server}:8080 imager.task=9 " in config
    assert "  initrd /imager/initrd.img\n" in config and "(http," not in config


def test_local_boot_chainloads_the_esp_loader_windows_first_then_exit():
    config = render_grub(LocalBoot("no task"))
    grub_accepts(config)
    assert config.startswith("set timeout=0\nset default=local\n")
    body = entry(config, "local")
    assert CHAINLOAD in body + "\n"
    assert body.endswith("  echo 'imager: the local boot loader did not start: back to the firmware'\n  exit")
    assert "linux" not in config


def test_an_unknown_mac_gets_a_grub_menu_whose_default_is_the_local_disk():
    spec = decide("52:54:00:00:00:99", None, None, CTX)
    assert isinstance(spec, MenuBoot)
    config = render_grub(spec)
    grub_accepts(config)
    assert "\nset timeout=3\nset default=local\n" in config
    assert CHAINLOAD in entry(config, "local") + "\n"
    for entry_id, title, mode in (("register", "Quick registration and inventory", "register"),
                                  ("menu", "Imager menu", "menu")):
        body = entry(config, entry_id)
        assert f"menuentry '{title}' --id {entry_id} {{" in config
        assert f"imager.mode={mode}" in body.split() and "imager.claim" not in body
        assert "  linux (http,10.0.0.1:8080)/files/vmlinuz " in body


def test_kernel_arguments_grub_would_read_as_syntax_are_quoted():
    tricky = "console=ttyS0,115200n8 a;b c'd {e} $HOME x|y"
    spec = decide(HOST["mac"], HOST, TASK, replace(CTX, extra_args=tricky))
    config = render_grub(spec)
    grub_accepts(config)
    assert " console=ttyS0,115200n8 'a;b' 'c'\\''d' '{e}' '$HOME' 'x|y'\n" in config


def test_grub_paths_from_urls():
    assert grub_path("http://10.0.0.1:8080/files/vmlinuz") == "(http,10.0.0.1:8080)/files/vmlinuz"
    assert grub_path("http://[fd00::1]:8080/files/vmlinuz") == "(http,[fd00::1]:8080)/files/vmlinuz"
    assert grub_path("http://imager.lan") == "(http,imager.lan)"


def test_the_static_entry_loads_the_per_mac_config_and_falls_back_to_the_local_disk():
    config = render_grub_entry("/grub/grub.cfg-${imager_mac}")
    grub_accepts(config)
    lines = config.splitlines()
    assert 'set imager_mac="$net_default_mac"' in lines
    assert lines.index("configfile /grub/grub.cfg-${imager_mac}") < lines.index("  chainloader /EFI/BOOT/BOOTX64.EFI")
    assert lines[-1] == "exit"


def test_ipxe_on_uefi_chains_grub_for_the_local_disk_when_the_server_offers_it():
    loader = "http://10.0.0.1:8080/files/grubx64.efi"
    spec = decide(HOST["mac"], HOST, None, replace(CTX, uefi_loader=loader))
    assert spec == LocalBoot("no task", loader)
    script = render_ipxe(spec)
    assert ("iseq ${platform} efi && goto imager_uefi_local ||\n"
            "sanboot --no-describe --drive 0x80 || exit\n"
            ":imager_uefi_local\n"
            f"chain --autofree {loader} || exit\n") in script
    menu = render_ipxe(decide("52:54:00:00:00:99", None, None, replace(CTX, uefi_loader=loader)))
    assert f"chain --autofree {loader} || exit" in menu.split(":local\n", 1)[1]
    plain = render_ipxe(LocalBoot("no task"))  # --uefi-local-boot exit, or no GRUB installed
    assert "iseq ${platform} efi && exit ||" in plain and "chain" not in plain


def test_the_docs_show_the_static_entry_the_server_sends():
    doc = (Path(__file__).parents[2] / "docs" / "secure-boot.md").read_text()
    assert "```\n" + render_grub_entry("/grub/grub.cfg-${imager_mac}") + "```\n" in doc
