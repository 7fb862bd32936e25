"""The hardware readers, pointed at fake /proc and /sys trees."""
import os

import pytest

from imager import disks, hwinfo
from imager.ops import inventory

CPUINFO_2_SOCKETS = "".join(
    f"processor\t: {n}\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU E5-2620 v4 @ 2.10GHz\n"
    f"physical id\t: {n // 4}\ncore id\t\t: {(n % 4) // 2}\ncpu cores\t: 2\nflags\t\t: fpu vme\n\n" for n in range(8))


def write(root, path, text):
    full = root / path
    full.parent.mkdir(parents=True, exist_ok=True)
    full.write_text(text)


def test_cpu_counts_sockets_cores_and_threads(tmp_path):
    write(tmp_path, "proc/cpuinfo", CPUINFO_2_SOCKETS)
    assert hwinfo.read_cpu(str(tmp_path)) == {"model": "Intel(R) Xeon(R) CPU E5-2620 v4 @ 2.10GHz",
                                              "sockets": 2, "cores": 4, "threads": 8}


def test_cpu_without_topology_lines_counts_processors(tmp_path):
    # What a VM under TCG or an ARM board may show: no physical/core ids.
    write(tmp_path, "proc/cpuinfo", "processor\t: 0\nmodel name\t: QEMU Virtual CPU version 2.5+\n\n"
                                    "processor\t: 1\nmodel name\t: QEMU Virtual CPU version 2.5+\n")
    assert hwinfo.read_cpu(str(tmp_path)) == {"model": "QEMU Virtual CPU version 2.5+", "sockets": 1,
                                              "cores": 2, "threads": 2}


def test_memory_from_meminfo(tmp_path):
    write(tmp_path, "proc/meminfo", "MemTotal:        8012345 kB\nMemFree:  100 kB\n")
    assert hwinfo.read_memory(str(tmp_path)) == 8012345 * 1024
    assert hwinfo.read_memory(str(tmp_path / "nothing")) == 0


def test_dmi_keeps_what_the_firmware_filled_in_and_cleans_it(tmp_path):
    dmi = "sys/class/dmi/id/"
    write(tmp_path, dmi + "sys_vendor", "Dell Inc.\n")
    write(tmp_path, dmi + "product_name", "OptiPlex 7070\n")
    write(tmp_path, dmi + "product_serial", "5XYZ\x01123\n")  # firmware junk: control characters go
    write(tmp_path, dmi + "product_uuid", "4c4c4544-0058-5910-8035-b5c04f5a3332\n")
    write(tmp_path, dmi + "bios_version", "1.2.3" + "x" * 400)
    write(tmp_path, dmi + "board_name", "   \n")  # blank: left out
    write(tmp_path, dmi + "modalias", "dmi:bvnDell")  # not a field we report
    found = hwinfo.read_dmi(str(tmp_path))
    assert found == {"sys_vendor": "Dell Inc.", "product_name": "OptiPlex 7070", "product_serial": "5XYZ123",
                     "product_uuid": "4c4c4544-0058-5910-8035-b5c04f5a3332",
                     "bios_version": ("1.2.3" + "x" * 400)[:256]}


def test_dmi_that_cannot_be_read_is_left_out(tmp_path):
    """Unreadable for root too (a mode-000 file is not): open() fails on a directory, read() on /proc/self/mem."""
    dmi = tmp_path / "sys/class/dmi/id"
    write(tmp_path, "sys/class/dmi/id/sys_vendor", "Dell Inc.\n")
    (dmi / "product_serial").mkdir()                          # EISDIR at open
    os.symlink("/proc/self/mem", dmi / "product_uuid")        # EIO at read: address 0 is never mapped
    with pytest.raises(IsADirectoryError):
        open(dmi / "product_serial", "rb")
    with open(dmi / "product_uuid", "rb") as f, pytest.raises(OSError, match="Input/output error"):
        f.read(1)
    assert hwinfo.read_dmi(str(tmp_path)) == {"sys_vendor": "Dell Inc."}
    assert hwinfo.read_dmi(str(tmp_path / "no-dmi")) == {}


