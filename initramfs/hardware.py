"""Which of Debian's kernel modules the boot image carries, and how much hardware they reach.

Pure logic over the kernel package's own index files (modules.dep, modules.alias, modules.softdep,
modules.builtin): `initramfs/build.py` selects the drivers with it, `initramfs/hardware_report.py`
measures the built image with it.

Hardware classes are defined by where a driver lives in the kernel tree, and counted over the
device IDs its `pci:` / `usb:` aliases name (one alias pattern = one ID):

- wired NIC (PCI): `pci:` aliases of modules under `drivers/net/`, except the trees of other
  link layers (`NOT_ETHERNET`: Wi-Fi, WWAN, CAN, WAN, ARCnet, FDDI, HIPPI, ...);
- USB NIC: `usb:` aliases of modules under `drivers/net/usb/`;
- storage controller: `pci:` aliases of modules under `STORAGE_TREES` (ATA, NVMe host, Intel VMD,
  MMC/SDHCI and the PCI card readers behind them, UFS, SCSI with the SAS/RAID/FC HBAs, Fusion MPT,
  PCI block devices, virtio's PCI transport).

The image carries every module of a class, the support trees (`SUPPORT_TREES`: PHYs, Hyper-V,
Xen, USB storage, ...) and whatever those need by modules.dep and modules.softdep.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

WIRED_NIC = "wired NIC (PCI)"
USB_NIC = "USB NIC"
STORAGE = "storage controller"
CLASSES = (WIRED_NIC, USB_NIC, STORAGE)

NET = "kernel/drivers/net/"
NOT_ETHERNET = tuple(NET + d + "/" for d in (
    "wireless", "wwan", "can", "wan", "arcnet", "fddi", "hippi", "ieee802154", "hamradio", "appletalk", "plip",
    "ppp", "slip"))
STORAGE_TREES = tuple("kernel/drivers/" + d for d in (
    "ata/", "nvme/host/", "pci/controller/vmd.ko", "mmc/", "misc/cardreader/", "ufs/", "scsi/", "message/fusion/",
    "block/", "virtio/"))
# Carried whole (the modules with an alias: udev loads them by modalias), though not counted in a class.
SUPPORT_TREES = tuple("kernel/drivers/" + d for d in (
    "net/ethernet/", "net/usb/", "net/phy/", "net/mdio/", "net/pcs/", "net/hyperv/", "net/vmxnet3/",
    "net/virtio_net.ko", "net/xen-netfront.ko", "block/xen-blkfront.ko", "hv/", "pci/controller/", "usb/storage/",
    "virtio/"))


@dataclass(frozen=True)
class KernelIndex:
    """A kernel's module index: name → path (+ the paths it needs), aliases, soft dependencies, built-ins."""
    paths: dict[str, str]
    needs: dict[str, list[str]]
    aliases: list[tuple[str, str]]  # (pattern, module name)
    softdeps: dict[str, list[str]]  # module name → names or aliases to load with it
    builtin: dict[str, str]  # module name → path, for modules compiled into the kernel


def load_index(moddir: Path) -> KernelIndex:
    """Read /lib/modules/<version> (after depmod)."""
    paths, needs = parse_dep((moddir / "modules.dep").read_text())
    builtin_file, modinfo_file = moddir / "modules.builtin", moddir / "modules.builtin.modinfo"
    builtin_paths = builtin_file.read_text().split() if builtin_file.exists() else []
    aliases = parse_aliases((moddir / "modules.alias").read_text())
    if modinfo_file.exists():
        aliases += parse_builtin_aliases(modinfo_file.read_bytes())
    softdep_file = moddir / "modules.softdep"
    return KernelIndex(paths=paths, needs=needs, aliases=aliases,
                       softdeps=parse_softdep(softdep_file.read_text()) if softdep_file.exists() else {},
                       builtin={module_name(p): p for p in builtin_paths})


def module_name(path_or_name: str) -> str:
    """kernel/drivers/net/usb/ax88179_178a.ko → ax88179_178a; modprobe treats - and _ alike."""
    name = PurePosixPath(path_or_name).name
    for suffix in (".xz", ".zst", ".gz", ".ko"):
        name = name.removesuffix(suffix)
    return name.replace("-", "_")


