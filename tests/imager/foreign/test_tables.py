"""Reading FOG and Clonezilla images' metadata: pure parsing, no root. Deploying them: test_fog_images.py, test_clonezilla_images.py."""
from __future__ import annotations

import pytest

from imager.errors import InvalidImage
from imager.foreign.tables import parse_sfdisk_dump


def test_sfdisk_dumps_parse_into_layouts():
    dump = ("label: dos\nlabel-id: 0x1234\ndevice: /dev/sda\nunit: sectors\n\n"
            "/dev/sda1 : start=2048, size=204800, type=83, bootable\n/dev/sda2 : start=206848, size=100000, type=5\n"
            "/dev/sda5 : start=208896, size=50000, type=82\n")
    layout = parse_sfdisk_dump(dump)
    assert layout.label == "msdos" and [p.number for p in layout.partitions] == [1, 2, 5]
    assert [p.kind for p in layout.partitions] == ["normal", "extended", "logical"]
    assert layout.partitions[0].sectors == 204800
    assert layout.disk_sectors == 306848  # no last-lba in a dos dump: the disk ends where its extended one does


def test_a_gpt_dump_keeps_names_and_sector_size_and_ends_after_its_backup_table():
    dump = ("label: gpt\nlabel-id: 0E3A5E8C-2D0B-4F4B-9E53-6A1B2C3D4E5F\ndevice: /dev/nvme0n1\nunit: sectors\n"
            "first-lba: 6\nlast-lba: 262138\nsector-size: 4096\n\n"
            '/dev/nvme0n1p1 : start=256, size=25600, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="EFI system"\n'
            "/dev/nvme0n1p2 : start=25856, size=236032, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n")
    layout = parse_sfdisk_dump(dump)
    assert (layout.label, layout.sector_size, layout.disk_sectors) == ("gpt", 4096, 262138 + 6)  # backup header + 4 sectors of entries
    assert [(p.number, p.start, p.sectors, p.kind, p.name) for p in layout.partitions] == [
        (1, 256, 25600, "normal", "EFI system"), (2, 25856, 236032, "normal", "")]


def test_a_dump_without_partitions_is_an_invalid_image():
    with pytest.raises(InvalidImage, match="lists no partitions"):
        parse_sfdisk_dump("label: dos\nunit: sectors\n\n")
