"""Disk test: is this disk healthy enough to keep?

The recipe: ask the drive itself (smartctl -H -A: its overall health verdict and the counters that
predict a failure: reallocated, pending and uncorrectable sectors; NVMe media errors and wear), then
read every sector of the disk (a read-only surface scan, bypassing the page cache) and count the
sectors that cannot be read.  Nothing is written.  The verdict is "pass" unless SMART says the drive
is failing or a sector did not read; the whole result goes on the task either way.
"""
from __future__ import annotations

import json
import logging
import mmap
import os
import time
from typing import Any

from imager import disks, process
from imager.ops.context import OpContext
from imager.progress import Progress, human

log = logging.getLogger(__name__)

CHUNK = 4 * 1024 * 1024
MAX_LISTED = 50  # bad sectors named in the result; the count is always complete
# ATA attributes whose raw value above zero is a warning sign (Backblaze's short list).
WATCHED = {5: "reallocated_sectors", 187: "reported_uncorrectable", 197: "pending_sectors",
           198: "offline_uncorrectable"}


def disktest(ctx: OpContext) -> dict[str, Any]:
    disk_spec, progress = ctx.task.get("disk"), ctx.progress
    disk = disks.select(disk_spec)
    started = time.monotonic()
    log.info("testing %s (%s, %s)", disk.path, human(disk.size_bytes), disk.model or "?")
    smart = smart_report(disk.path)
    log.info("SMART: %s", smart.get("summary", "not available"))
    scan = surface_scan(disk.path, disk.size_bytes, disk.logical_sector_size, progress)
    log.info("surface scan: %s read, %d unreadable sectors", human(scan["bytes_read"]), scan["bad_sectors"])
    reasons = []
    if smart.get("passed") is False:
        reasons.append("SMART overall health: FAILED")
    reasons += [f"SMART {name} = {value}" for name, value in smart.get("warnings", {}).items()]
    if scan["bad_sectors"]:
        reasons.append(f"{scan['bad_sectors']} unreadable sectors")
    return {"disk": disk.path, "size_bytes": disk.size_bytes, "model": disk.model, "serial": disk.serial,
            "smart": smart, "surface": scan, "verdict": "fail" if reasons else "pass", "reasons": reasons,
            "seconds": round(time.monotonic() - started, 1)}


def smart_report(disk_path: str) -> dict[str, Any]:
    """smartctl's verdict and the watched counters; {"available": False, …} when the drive has no SMART."""
    try:
        result = process.run(["smartctl", "-H", "-A", "-j", disk_path], check=False, timeout=120)
    except process.CommandFailed as exc:  # smartctl absent
        return {"available": False, "summary": exc.message}
    try:
        data = json.loads(result.text)
    except ValueError:
        return {"available": False, "summary": f"smartctl printed no JSON (exit status {result.returncode})"}
    return parse_smart(data, result.returncode)


def parse_smart(data: dict[str, Any], returncode: int) -> dict[str, Any]:
    # Exit status bits 0-2: the command line, opening the device or a SMART command failed.
    messages = [m.get("string", "") for m in data.get("smartctl", {}).get("messages", [])]
    if "smart_status" not in data:
        return {"available": False, "summary": "; ".join(messages) or f"no SMART data (exit {returncode})"}
    report: dict[str, Any] = {"available": True, "passed": bool(data["smart_status"].get("passed")), "warnings": {}}
    for attr in data.get("ata_smart_attributes", {}).get("table", []):
        if attr.get("id") in WATCHED:
            raw = int(attr.get("raw", {}).get("value", 0))
            report[WATCHED[attr["id"]]] = raw
            if raw > 0:
                report["warnings"][WATCHED[attr["id"]]] = raw
    nvme = data.get("nvme_smart_health_information_log")
    if nvme:
        for key in ("critical_warning", "media_errors", "percentage_used"):
            report[key] = int(nvme.get(key, 0))
        if report["critical_warning"] or report["media_errors"]:
            report["warnings"].update({k: report[k] for k in ("critical_warning", "media_errors") if report[k]})
    report["summary"] = ("PASSED" if report["passed"] else "FAILED") + "".join(
        f", {k} {v}" for k, v in report["warnings"].items())
    return report


def surface_scan(disk_path: str, size: int, sector: int, progress: Progress) -> dict[str, Any]:
    """Read the whole disk with O_DIRECT; a chunk that fails is read again sector by sector."""
    progress.set_stage("surface scan (read only)", total=size)
    bad: list[int] = []
    count = 0
    buf = mmap.mmap(-1, CHUNK)  # page-aligned, as O_DIRECT wants
    fd = os.open(disk_path, os.O_RDONLY | getattr(os, "O_DIRECT", 0))
    try:
        offset = 0
        while offset < size:
            n = min(CHUNK, size - offset)
            try:
                got = os.preadv(fd, [memoryview(buf)[:n]], offset)
                if got <= 0:
                    raise OSError(f"short read at {offset}")
            except OSError:
                for lba in _bad_sectors_in(fd, offset, n, sector):
                    count += 1
                    if len(bad) < MAX_LISTED:
                        bad.append(lba)
                got = n
            offset += got
            progress.add(got)
    finally:
        os.close(fd)
        buf.close()
    progress.flush()
    return {"bytes_read": size, "sector_size": sector, "bad_sectors": count, "bad_lbas": bad}


def _bad_sectors_in(fd: int, offset: int, length: int, sector: int) -> list[int]:
    one = mmap.mmap(-1, max(sector, mmap.PAGESIZE))
    bad = []
    try:
        for at in range(offset, offset + length, sector):
            try:
                os.preadv(fd, [memoryview(one)[:sector]], at)
            except OSError:
                bad.append(at // sector)
    finally:
        one.close()
    if bad:
        log.warning("unreadable sectors between LBA %d and %d: %d", offset // sector, (offset + length) // sector,
                    len(bad))
    return bad
