"""A NIC whose firmware is missing (issue 15): the server stores what the agent found in the kernel log
(registration's inventory, validated by contract.inventory.clean) and shows it to the technician."""
from server_stub.admincli import host_text
from tests.server_stub.test_api import admin
from tests.server_stub.test_api_registration import INVENTORY, MAC, register

MISSING = [{"driver": "r8169", "device": "0000:02:00.0", "interface": "eth0", "file": "rtl_nic/rtl8168h-2.fw"}]


def test_registration_stores_missing_firmware_and_the_cli_shows_it(server):
    r = register(server, mac=MAC, inventory={**INVENTORY, "firmware_missing": MISSING})
    assert r.status_code == 201, r.text
    host = admin(server, "GET", f"/api/hosts/{MAC}").json()
    assert host["inventory"]["data"]["firmware_missing"] == MISSING
    assert "  firmware: eth0 (r8169 0000:02:00.0) is missing rtl_nic/rtl8168h-2.fw" in host_text(host).splitlines()


def test_a_malformed_entry_is_refused_with_400_and_nothing_stored(server):
    bad = [{**MISSING[0], "file": "x\x1b[2J"}]
    r = register(server, mac=MAC, inventory={**INVENTORY, "firmware_missing": bad})
    assert r.status_code == 400 and "inventory.firmware_missing[0].file" in r.json()["error"]
    assert admin(server, "GET", f"/api/hosts/{MAC}").status_code == 404
