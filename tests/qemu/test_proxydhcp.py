"""proxyDHCP: the site's DHCP server knows nothing about PXE; our dnsmasq only adds the boot information."""
from __future__ import annotations

import shutil

import pytest

from tests.qemu.lab import Lab, make_source_disk

pytestmark = [pytest.mark.qemu, pytest.mark.root]
MAC = "52:54:00:12:34:0f"


def test_a_client_boots_through_proxydhcp_beside_a_plain_dhcp_server():
    lab = Lab(dhcp="proxy")
    try:
        with lab:
            disk = lab.dir / "p.img"
            make_source_disk(disk, size_mib=256)
            lab.cli("host", "add", MAC, "pc-proxy")
            lab.cli("image", "add", "proxied", "--storage", "lab")
            task = lab.cli_json("task", "capture", "pc-proxy", "proxied")
            vm = lab.boot("p", MAC, disk)
            vm.wait_exit(900)
            assert lab.task(task["id"])["state"] == "done", lab.task(task["id"]).get("error")
            # The address came from the site's server; the boot file from our proxy.
            assert MAC in (lab.dir / "site-dhcp.leases").read_text()
            assert "Next server: 10.231.0.1" in vm.console_text()
            assert "gw 10.231.0.2" in vm.console_text()
            assert (lab.images / "proxied" / "manifest.json").exists()
    finally:
        shutil.rmtree(lab.dir, ignore_errors=True)
