"""What only the PXE-booted environment does: network, NFS mount, power — and how to tell we are in it.

``not_boot_environment`` is the one check: imager's boot image carries the
marker file ``/etc/imager-boot-environment`` (written by initramfs/build.py and
buildroot's post-build.sh, never by an install), and the server booted it with
``imager.*`` kernel parameters.  Outside it the agent refuses to start and
``power`` refuses to reboot: an ordinary Linux machine is never restarted.
"""
from __future__ import annotations

import logging
import os
import time

from imager import missingfirmware, process
from imager.errors import NetworkError, NoNetworkInterface, NotBootEnvironment, StorageError

log = logging.getLogger(__name__)

UDHCPC_SCRIPT = "/etc/imager/udhcpc.script"
STORAGE_MOUNT = "/images"
MARKER = "/etc/imager-boot-environment"


def not_boot_environment(root: str = "/") -> str | None:
    """None inside imager's PXE-booted environment; otherwise why this machine is not it."""
    if not os.path.isfile(os.path.join(root, MARKER.lstrip("/"))):
        return f"{MARKER} is missing, so this is not imager's boot image"
    cmdline = _read(os.path.join(root, "proc/cmdline")).split()
    if not any(word.startswith("imager.") for word in cmdline):
        return "the kernel command line has no imager.* parameter, so the imaging server did not boot this machine"
    return None


def require_boot_environment(root: str = "/") -> None:
    reason = not_boot_environment(root)
    if reason:
        raise NotBootEnvironment(f"refusing to run outside the PXE boot environment: {reason}")


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def choose_interface(mac: str | None) -> str:
    names = sorted(n for n in os.listdir("/sys/class/net") if n != "lo")
    if mac:
        for name in names:
            if _read(f"/sys/class/net/{name}/address").lower() == mac:
                return name
        raise NoNetworkInterface(f"no network interface has the boot MAC {mac} (found: {', '.join(names) or 'none'})")
    for name in names:
        if _read(f"/sys/class/net/{name}/type") == "1":  # Ethernet
            return name
    raise NoNetworkInterface("no Ethernet interface found")


def wait_for_devices(timeout: int = 60) -> None:
    """Until udev has handled every device /init's coldplug announced (drivers loaded, disks and NICs named)."""
    result = process.run(["udevadm", "settle", f"--timeout={timeout}"], check=False, timeout=timeout + 10)
    if result.returncode != 0:  # a device udev could not finish: go on, the op names what it misses
        log.warning("udev did not settle in %d s; going on", timeout)


def bring_up_network(mac: str | None, timeout: float = 60.0) -> str:
    """DHCP on the boot NIC; returns the interface name."""
    deadline = time.monotonic() + timeout
    while True:  # udev may still be loading the NIC driver
        try:
            name = choose_interface(mac)
            break
        except NetworkError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    process.run(["ip", "link", "set", name, "up"])
    for line in missingfirmware.console_lines(missingfirmware.missing_nic_firmware()):  # r8169 loads it on up
        log.warning("%s", line)
    while _read(f"/sys/class/net/{name}/carrier") != "1":
        if time.monotonic() > deadline:
            raise NetworkError(f"{name} has no link")
        time.sleep(0.2)
    for attempt in range(3):
        result = process.run(["udhcpc", "-i", name, "-n", "-q", "-f", "-t", "5", "-T", "2", "-s", UDHCPC_SCRIPT],
                             check=False, timeout=60)
        if result.returncode == 0:
            log.info("network up on %s: %s", name, _addresses(name))
            return name
        log.warning("DHCP on %s failed (attempt %d)", name, attempt + 1)
    raise NetworkError(f"no DHCP answer on {name}")


def _addresses(name: str) -> str:
    return " ".join(process.run(["ip", "-o", "-4", "addr", "show", "dev", name], check=False).text.split()[3:4])


def mount_storage(export: str, options: str = "vers=4.1", mountpoint: str = STORAGE_MOUNT) -> str:
    os.makedirs(mountpoint, exist_ok=True)
    process.run(["modprobe", "nfsv4"], check=False)  # also autoloaded; explicit is clearer in the log
    last = ""
    for attempt in range(5):  # the NFS server may still be in its grace period
        result = process.run(["mount.nfs", export, mountpoint, "-o", options], check=False, timeout=120)
        if result.returncode == 0:
            log.info("mounted %s on %s", export, mountpoint)
            return mountpoint
        last = result.stderr.decode(errors="replace").strip()
        log.warning("mounting %s failed: %s", export, last)
        time.sleep(2 * (attempt + 1))
    raise StorageError(f"cannot mount {export}: {last}")


def unmount_storage(mountpoint: str = STORAGE_MOUNT) -> None:
    process.run(["umount", mountpoint], check=False, timeout=120)


def power(action: str) -> None:
    """reboot or poweroff, now; the data is already synced.  Only ever in the boot environment."""
    require_boot_environment()
    process.run(["sync"], check=False)
    flag = {"reboot": "reboot", "poweroff": "poweroff"}.get(action, "reboot")
    process.run([flag, "-f"], check=False)
