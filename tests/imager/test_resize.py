"""resize.plan and resize.sfdisk_script: the new layout for a target disk, worked out by hand (no disks, no root).
Shrinking and growing real filesystems is in ops/test_deploy_resizable_on_loop_devices.py."""
from __future__ import annotations

import pytest

from imager.errors import DiskTooSmall
from imager.partitions import Layout, Partition
from imager.resize import plan, sfdisk_script

MiB_SECTORS = 2048          # 1 MiB in 512-byte sectors
GiB_SECTORS = 1024 * MiB_SECTORS


def gpt_disk():
    """1 GiB: a 100 MiB EFI partition, then an ext4 partition up to the last whole MiB."""
    return Layout("gpt", 512, GiB_SECTORS, [
        Partition(1, 2048, 204800, "normal", fstype="vfat"),
        Partition(2, 206848, 1888256, "normal", fstype="ext4"),   # ends at sector 2095103
    ])


def test_a_larger_disk_goes_to_the_resizable_partition():
    new = plan(gpt_disk(), {2: 300 * 2**20}, 2 * GiB_SECTORS)
    assert new.disk_sectors == 2 * GiB_SECTORS
    assert [(p.number, p.start, p.sectors) for p in new.partitions] == [(1, 2048, 204800),
                                                                     (2, 206848, 1888256 + GiB_SECTORS)]


def test_a_smaller_disk_takes_room_from_the_resizable_partition_down_to_its_filesystem():
    new = plan(gpt_disk(), {2: 300 * 2**20}, 512 * MiB_SECTORS)
    assert [(p.start, p.sectors) for p in new.partitions] == [(2048, 204800), (206848, 1888256 - 512 * MiB_SECTORS)]
    assert new.partitions[1].end + 1 + 33 <= 512 * MiB_SECTORS   # the backup GPT still fits


def test_the_delta_is_whole_mebibytes():
    # 1 GiB + 1.5 MiB: the partition grows by 1 MiB, the half MiB stays unused
    new = plan(gpt_disk(), {2: 300 * 2**20}, GiB_SECTORS + 3 * 1024)
    assert new.partitions[1].sectors == 1888256 + MiB_SECTORS


def test_a_disk_too_small_for_the_filesystem_is_refused():
    # 300 MiB target: partition 2 would get 300 - 101 - 1 MiB, less than its 250 MiB filesystem
    with pytest.raises(DiskTooSmall, match="too small even with partition 2 shrunk to its 262144000-byte filesystem"):
        plan(gpt_disk(), {2: 250 * 2**20}, 300 * MiB_SECTORS)


def test_without_a_resizable_partition_the_layout_must_fit_as_it_is():
    layout = gpt_disk()
    assert plan(layout, {}, 2 * GiB_SECTORS).partitions == layout.partitions
    with pytest.raises(DiskTooSmall, match="has no resizable partition"):
        plan(layout, {}, GiB_SECTORS - MiB_SECTORS)


def dos_disk():
    """1 GiB msdos: a primary, an extended holding a resizable logical partition and a swap after it."""
    return Layout("msdos", 512, GiB_SECTORS, [
        Partition(1, 2048, 204800, "normal", fstype="ext4"),
        Partition(2, 206848, 1890304, "extended"),                 # to the end of the disk
        Partition(5, 208896, 1683456, "logical", fstype="ntfs"),
        Partition(6, 1894400, 202752, "logical", fstype="swap"),   # the last 99 MiB
    ])


def test_the_last_resizable_partition_grows_its_container_stretches_and_what_follows_moves():
    new = plan(dos_disk(), {1: 50 * 2**20, 5: 400 * 2**20}, 2 * GiB_SECTORS)
    assert [(p.number, p.start, p.sectors) for p in new.partitions] == [
        (1, 2048, 204800),                                # an earlier resizable partition stays as it is
        (2, 206848, 1890304 + GiB_SECTORS),
        (5, 208896, 1683456 + GiB_SECTORS),
        (6, 1894400 + GiB_SECTORS, 202752),
    ]


def test_on_a_smaller_disk_only_a_shrunk_filesystem_gives_room():
    # partition 5's filesystem fills it (not shrunk): partition 1's, shrunk to 50 MiB, gives the room instead
    new = plan(dos_disk(), {1: 50 * 2**20, 5: 1683456 * 512}, GiB_SECTORS - 40 * MiB_SECTORS)
    assert [(p.number, p.start, p.sectors) for p in new.partitions] == [
        (1, 2048, 204800 - 40 * MiB_SECTORS),
        (2, 206848 - 40 * MiB_SECTORS, 1890304),
        (5, 208896 - 40 * MiB_SECTORS, 1683456),
        (6, 1894400 - 40 * MiB_SECTORS, 202752),
    ]


def test_the_saved_sfdisk_dump_gets_the_planned_starts_and_sizes():
    dump = ("label: gpt\nlabel-id: 0E3A5E8C-2D0B-4F4B-9E53-6A1B2C3D4E5F\ndevice: /dev/sda\nunit: sectors\n"
            "first-lba: 34\nlast-lba: 2097118\nsector-size: 512\n\n"
            '/dev/sda1 : start=        2048, size=      204800, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, '
            'uuid=1B2C3D4E-0000-4000-8000-000000000001, name="EFI"\n'
            '/dev/sda2 : start=      206848, size=     1888256, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, '
            'uuid=1B2C3D4E-0000-4000-8000-000000000002\n')
    planned = plan(gpt_disk(), {2: 300 * 2**20}, 2 * GiB_SECTORS)
    assert sfdisk_script(dump, planned) == (
        "label: gpt\nlabel-id: 0E3A5E8C-2D0B-4F4B-9E53-6A1B2C3D4E5F\nunit: sectors\nfirst-lba: 34\n"
        "sector-size: 512\n\n"
        '/dev/sda1 : start=2048, size=204800, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, '
        'uuid=1B2C3D4E-0000-4000-8000-000000000001, name="EFI"\n'
        f'/dev/sda2 : start=206848, size={1888256 + GiB_SECTORS}, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, '
        'uuid=1B2C3D4E-0000-4000-8000-000000000002\n')