def make_nic(root, name, mac, *, type_="1", speed="1000", driver="e1000e", device=True):
    base = root / "sys/class/net" / name
    write(root, f"sys/class/net/{name}/address", mac + "\n")
    write(root, f"sys/class/net/{name}/type", type_ + "\n")
    if speed is not None:
        write(root, f"sys/class/net/{name}/speed", speed + "\n")
    if device:
        pci = root / "sys/devices/pci0000:00" / name
        (root / "sys/bus/pci/drivers" / driver).mkdir(parents=True, exist_ok=True)
        pci.mkdir(parents=True)
        os.symlink(os.path.relpath(root / "sys/bus/pci/drivers" / driver, pci), pci / "driver")
        os.symlink(os.path.relpath(pci, base), base / "device")


def test_nics_are_the_physical_ethernet_cards(tmp_path):
    make_nic(tmp_path, "enp0s3", "52:54:00:12:34:56")
    make_nic(tmp_path, "enp0s8", "52:54:00:AB:CD:EF", speed="-1", driver="igb")  # no link
    make_nic(tmp_path, "lo", "00:00:00:00:00:00", type_="772", device=False)
    make_nic(tmp_path, "br0", "52:54:00:00:00:01", device=False)  # a bridge: no device behind it
    make_nic(tmp_path, "wwan0", "", device=True, driver="qmi")  # no MAC to report
    assert hwinfo.read_nics(str(tmp_path)) == [
        {"name": "enp0s3", "mac": "52:54:00:12:34:56", "speed_mbps": 1000, "driver": "e1000e"},
        {"name": "enp0s8", "mac": "52:54:00:ab:cd:ef", "speed_mbps": None, "driver": "igb"},
    ]
    assert hwinfo.read_nics(str(tmp_path / "none")) == []


def test_rotational(tmp_path):
    write(tmp_path, "sys/block/sda/queue/rotational", "1\n")
    write(tmp_path, "sys/block/nvme0n1/queue/rotational", "0\n")
    assert hwinfo.read_rotational(str(tmp_path), "sda") is True
    assert hwinfo.read_rotational(str(tmp_path), "nvme0n1") is False
    assert hwinfo.read_rotational(str(tmp_path), "vdz") is None


def test_the_inventory_recipe_puts_it_together(tmp_path, monkeypatch):
    write(tmp_path, "proc/cpuinfo", CPUINFO_2_SOCKETS)
    write(tmp_path, "proc/meminfo", "MemTotal: 1024 kB\n")
    write(tmp_path, "sys/class/dmi/id/product_name", "OptiPlex 7070\n")
    write(tmp_path, "sys/block/sda/queue/rotational", "0\n")
    make_nic(tmp_path, "eth0", "52:54:00:12:34:56")
    sda = disks.Disk("/dev/sda", "sda", 500 * 10**9, 512, False, "ata", "Samsung SSD 860", "S3Z9NB0K", "0x5002538e")
    monkeypatch.setattr(disks, "all_disks", lambda: [sda])  # pyudev reads the real machine
    found = inventory.collect(str(tmp_path))
    assert found["disks"] == [{"path": "/dev/sda", "size_bytes": 500 * 10**9, "model": "Samsung SSD 860",
                               "serial": "S3Z9NB0K", "wwn": "0x5002538e", "rotational": False, "removable": False,
                               "bus": "ata", "logical_sector_size": 512}]
    assert found["memory_bytes"] == 1024 * 1024 and found["cpu"]["threads"] == 8
    assert found["dmi"] == {"product_name": "OptiPlex 7070"} and found["nics"][0]["mac"] == "52:54:00:12:34:56"
    lines = inventory.summary(found)
    assert any("S3Z9NB0K" in line for line in lines) and any("OptiPlex 7070" in line for line in lines)


@pytest.mark.parametrize("raw, clean", [("ab\x00c", "abc"), ("  x \n", "x"), ("é", "é"), ("\x9bx", "x")])
def test_text_is_printable(raw, clean):
    assert hwinfo.text(raw) == clean
