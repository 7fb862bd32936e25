#!/usr/bin/env python3
"""How much of the hardware Debian's kernel drives the built boot image reaches.

    python3 initramfs/hardware_report.py build/boot/initrd.img      (make hardware-report)

Reads the real image: decompresses the initrd (LZ4, as initramfs/build.py packs it; zstd, gzip, xz
or none work too), lists the modules in its cpio, takes the kernel version from their directory, and
reads Debian's modules.alias for that version from the build's unpacked kernel package
(build/initramfs/kernel/<version>/, unpacked again if missing).

For each class -- wired NIC (PCI), USB NIC, storage controller; a driver's class is given by its
path in the kernel tree, see initramfs/hardware.py -- it prints the share of the PCI/USB device IDs
(alias patterns) of that class whose module is in the image or built into the kernel, and the
initrd's size.  Exit status 1 when a class is below GOAL_PERCENT or the image is over MAX_INITRD_MB.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hardware  # noqa: E402  (initramfs/ is not a package: run as a script)

GOAL_PERCENT = 95.0
MAX_INITRD_MB = 60.0
DECOMPRESSORS = {b"\x02\x21\x4c\x18": ["lz4", "-dc"],  # LZ4's legacy frame, what the kernel reads
                 b"\x28\xb5\x2f\xfd": ["zstd", "-dc"], b"\x1f\x8b": ["gzip", "-dc"], b"\xfd7zXZ": ["xz", "-dc"]}
NEWC_MAGIC = (b"070701", b"070702")
NEWC_HEADER = 110


def decompress(data: bytes) -> bytes:
    for magic, argv in DECOMPRESSORS.items():
        if data.startswith(magic):
            return subprocess.run(argv, input=data, capture_output=True, check=True).stdout
    if data.startswith(NEWC_MAGIC):
        return data
    raise ValueError("not a cpio archive, nor an lz4/zstd/gzip/xz-compressed one")


def cpio_names(archive: bytes) -> list[str]:
    """The member names of a newc cpio archive (up to its TRAILER!!!)."""
    names, offset = [], 0
    while offset + NEWC_HEADER <= len(archive):
        header = archive[offset:offset + NEWC_HEADER]
        if header[:6] not in NEWC_MAGIC:
            raise ValueError(f"bad cpio header at byte {offset}")
        filesize, namesize = int(header[54:62], 16), int(header[94:102], 16)
        name_end = offset + NEWC_HEADER + namesize
        name = archive[offset + NEWC_HEADER:name_end - 1].decode(errors="replace")
        if name == "TRAILER!!!":
            return names
        names.append(name.removeprefix("./"))
        data_start = (name_end + 3) & ~3
        offset = (data_start + filesize + 3) & ~3
    raise ValueError("cpio archive ends without its trailer")


def image_modules(names: list[str]) -> tuple[str, set[str]]:
    """(kernel version, module names) from the paths in the image (usr/lib/modules/<version>/...ko)."""
    versions, modules = set(), set()
    for name in names:
        parts = name.split("/")
        if len(parts) > 4 and parts[:3] == ["usr", "lib", "modules"] and ".ko" in parts[-1]:
            versions.add(parts[3])
            modules.add(hardware.module_name(parts[-1]))
    if len(versions) != 1:
        raise ValueError(f"expected the modules of one kernel in the image, found {sorted(versions) or 'none'}")
    return versions.pop(), modules


def report(coverages: dict[str, hardware.Coverage], initrd_bytes: int) -> tuple[list[str], bool]:
    """The lines to print, and whether every class reaches the goal and the image fits."""
    lines, ok = [], True
    for cls, cov in coverages.items():
        passed = cov.percent >= GOAL_PERCENT
        ok &= passed
        lines.append(f"{cls:<20} {cov.percent:5.1f} %  {cov.covered:>5} / {cov.total:<5} IDs"
                     f"  {'ok' if passed else f'BELOW {GOAL_PERCENT:.0f} %'}")
        if cov.missing:
            lines.append(f"{'':<20} missing: {', '.join(cov.missing[:12])}{' ...' if len(cov.missing) > 12 else ''}")
    size_ok = initrd_bytes <= MAX_INITRD_MB * 1e6
    ok &= size_ok
    lines.append(f"{'initrd size':<20} {initrd_bytes / 1e6:5.1f} MB  (limit {MAX_INITRD_MB:.0f} MB)"
                 f"  {'ok' if size_ok else 'TOO BIG'}")
    return lines, ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("initrd", type=Path)
    parser.add_argument("--work", type=Path, default=hardware_repo() / "build" / "initramfs",
                        help="initramfs/build.py's work directory (the unpacked kernel package)")
    args = parser.parse_args()
    try:
        version, modules = image_modules(cpio_names(decompress(args.initrd.read_bytes())))
    except (OSError, ValueError, subprocess.CalledProcessError) as exc:
        print(f"hardware-report: cannot read {args.initrd}: {exc}", file=sys.stderr)
        return 1
    moddir = args.work / "kernel" / version / "lib" / "modules" / version
    if not (moddir / "modules.alias").exists():
        import build  # the kernel package of that version: downloaded and unpacked as the build does
        tree, fetched = build.fetch_kernel(args.work)
        if fetched != version:
            print(f"hardware-report: the image has kernel {version}, Debian's archive now {fetched}: "
                  "rebuild the image (make initramfs)", file=sys.stderr)
            return 1
        if not (moddir / "modules.dep").exists():
            build.sh("depmod", "-b", str(tree), version)
    coverages = hardware.coverage(hardware.load_index(moddir), modules)
    lines, ok = report(coverages, args.initrd.stat().st_size)
    print(f"{args.initrd}: kernel {version}, {len(modules)} modules")
    print("\n".join(lines))
    return 0 if ok else 1


def hardware_repo() -> Path:
    return Path(__file__).resolve().parent.parent


if __name__ == "__main__":
    sys.exit(main())
