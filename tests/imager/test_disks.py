import pytest

from imager.disks import Disk, choose
from imager.errors import DiskNotFound

GB = 10**9


def disk(name, size, *, removable=False, bus="ata", serial="", wwn="", model=""):
    return Disk(f"/dev/{name}", name, size, 512, removable, bus, model, serial, wwn)


SSD = disk("nvme0n1", 512 * GB, bus="", serial="S4EWNX0R", model="Samsung SSD 970", wwn="eui.0025385")
HDD = disk("sda", 2000 * GB, serial="WD-123", wwn="0x50014ee2b", model="WDC WD20")
STICK = disk("sdb", 32 * GB, removable=True, bus="usb", serial="USB1")


def test_the_only_fixed_disk_is_chosen_and_usb_ignored():
    assert choose(None, [STICK, SSD]) is SSD


def test_several_fixed_disks_and_no_name_is_an_error_not_a_guess():
    with pytest.raises(DiskNotFound, match="several disks"):
        choose(None, [SSD, HDD])


def test_only_usb_disks_and_no_name_is_an_error():
    with pytest.raises(DiskNotFound, match="no fixed disk"):
        choose(None, [STICK])


@pytest.mark.parametrize("spec, expected", [
    ("serial=WD-123", HDD), ("serial=s4ewnx0r", SSD), ("wwn=0x50014ee2b", HDD), ("size=512G", SSD),
    ("size=2TB", HDD), ("model=Samsung SSD 970", SSD), ("serial=USB1", STICK),
])
def test_named_disks(spec, expected):
    assert choose(spec, [SSD, HDD, STICK]) is expected


@pytest.mark.parametrize("spec, message", [
    ("serial=NOPE", "no disk has"), ("size=1T", "no disk has"), ("color=red", "not /dev/"),
    ("size=lots", "not a size"),
])
def test_bad_or_unmatched_selectors(spec, message):
    with pytest.raises(DiskNotFound, match=message):
        choose(spec, [SSD, HDD])


def test_two_disks_of_the_same_size_are_ambiguous():
    twin = disk("sdc", 2000 * GB, serial="WD-456")
    with pytest.raises(DiskNotFound, match="2 disks match"):
        choose("size=2T", [HDD, twin])
