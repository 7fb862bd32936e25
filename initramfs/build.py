#!/usr/bin/env python3
"""Build the imaging environment's kernel and initrd from Debian packages.

    python3 initramfs/build.py --out build/boot

The kernel is Debian's (downloaded, unpacked, never installed on this host);
the initrd holds busybox, udev, Python 3 with the imager package and its
libraries, and the imaging tools, copied from this host's Debian packages
with the shared libraries they need.  Run as root on Debian 12 after
``make setup`` has installed the packages listed in the Makefile.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import fcntl
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import firmware  # noqa: E402  (initramfs/ is not a package: run as a script)
import hardware  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# The import check both boot images run (buildroot post-build.sh too).
CHECK_IMPORTS = REPO / "buildroot/board/imager/check_imports.py"

# Programs the environment runs (resolved on this host's PATH).
PROGRAMS = [
    "python3.11", "partclone.extfs", "partclone.fat", "partclone.ntfs", "partclone.xfs", "partclone.btrfs",
    "partclone.dd", "partclone.restore", "partclone.info", "partclone.chkimg", "zstd", "sfdisk", "sgdisk",
    "blkid", "wipefs", "partx", "blockdev", "partprobe", "mount.nfs", "udevadm", "kmod", "dialog", "ldconfig", "ntfs-3g",
    "e2fsck", "resize2fs", "mke2fs", "dumpe2fs", "udp-receiver", "lsblk", "ntfsresize", "ntfsfix", "mkswap",
    "xfs_growfs", "btrfs", "lvm", "smartctl", "nvme",
]
# mount.nfs4 and friends are the same binary under other names.
ALIASES = {"mount.nfs": ["mount.nfs4", "umount.nfs", "umount.nfs4"], "kmod": ["modprobe", "insmod", "lsmod", "rmmod"],
           "python3.11": ["python3"], "mke2fs": ["mkfs.ext4", "mkfs.ext3", "mkfs.ext2"],
           "partclone.extfs": ["partclone.ext2", "partclone.ext3", "partclone.ext4"],
           "ntfs-3g": ["mount.ntfs-3g"]}  # mount -t ntfs-3g (util-linux or busybox) runs mount.ntfs-3g
EXTRA_FILES = ["/lib/systemd/systemd-udevd", "/etc/netconfig", "/etc/services", "/etc/protocols",
               # hivex recodes registry key names from Latin-1 with iconv: glibc loads that converter
               "/usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache", "/usr/lib/x86_64-linux-gnu/gconv/ISO8859-1.so"]
UDEV_HELPERS = ["ata_id", "scsi_id", "cdrom_id"]
# Drivers by modalias, firmware, device nodes and their permissions, disks' IDs (serial, WWN, path, filesystem:
# what pyudev shows imager/disks.py), btrfs' multi-device readiness.
UDEV_RULES = ["50-firmware.rules", "50-udev-default.rules", "60-block.rules", "60-persistent-storage.rules",
              "64-btrfs.rules", "80-drivers.rules"]
TERMINFO = ["l/linux", "v/vt100", "v/vt102", "v/vt220", "d/dumb", "x/xterm", "x/xterm-256color"]
# Debian packages whose Python modules the environment imports.
PYTHON_PACKAGES = ["python3-pyudev", "python3-parted", "python3-zstandard", "python3-requests", "python3-urllib3",
                   "python3-idna", "python3-certifi", "python3-chardet", "python3-charset-normalizer",
                   "python3-dialog", "python3-blessed", "python3-wcwidth", "python3-six", "python3-hivex"]
STDLIB_SKIP = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "pydoc_data", "venv",
               "unittest", "distutils", "config-3.11-x86_64-linux-gnu", "__phello__", "sqlite3"}
# Drivers: disks, NICs, filesystems, NFS.  udev loads the hardware ones by modalias; mount loads the rest.
# hardware.py adds every wired/USB NIC and storage-controller driver of the kernel (docs/hardware.md).
MODULES = [
    "virtio_pci", "virtio_blk", "virtio_net", "virtio_scsi", "sd_mod", "sr_mod", "ahci", "ata_piix", "ata_generic",
    "nvme", "mptspi", "vmw_pvscsi", "hv_storvsc", "hv_netvsc", "xhci_pci", "ehci_pci", "ohci_pci", "uhci_hcd",
    "usb_storage", "uas", "usbhid", "hid_generic", "e1000", "e1000e", "igb", "igc", "ixgbe", "r8169", "tg3",
    "bnx2", "vmxnet3", "8139cp", "ne2k_pci", "pcnet32", "ext4", "vfat", "nls_cp437", "nls_iso8859_1",
    "nls_utf8", "xfs", "btrfs", "nfs", "nfsv3", "nfsv4", "loop", "dm_mod", "crc32c_generic", "crc32c_intel",
    "fuse",  # ntfs-3g
]
BUSYBOX_SKIP = {"modprobe", "insmod", "rmmod", "lsmod", "depmod", "blkid", "blockdev",
                "fdisk", "mkfs.ext2", "mkfs.vfat", "wipefs", "init", "linuxrc", "lsblk"}


def sh(*argv: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=True, text=True, capture_output=True, **kwargs)


class Root:
    """The initrd tree being assembled, with merged /usr like Debian 12."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if path.exists():
            shutil.rmtree(path)
        for d in ("usr/bin", "usr/sbin", "usr/lib", "usr/lib64", "usr/share", "etc", "proc", "sys", "dev", "run",
                  "tmp", "root", "images", "var/log"):
            (path / d).mkdir(parents=True, exist_ok=True)
        for link, target in (("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib"), ("lib64", "usr/lib64")):
            os.symlink(target, path / link)
        os.mknod(path / "dev/console", 0o600 | stat.S_IFCHR, os.makedev(5, 1))
        os.mknod(path / "dev/null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        self.copied: set[str] = set()

    def target(self, host_path: str) -> Path:
        return self.path / os.path.realpath(host_path).lstrip("/")

    def add(self, host_path: str, as_path: str | None = None) -> None:
        """Copy a file (following symlinks) and, for ELF files, the libraries it needs."""
        real = os.path.realpath(host_path)
        dest = self.path / (as_path or _usr(real)).lstrip("/")
        if as_path is None and _usr(host_path) != _usr(real):  # keep the name it is called by
            link = self.path / _usr(host_path).lstrip("/")
            if not link.exists() and not link.is_symlink():
                link.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(os.path.relpath(dest, link.parent), link)
        if str(dest) in self.copied:
            return
        self.copied.add(str(dest))
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(real, dest)
        if _is_elf(real):
            for lib in _needed_libraries(real):
                self.add(lib)

    def add_tree(self, host_dir: str, skip: set[str] = frozenset()) -> None:
        for dirpath, dirnames, filenames in os.walk(host_dir):
            dirnames[:] = [d for d in dirnames if d not in skip and d != "__pycache__"]
            for name in filenames:
                if not name.endswith((".pyc", ".exe")):
                    self.add(os.path.join(dirpath, name))

    def link(self, name: str, target: str) -> None:
        path = self.path / name.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() and not path.is_symlink():
            os.symlink(target, path)


def _usr(path: str) -> str:
    """Debian 12's merged /usr: /lib/x → /usr/lib/x."""
    for top in ("/bin/", "/sbin/", "/lib/", "/lib64/"):
        if path.startswith(top):
            return "/usr" + path
    return path


def _is_elf(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def _needed_libraries(path: str) -> list[str]:
    result = subprocess.run(["ldd", path], text=True, capture_output=True)
    libs = []
    for line in result.stdout.splitlines():
        match = re.search(r"(/\S+)", line)
        if match and "not found" not in line:
            libs.append(match.group(1))
    return libs


def which(program: str) -> str:
    for d in ("/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        if os.path.exists(f"{d}/{program}"):
            return f"{d}/{program}"
    raise SystemExit(f"build: {program} is not installed; run 'make setup'")


def fetch_kernel(work: Path) -> tuple[Path, str]:
    """Unpack Debian's current kernel package into work/kernel; returns (tree, version)."""
    depends = sh("apt-cache", "depends", "linux-image-amd64").stdout
    match = re.search(r"Depends: (linux-image-[\w.-]+-amd64)", depends)
    if not match:
        raise SystemExit("build: cannot resolve linux-image-amd64 (run apt-get update)")
    package = match.group(1)
    version = package.removeprefix("linux-image-")
    tree = work / "kernel" / version
    if not (tree / "boot" / f"vmlinuz-{version}").exists():
        download = work / "kernel"
        download.mkdir(parents=True, exist_ok=True)
        os.chmod(download, 0o777)  # apt's sandbox user must be able to write the .deb
        sh("apt-get", "download", package, cwd=download)
        deb = next(download.glob(f"{package}_*.deb"))
        sh("dpkg-deb", "-x", str(deb), str(tree))
        deb.unlink()
    return tree, version


def add_modules(root: Root, tree: Path, version: str) -> set[str]:
    """MODULES, and every driver of the hardware classes (initramfs/hardware.py); returns the paths copied."""
    source = tree / "lib" / "modules" / version
    if not (source / "modules.dep").exists():  # the package leaves this to its postinst
        sh("depmod", "-b", str(tree), version)
    wanted = hardware.select(hardware.load_index(source), MODULES)
    dest = root.path / "usr/lib/modules" / version
    # Debian signs them (lockdown refuses a changed one): each is zstd-compressed whole, signature inside,
    # and kmod decompresses it before the kernel checks it. The kernel then unpacks ~70 MB less at each boot.
    for relative in wanted:
        (dest / relative).parent.mkdir(parents=True, exist_ok=True)

    def compress(relative: str) -> None:  # -19: ~2 MB smaller than -12
        sh("zstd", "-q", "-19", "-o", f"{dest / relative}.zst", str(source / relative))
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(compress, sorted(wanted)))
    for name in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
        if (source / name).exists():
            shutil.copy2(source / name, dest / name)
    sh("depmod", "-b", str(root.path), version)
    return wanted


def add_python(root: Root) -> None:
    root.add_tree("/usr/lib/python3.11", STDLIB_SKIP)
    for package in PYTHON_PACKAGES:
        for line in sh("dpkg", "-L", package).stdout.splitlines():
            if line.startswith("/usr/lib/python3/dist-packages/") and os.path.isfile(line) and "__pycache__" not in line:
                root.add(line)
    shutil.copytree(REPO / "imager", root.path / "usr/lib/python3/dist-packages/imager",
                    ignore=shutil.ignore_patterns("__pycache__"))
    # What the client shares with the server (task vocabulary, udpcast argv, …); never the server itself.
    shutil.copytree(REPO / "contract", root.path / "usr/lib/python3/dist-packages/contract",
                    ignore=shutil.ignore_patterns("__pycache__"))
    # Byte-compile once here so the first boot does not spend its time compiling.
    sh(str(root.path / "usr/bin/python3.11"), "-c", "pass")  # sanity: the interpreter runs
    # The standard library goes without its sources: legacy .pyc files where the .py were, which Python imports
    # as they are (9 MB less for the kernel to unpack at each boot). Our packages and the libraries keep theirs,
    # so an agent traceback shows its lines.
    stdlib = root.path / "usr/lib/python3.11"
    sh("/usr/bin/python3.11", "-m", "compileall", "-q", "-b", "-j0", "-s", str(root.path), "-p", "/", str(stdlib))
    for source in stdlib.rglob("*.py"):
        if source.with_suffix(".pyc").is_file():
            source.unlink()
    sh("/usr/bin/python3.11", "-m", "compileall", "-q", "-j0", "-s", str(root.path), "-p", "/",
       str(root.path / "usr/lib/python3/dist-packages"))


def add_system(root: Root) -> None:
    for program in PROGRAMS:
        path = which(program)
        root.add(path)
        for alias in ALIASES.get(program, []):
            root.link(f"{os.path.dirname(_usr(path))}/{alias}", program)
    root.link("/usr/sbin/modprobe", "../bin/kmod")  # the kernel's request_module() runs /sbin/modprobe
    for path in EXTRA_FILES:
        if os.path.exists(path):
            root.add(path)
    for helper in UDEV_HELPERS:
        root.add(f"/lib/udev/{helper}")
    # Only the rules the agent needs (every rule costs udevd time at start and at each of the coldplug's events:
    # docs/boot-time.md). Never the device-mapper/LVM ones: udev would auto-activate a disk's volume group behind
    # our back (and wait two minutes for dmsetup's notification); imager activates groups itself (imager/lvm.py).
    rules = root.path / "usr/lib/udev/rules.d"
    rules.mkdir(parents=True, exist_ok=True)
    for name in UDEV_RULES:
        shutil.copy2(f"/lib/udev/rules.d/{name}", rules / name)
    for entry in TERMINFO:
        for base in ("/lib/terminfo", "/usr/share/terminfo"):
            if os.path.exists(f"{base}/{entry}"):
                root.add(f"{base}/{entry}", f"/usr/share/terminfo/{entry}")
                break
    busybox = which("busybox")
    root.add(busybox, "/usr/bin/busybox")
    for applet in sh(busybox, "--list").stdout.split():
        if applet not in BUSYBOX_SKIP:
            root.link(f"/usr/bin/{applet}", "busybox")
    (root.path / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root.path / "etc/group").write_text("".join(f"{g}:x:{i}:\n" for g, i in (
        ("root", 0), ("tty", 5), ("disk", 6), ("lp", 7), ("kmem", 15), ("dialout", 20), ("cdrom", 24),
        ("tape", 26), ("audio", 29), ("video", 44), ("input", 105), ("kvm", 106), ("render", 107), ("sgx", 108))))
    (root.path / "etc/hostname").write_text("imager\n")
    # The agent's proof it runs in this image, not on a machine it would reboot (imager/bootenv.py).
    (root.path / "etc/imager-boot-environment").write_text("imager boot image\n")
    (root.path / "etc/imager").mkdir(exist_ok=True)
    shutil.copy2(HERE / "udhcpc.script", root.path / "etc/imager/udhcpc.script")
    shutil.copy2(HERE / "init", root.path / "init")
    os.chmod(root.path / "init", 0o755)
    os.chmod(root.path / "etc/imager/udhcpc.script", 0o755)
    sh("ldconfig", "-r", str(root.path))  # pyudev finds libudev through ld.so.cache


def check(root: Root) -> None:
    """Import everything the agent needs, inside the tree, before shipping it."""
    site = root.path / "usr/lib/python3/dist-packages"
    subprocess.run([sys.executable, str(CHECK_IMPORTS), str(site)], check=True)
    agent_modules = subprocess.run([sys.executable, str(CHECK_IMPORTS), str(site), "--list"], check=True,
                                   capture_output=True, text=True).stdout.split()
    code = (f"import {', '.join(agent_modules)}; "
            "import pyudev, parted, zstandard, requests, dialog, blessed, curses, hivex; "
            "import ctypes.util; assert ctypes.util.find_library('udev'), 'libudev not found'; "
            "libc = ctypes.CDLL(None); libc.iconv_open.restype = ctypes.c_void_p; "
            "assert libc.iconv_open(b'UTF-8', b'LATIN1') not in (None, 2**64 - 1), 'no LATIN1 iconv for hivex'")
    subprocess.run(["chroot", str(root.path), "/usr/bin/python3", "-c", code], check=True)
    subprocess.run(["chroot", str(root.path), "/bin/sh", "-c",
                    "partclone.restore -v >/dev/null 2>&1; sgdisk --version >/dev/null && sfdisk --version >/dev/null "
                    "&& zstd --version >/dev/null && mount.nfs -V >/dev/null 2>&1; udevadm --version >/dev/null "
                    "&& mount.ntfs-3g --version >/dev/null"],
                   check=True)


def pack(root: Root, out: Path) -> None:
    files = subprocess.run(["find", ".", "-mindepth", "1"], cwd=root.path, check=True, capture_output=True).stdout
    cpio = subprocess.run(["cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0"], cwd=root.path, input=files,
                          check=True, capture_output=True).stdout
    # LZ4 (the kernel's legacy frame): the kernel unpacks it in 1.1 s under TCG where zstd -19 took 2.2 s;
    # the file is ~25 % larger (docs/boot-time.md).
    packed = subprocess.run(["lz4", "-l", "-9", "-q", "-c"], input=cpio, check=True, capture_output=True).stdout
    tmp = out / "initrd.img.tmp"
    tmp.write_bytes(packed)
    tmp.rename(out / "initrd.img")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(REPO / "build" / "boot"))
    parser.add_argument("--work", default=str(REPO / "build" / "initramfs"))
    parser.add_argument("--firmware", metavar="DIR",
                        help="a /lib/firmware tree (e.g. from Debian's firmware-* packages): the files the "
                             "image's drivers name are copied into the image's /lib/firmware")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("build: run as root (device nodes, chroot check)")
    out, work = Path(args.out), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    # Two builds at once (parallel make, two shells) would share the work tree: take turns.
    lock = open(work / ".lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    tree, version = fetch_kernel(work)
    root = Root(work / "root")
    add_system(root)
    add_python(root)
    modules = add_modules(root, tree, version)
    if args.firmware:
        firmware.add_firmware(Path(args.firmware), tree / "lib/modules" / version, modules,
                              root.path / "usr/lib/firmware")
    check(root)
    pack(root, out)
    shutil.copy2(tree / "boot" / f"vmlinuz-{version}", out / "vmlinuz")
    (out / "VERSION").write_text(f"kernel {version}\n")
    for name in ("vmlinuz", "initrd.img"):
        print(f"{out / name}: {(out / name).stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