def parse_dep(text: str) -> tuple[dict[str, str], dict[str, list[str]]]:
    paths: dict[str, str] = {}
    needs: dict[str, list[str]] = {}
    for line in text.splitlines():
        module, sep, deps = line.partition(":")
        if not sep:
            continue
        name = module_name(module)
        paths[name] = module
        needs[name] = deps.split()
    return paths, needs


def parse_aliases(text: str) -> list[tuple[str, str]]:
    """`alias <pattern> <module>` lines (the pattern never holds a blank; the module is the last word)."""
    result = []
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 3 and words[0] == "alias":
            result.append((" ".join(words[1:-1]), module_name(words[-1])))
    return result


def parse_builtin_aliases(modinfo: bytes) -> list[tuple[str, str]]:
    """modules.builtin.modinfo: NUL-separated `module.key=value`; the aliases of built-in drivers."""
    result = []
    for entry in modinfo.decode(errors="replace").split("\0"):
        module, _, rest = entry.partition(".")
        key, sep, value = rest.partition("=")
        if sep and key == "alias":
            result.append((value, module_name(module)))
    return result


def parse_softdep(text: str) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 3 and words[0] == "softdep":
            result.setdefault(module_name(words[1]), []).extend(
                w for w in words[2:] if w not in ("pre:", "post:"))
    return result


def hardware_class(path: str, pattern: str) -> str | None:
    """The class one alias of the module at `path` counts in, or None (see the module docstring)."""
    bus = pattern.partition(":")[0]
    if bus == "usb" and path.startswith(NET + "usb/"):
        return USB_NIC
    if bus != "pci":
        return None
    if path.startswith(NET) and not path.startswith(NOT_ETHERNET):
        return WIRED_NIC
    if path.startswith(STORAGE_TREES):
        return STORAGE
    return None


def classified_ids(index: KernelIndex) -> dict[str, list[tuple[str, str]]]:
    """Per class, the (pattern, module) pairs of loadable and built-in drivers."""
    result: dict[str, list[tuple[str, str]]] = {c: [] for c in CLASSES}
    seen: set[tuple[str, str]] = set()
    for pattern, module in index.aliases:
        path = index.paths.get(module) or index.builtin.get(module)
        if path is None or (pattern, module) in seen:
            continue
        seen.add((pattern, module))
        cls = hardware_class(path, pattern)
        if cls:
            result[cls].append((pattern, module))
    return result


def _resolve(index: KernelIndex, name_or_alias: str) -> list[str]:
    """A softdep names a module or an alias (`platform:leds-gpio`, `crypto-crc32c`)."""
    name = module_name(name_or_alias)
    if name in index.paths:
        return [name]
    return [m for p, m in index.aliases if fnmatch.fnmatchcase(name_or_alias, p) and m in index.paths]


def select(index: KernelIndex, named: list[str]) -> set[str]:
    """Paths (relative to /lib/modules/<version>) the image carries: `named`, every module of a class,
    every module with an alias in the support trees, and all they need."""
    roots = {module_name(n) for n in named}
    aliased = {m for _, m in index.aliases}
    roots.update(name for name, path in index.paths.items() if path.startswith(SUPPORT_TREES) and name in aliased)
    for ids in classified_ids(index).values():
        roots.update(m for _, m in ids if m in index.paths)
    wanted: set[str] = set()
    todo = [r for r in roots if r in index.paths]  # absent: built in, or not in this kernel
    while todo:
        name = todo.pop()
        path = index.paths[name]
        if path in wanted:
            continue
        wanted.add(path)
        todo.extend(module_name(dep) for dep in index.needs[name])
        for soft in index.softdeps.get(name, []):
            todo.extend(_resolve(index, soft))
    return wanted


@dataclass(frozen=True)
class Coverage:
    covered: int
    total: int
    missing: list[str]  # modules (of the class) the image lacks

    @property
    def percent(self) -> float:
        return 100.0 * self.covered / self.total if self.total else 100.0


def coverage(index: KernelIndex, image_modules: set[str]) -> dict[str, Coverage]:
    """Per class: how many IDs have their module in the image (`image_modules`: names) or built in."""
    present = image_modules | set(index.builtin)
    result = {}
    for cls, ids in classified_ids(index).items():
        covered = sum(1 for _, m in ids if m in present)
        missing = sorted({m for _, m in ids if m not in present})
        result[cls] = Coverage(covered, len(ids), missing)
    return result
