"""The build input FIRMWARE_DIR: a site's firmware files for the drivers the boot image carries.

Debian's non-free firmware (firmware-realtek, firmware-bnx2, firmware-bnx2x, firmware-misc-nonfree)
is not in the archive the build reaches, so a site points `make initramfs FIRMWARE_DIR=/path` at a
/lib/firmware tree.  Only the files the image's drivers declare (`MODULE_FIRMWARE`, the `firmware=`
entries of each module's .modinfo) are copied: a full /lib/firmware is hundreds of MB of GPU and
Wi-Fi blobs that would blow the initrd's size budget.
"""
from __future__ import annotations

import fnmatch
import os
import re
import shutil
from pathlib import Path

MODINFO_FIRMWARE = re.compile(rb"(?:^|\0)firmware=([^\0]+)")
# The kernel (CONFIG_FW_LOADER_COMPRESS) also finds a file under these suffixes.
COMPRESSED = ("", ".xz", ".zst")


def declared_firmware(module: bytes) -> list[str]:
    """The firmware names (or glob patterns) a .ko file declares in its .modinfo strings."""
    return [m.decode(errors="replace") for m in MODINFO_FIRMWARE.findall(module)]


def wanted_files(available: list[str], declared: set[str]) -> list[str]:
    """Of the relative paths under FIRMWARE_DIR, those a driver declares (exactly, by glob, or compressed)."""
    result = []
    for path in available:
        for suffix in COMPRESSED:
            if suffix and not path.endswith(suffix):
                continue
            name = path.removesuffix(suffix) if suffix else path
            if name in declared or any(fnmatch.fnmatchcase(name, d) for d in declared if "*" in d or "?" in d):
                result.append(path)
                break
    return sorted(result)


def add_firmware(source: Path, moddir: Path, module_paths: set[str], dest: Path) -> list[str]:
    """Copy the declared files of `source` into `dest` (the image's /lib/firmware); returns them."""
    if not source.is_dir():
        raise SystemExit(f"build: FIRMWARE_DIR {source} is not a directory")
    declared: set[str] = set()
    for relative in module_paths:
        declared.update(declared_firmware((moddir / relative).read_bytes()))
    available = [str(Path(dirpath, name).relative_to(source))
                 for dirpath, _dirs, names in os.walk(source, followlinks=True) for name in names]
    copied = wanted_files(available, declared)
    for relative in copied:
        (dest / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / relative, dest / relative)  # follows links: Debian links versions to names
    size = sum((dest / r).stat().st_size for r in copied)
    print(f"build: firmware: {len(copied)} files ({size / 1e6:.1f} MB) from {source}; "
          f"{len(available) - len(copied)} files no driver in the image names were left out")
    return copied
