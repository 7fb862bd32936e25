"""Wipe: make a disk's old contents unreadable, as far as the chosen mode promises.

The recipe, by mode (the task's ``options.mode``):
- fast: every partition's signatures and the table's are erased (wipefs -a), then the first and the
  last MiB of the disk are zeroed (MBR, both GPT copies, boot loaders).  Seconds; the data itself stays
  on the disk, unreachable without a forensic tool.
- normal: fast, then one pass of zeros over the whole disk.
- full: an NVMe drive that can sanitize does it (crypto erase, else block erase, else overwrite), one
  that can only format does a secure-erase format; any other disk gets a pass of random data, then
  one of zeros.
Every pass counts its bytes into the progress (screen and server).  Finally the kernel forgets the
old partitions (partprobe).
"""
from __future__ import annotations

import json
import logging
import os
import re
import time
from typing import Any

from imager import disks, process
from imager.errors import InvalidTask, SanitizeFailed
from imager.ops.capture import refuse_if_mounted
from imager.ops.context import OpContext
from imager.progress import Progress

from contract.vocabulary import WIPE_MODES

log = logging.getLogger(__name__)

MODES = WIPE_MODES
EDGE = 1024 * 1024            # zeroed at both ends of the disk in every mode
CHUNK = 4 * 1024 * 1024
_SANITIZE = ((0x1, 4, "crypto erase"), (0x2, 2, "block erase"), (0x4, 3, "overwrite"))  # SANICAP bit, action
SANITIZE_POLL_S = 2.0         # between reads of the drive's sanitize log
SANITIZE_LIMIT_S = 6 * 3600   # a drive whose log never says "done" (or stays "never sanitized") fails the wipe


def wipe(ctx: OpContext) -> dict[str, Any]:
    disk_spec, mode, progress = ctx.task.get("disk"), ctx.option("mode", ""), ctx.progress
    if mode not in MODES:
        raise InvalidTask(f"wipe mode {mode!r} is not one of {', '.join(MODES)}")
    disk = disks.select(disk_spec)
    started = time.monotonic()
    log.info("wiping %s (%s, %s) in %s mode", disk.path, progress_size(disk.size_bytes), disk.model or "?", mode)
    refuse_if_mounted(disk.path)  # before anything is erased, not only when the disk is opened
    erase_signatures(disk.path)
    method, written = "signatures and first/last MiB", 0
    if mode == "fast":
        written = zero_edges(disk.path, disk.size_bytes, progress)
    elif mode == "normal":
        written = write_pass(disk.path, disk.size_bytes, progress, "pass 1/1: zeros", random=False)
        method = "one pass of zeros"
    else:
        nvme = nvme_erase_plan(disk.path) if disk.name.startswith("nvme") else None
        if nvme:
            nvme_erase(disk.path, nvme, progress)
            method = f"NVMe {nvme['command']} ({nvme['what']})"
            written = zero_edges(disk.path, disk.size_bytes, progress)  # the table area reads as zeros for sure
        else:
            written = write_pass(disk.path, disk.size_bytes, progress, "pass 1/2: random data", random=True)
            written += write_pass(disk.path, disk.size_bytes, progress, "pass 2/2: zeros", random=False)
            method = "a pass of random data, then one of zeros"
    process.run(["partprobe", disk.path], check=False)  # the kernel drops the partitions it knew
    seconds = round(time.monotonic() - started, 1)
    log.info("wiped %s: %s, %s written in %.1f s", disk.path, method, progress_size(written), seconds)
    return {"disk": disk.path, "size_bytes": disk.size_bytes, "mode": mode, "method": method,
            "bytes_written": written, "seconds": seconds}


def erase_signatures(disk_path: str) -> None:
    """Filesystem, RAID and LVM signatures of each partition, then the disk's own (tables)."""
    for number in range(1, 129):
        try:
            part = disks.partition_path(disk_path, number)
        except disks.DiskNotFound:
            continue
        process.run(["wipefs", "-a", part], check=False)  # an unreadable partition must not stop a wipe
    process.run(["wipefs", "-a", "-f", disk_path])


