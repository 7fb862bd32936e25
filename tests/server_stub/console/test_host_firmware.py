"""The host page names a NIC whose firmware the boot image lacks (issue 15, imager/missingfirmware.py)."""
MAC = "52:54:00:aa:bb:07"


def test_the_host_page_lists_missing_firmware(console):
    store = console.store
    store.add_host(MAC, "pc7")
    task = store.add_task("pc7", "inventory", None)
    store.start_task(task["id"])
    store.finish_task(task["id"], {}, inventory={
        "nics": [{"name": "eth0", "mac": MAC, "speed_mbps": None, "driver": "r8169"}],
        "firmware_missing": [{"driver": "r8169", "device": "0000:02:00.0", "interface": "eth0",
                              "file": "rtl_nic/<rtl8168h-2>.fw"}]})
    shown = console.get("/hosts/pc7").by_id("host-firmware-missing").text
    # the name comes back as text: escaped, not taken for a tag
    assert "eth0 (r8169 0000:02:00.0" in shown and "rtl_nic/<rtl8168h-2>.fw" in shown and "FIRMWARE_DIR" in shown
    assert console.get("/hosts/pc7").status == 200
    store.add_host("52:54:00:aa:bb:08", "pc8")
    assert not console.get("/hosts/pc8").doc.has_id("host-firmware-missing")
