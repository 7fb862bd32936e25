"""disktest's logic without a disk: the surface scan against reads that fail where the test says, and the
verdicts from smartctl's JSON. A real scan of a loop device is in test_wipe_disktest_debug_on_loop_devices.py."""
from __future__ import annotations

import os

from imager.ops import disktest as disktest_mod
from imager.progress import Progress

MiB = 1024 * 1024


def test_unreadable_sectors_are_counted_one_by_one(monkeypatch, tmp_path):
    """The surface scan's logic with a disk that fails reads in a known range (no real bad disk here)."""
    bad = range(1000 * 512, 1003 * 512)
    real_preadv = os.preadv

    def failing(fd, buffers, offset):
        length = sum(len(b) for b in buffers)
        if any(offset <= at < offset + length for at in bad):
            raise OSError(5, "Input/output error")
        return real_preadv(fd, buffers, offset)
    path = tmp_path / "plain"
    path.write_bytes(bytes(8 * MiB))
    monkeypatch.setattr(disktest_mod.os, "preadv", failing)
    monkeypatch.setattr(disktest_mod.os, "O_DIRECT", 0, raising=False)  # tmpfs does not do O_DIRECT
    result = disktest_mod.surface_scan(str(path), 8 * MiB, 512, Progress())
    assert result["bad_sectors"] == 3 and result["bad_lbas"] == [1000, 1001, 1002]


def test_smart_verdicts_from_smartctl_json():
    healthy = {"smart_status": {"passed": True}, "ata_smart_attributes": {"table": [
        {"id": 5, "raw": {"value": 0}}, {"id": 197, "raw": {"value": 0}}, {"id": 9, "raw": {"value": 12000}}]}}
    assert disktest_mod.parse_smart(healthy, 0) == {"available": True, "passed": True, "warnings": {},
                                                    "reallocated_sectors": 0, "pending_sectors": 0,
                                                    "summary": "PASSED"}
    worn = {"smart_status": {"passed": True}, "nvme_smart_health_information_log": {
        "critical_warning": 0, "media_errors": 3, "percentage_used": 97}}
    assert disktest_mod.parse_smart(worn, 0)["warnings"] == {"media_errors": 3}
    assert disktest_mod.parse_smart({"smartctl": {"messages": [{"string": "Unable to detect device type"}]}},
                                    1) == {"available": False, "summary": "Unable to detect device type"}