def zero_edges(disk_path: str, size: int, progress: Progress) -> int:
    """The first and the last MiB: MBR, GPT header and entries, and the backup GPT."""
    edge = min(EDGE, size // 2)
    progress.set_stage("zeroing the first and last MiB", total=2 * edge)
    with _open(disk_path) as fd:
        for offset in (0, size - edge):
            _write_range(fd, offset, edge, progress, random=False)
        os.fsync(fd)
    progress.flush()
    return 2 * edge


def write_pass(disk_path: str, size: int, progress: Progress, stage: str, random: bool) -> int:
    progress.set_stage(stage, total=size)
    with _open(disk_path) as fd:
        _write_range(fd, 0, size, progress, random=random)
        os.fsync(fd)
    progress.flush()
    return size


class _open:
    """The whole disk for writing; O_EXCL refuses a disk that is mounted or otherwise in use."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_EXCL)

    def __enter__(self) -> int:
        return self.fd

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


def _write_range(fd: int, offset: int, length: int, progress: Progress, random: bool) -> None:
    zeros = bytes(CHUNK)
    end = offset + length
    while offset < end:
        n = min(CHUNK, end - offset)
        data = os.urandom(n) if random else zeros[:n]
        written = os.pwrite(fd, data, offset)
        offset += written
        progress.add(written)


# --- NVMe: let the drive erase itself ---------------------------------------------------

def nvme_erase_plan(disk_path: str) -> dict[str, Any] | None:
    """What the drive supports, from ``nvme id-ctrl``: sanitize (best), secure-erase format, or None."""
    controller = _controller(disk_path)
    result = process.run(["nvme", "id-ctrl", controller, "-o", "json"], check=False)
    if result.returncode != 0:
        log.warning("nvme id-ctrl %s failed; wiping by writing instead", controller)
        return None
    return choose_nvme_erase(json.loads(result.text), controller, disk_path)


def choose_nvme_erase(ctrl: dict[str, Any], controller: str, namespace: str) -> dict[str, Any] | None:
    sanicap, oacs, fna = int(ctrl.get("sanicap", 0)), int(ctrl.get("oacs", 0)), int(ctrl.get("fna", 0))
    for bit, action, what in _SANITIZE:
        if sanicap & bit:
            return {"command": "sanitize", "what": what, "device": controller,
                    "argv": ["nvme", "sanitize", controller, f"--sanact={action}"]}
    if oacs & 0x2:  # Format NVM supported; FNA bit 2: cryptographic erase as a secure erase setting
        ses, what = (2, "crypto erase") if fna & 0x4 else (1, "user data erase")
        return {"command": "format", "what": what, "device": namespace,
                "argv": ["nvme", "format", namespace, f"--ses={ses}", "--force"]}
    return None


def nvme_erase(disk_path: str, plan: dict[str, Any], progress: Progress) -> None:
    progress.set_stage(f"NVMe {plan['command']}: {plan['what']}", total=100)
    refused = process.run(plan["argv"], timeout=6 * 3600, check=False)
    if refused.returncode != 0:
        raise SanitizeFailed(f"nvme {plan['command']} of {disk_path} failed with exit status {refused.returncode}: "
                             f"{(refused.stderr or refused.stdout).decode(errors='replace').strip()[-400:]}")
    if plan["command"] == "sanitize":  # runs in the background on the drive: follow its progress log
        deadline = time.monotonic() + SANITIZE_LIMIT_S
        while True:
            status, fraction = sanitize_status(process.run(["nvme", "sanitize-log", plan["device"], "-o", "json"]).text)
            progress.done = int(fraction * 100)
            progress.flush()
            if status in (1, 4):  # completed (4: without deallocation)
                break
            if status == 3:
                raise SanitizeFailed(f"the drive reports its sanitize of {disk_path} failed")
            if time.monotonic() > deadline:
                raise SanitizeFailed(f"the sanitize of {disk_path} did not finish within {SANITIZE_LIMIT_S // 3600} h "
                                     f"(its log says status {status}, {fraction:.0%})")
            time.sleep(SANITIZE_POLL_S)
    progress.done = 100
    progress.flush()


def sanitize_status(text: str) -> tuple[int, float]:
    """(SSTAT bits 2:0, SPROG as a fraction) from ``nvme sanitize-log -o json``.

    nvme-cli 2.x keys the log by device name and spells SSTAT as {"status": "(1) Most Recent …"}; 1.x gives
    the number itself at the top level.
    """
    data = json.loads(text)
    if data and all(isinstance(v, dict) for v in data.values()):
        data = next(iter(data.values()))
    sstat = data.get("sstat", 0)
    if isinstance(sstat, dict):
        match = re.match(r"\((\d+)\)", str(sstat.get("status", "")))
        sstat = int(match.group(1)) if match else 0
    return int(sstat) & 0x7, int(data.get("sprog", 0)) / 65535


def _controller(namespace: str) -> str:
    """/dev/nvme0n1 → /dev/nvme0 (sanitize and id-ctrl address the controller)."""
    match = re.match(r"^(nvme\d+)n\d+$", os.path.basename(os.path.realpath(namespace)))
    return f"/dev/{match.group(1)}" if match else namespace


def progress_size(n: int) -> str:
    from imager.progress import human
    return human(n)
