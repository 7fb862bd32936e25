"""A NIC whose firmware is missing is named from the kernel log (issue 15): the parser, the sysfs
check that the device is a NIC, and the inventory field the server validates and stores."""
import pytest

from contract.inventory import InvalidInventory, clean
from imager import disks, missingfirmware
from imager.ops import inventory

DMESG = """\
[    1.020000] pci 0000:02:00.0: [10ec:8168] type 00 class 0x020000
[    2.345678] r8169 0000:02:00.0: Direct firmware load for rtl_nic/rtl8168h-2.fw failed with error -2
[    2.345700] r8169 0000:02:00.0 eth0: unable to load firmware patch rtl_nic/rtl8168h-2.fw (-2)
[    2.345710] r8169 0000:02:00.0: Unable to load firmware rtl_nic/rtl8168h-2.fw (-2)
[    2.345720] r8169 0000:04:00.0: Unable to load firmware rtl_nic/rtl8125b-2.fw (-2)
[    2.400000] r8169 0000:02:00.0 eth0: Link is Up - 1Gbps/Full - flow control off
[    2.500000] usb 2-1: new SuperSpeed USB device number 2 using xhci_hcd
[    2.600000] r8152 2-1:1.0: unable to load firmware patch rtl_nic/rtl8153a-4.fw (-2)
[    2.700000] tg3 0000:01:00.0 eno2: Failed to load firmware "tigon/tg3_tso5.bin"
[    2.800000] i915 0000:00:02.0: Direct firmware load for i915/kbl_dmc_ver1_04.bin failed with error -2
[    2.900000] xyz 0000:05:00.0: failed to load firmware for device, error -2
"""
KMSG = ("3,512,2345700,-;bnx2x 0000:03:00.0: Direct firmware load for bnx2x/bnx2x-e2-7.13.21.0.fw failed with error -2\n"
        " SUBSYSTEM=pci\n DEVICE=+pci:0000:03:00.0\n"
        "3,513,2345800,-;bnx2x 0000:03:00.0 eno1: Can't load firmware file bnx2x/bnx2x-e2-7.13.21.0.fw\n"
        "6,514,2345900,-;Freeing unused kernel image (initmem) memory: 2920K\n")


def test_the_parser_names_driver_device_interface_and_file_once_each():
    assert missingfirmware.parse(DMESG) == [
        {"driver": "r8169", "device": "0000:02:00.0", "interface": "eth0", "file": "rtl_nic/rtl8168h-2.fw"},
        {"driver": "r8169", "device": "0000:04:00.0", "interface": "", "file": "rtl_nic/rtl8125b-2.fw"},
        {"driver": "r8152", "device": "2-1:1.0", "interface": "", "file": "rtl_nic/rtl8153a-4.fw"},
        {"driver": "tg3", "device": "0000:01:00.0", "interface": "eno2", "file": "tigon/tg3_tso5.bin"},
        {"driver": "i915", "device": "0000:00:02.0", "interface": "", "file": "i915/kbl_dmc_ver1_04.bin"},
    ]  # "failed to load firmware for device": no file named, nothing to add


def test_the_parser_reads_kmsg_records():
    assert missingfirmware.parse(KMSG) == [
        {"driver": "bnx2x", "device": "0000:03:00.0", "interface": "eno1", "file": "bnx2x/bnx2x-e2-7.13.21.0.fw"}]


def test_a_hostile_log_line_gives_printable_short_text():
    line = "[ 1.0] evil 0000:09:00.0: Direct firmware load for " + "a/" + "x" * 400 + "\x1b[2J failed with error -2"
    (entry,) = missingfirmware.parse(line)
    assert len(entry["file"]) <= 256 and "\x1b" not in entry["file"]
    clean({"firmware_missing": [entry]})  # the server takes it


def write(root, path, text):
    full = root / path
    full.parent.mkdir(parents=True, exist_ok=True)
    full.write_text(text)


def fake_machine(root):
    write(root, "dev/kmsg", DMESG + KMSG)  # a file here; the real /dev/kmsg gives one record per read
    write(root, "sys/bus/pci/devices/0000:02:00.0/class", "0x020000\n")
    (root / "sys/bus/pci/devices/0000:02:00.0/net/eth0").mkdir(parents=True)
    write(root, "sys/bus/pci/devices/0000:03:00.0/class", "0x020000\n")  # probe failed: no interface
    write(root, "sys/bus/pci/devices/0000:00:02.0/class", "0x030000\n")  # a GPU
    (root / "sys/bus/usb/devices/2-1:1.0/net/enx00e04c680001").mkdir(parents=True)  # vendor class, has a netdev
    write(root, "sys/bus/usb/devices/2-1:1.0/bInterfaceClass", "ff\n")


def test_only_nics_are_named_with_the_interface_from_sysfs(tmp_path):
    fake_machine(tmp_path)
    missing = missingfirmware.missing_nic_firmware(str(tmp_path))
    assert [(m["driver"], m["interface"]) for m in missing] == [("r8169", "eth0"), ("r8152", "enx00e04c680001"),
                                                                 ("bnx2x", "eno1")]
    # tg3's device is not on this machine's buses, i915's is a GPU
    lines = missingfirmware.console_lines(missing)
    assert lines[0] == ("NIC eth0 (r8169 0000:02:00.0) is missing firmware rtl_nic/rtl8168h-2.fw: add it to the "
                        "boot image with make initramfs FIRMWARE_DIR=… (docs/hardware.md)")


def test_no_kernel_log_means_nothing_missing(tmp_path):
    assert missingfirmware.read_kernel_log(str(tmp_path)) == ""
    assert missingfirmware.missing_nic_firmware(str(tmp_path)) == []


def test_the_inventory_carries_it_and_the_contract_checks_it(tmp_path, monkeypatch):
    fake_machine(tmp_path)
    monkeypatch.setattr(disks, "all_disks", lambda: [])
    found = inventory.collect(str(tmp_path))
    assert found["firmware_missing"][0]["file"] == "rtl_nic/rtl8168h-2.fw"
    assert clean(found)["firmware_missing"] == found["firmware_missing"]
    assert any("missing firmware rtl_nic/rtl8168h-2.fw" in line for line in inventory.summary(found))
    bare = tmp_path / "bare"
    bare.mkdir()
    assert "firmware_missing" not in inventory.collect(str(bare))


@pytest.mark.parametrize("entries, message", [
    ([{"driver": "r8169", "file": "a.fw", "shell": "x"}], "inventory.firmware_missing[0] has unknown fields: shell"),
    ([{"file": "evil\x1b[2J"}], "inventory.firmware_missing[0].file"),
    ([{"file": 3}], "inventory.firmware_missing[0].file"),
    ("rtl_nic/rtl8168h-2.fw", "inventory.firmware_missing must be a list"),
    ([{"file": "a.fw"}] * 65, "at most 64"),
])
def test_the_contract_refuses_a_malformed_entry(entries, message):
    with pytest.raises(InvalidInventory, match=message.replace("[", r"\[").replace("]", r"\]")):
        clean({"firmware_missing": entries})
