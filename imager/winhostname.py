"""After a deploy: the Windows computer name, set in the offline registry (FOG's changeHostname).

For every NTFS partition: mount it with ntfs-3g, look for Windows' SYSTEM hive
(``Windows/System32/config/SYSTEM``, any case), and with hivex set, in the
control set ``Select\\Current`` names:

- ``Control\\ComputerName\\ComputerName`` and ``…\\ActiveComputerName`` ``ComputerName``:
  the NetBIOS name — upper case, cut to 15 characters (Windows' and FOG's rule);
- ``Services\\Tcpip\\Parameters`` ``Hostname`` and ``NV Hostname``: the DNS host name,
  the whole name as given (at most 63 characters), as Windows keeps it when the
  NetBIOS name had to be cut.

A partition is first mounted read-only to look: one without Windows is never
written to.  The read-write mount uses ``remove_hiberfile`` like FOG: a copy
captured with Fast Startup on is marked hibernated, ntfs-3g refuses to write to
it otherwise, and the deployed machine must boot cold anyway.
"""
from __future__ import annotations

import contextlib
import logging
import os
import struct
import tempfile
from typing import Any, Iterator

from imager import disks, process
from imager.errors import RegistryError
from imager.postdeploy import check_hostname

try:
    import hivex
except ImportError:  # the rest of imager works without it; only this step needs it
    hivex = None

log = logging.getLogger(__name__)

NETBIOS_MAX = 15
HIVE_PATH = ("Windows", "System32", "config", "SYSTEM")
REG_SZ, REG_DWORD = 1, 4


def windows_names(hostname: str) -> tuple[str, str]:
    """(NetBIOS computer name, DNS host name) for a task's hostname."""
    check_hostname(hostname)
    netbios = hostname[:NETBIOS_MAX].upper()
    if len(hostname) > NETBIOS_MAX:
        log.warning("hostname %s is longer than %d characters: Windows' computer name will be %s",
                    hostname, NETBIOS_MAX, netbios)
    return netbios, hostname


def reg_sz(text: str) -> bytes:
    """REG_SZ data as Windows writes it: UTF-16LE with its terminating NUL."""
    return (text + "\0").encode("utf-16-le")


def set_windows_hostname(disk_path: str, partitions: list[dict], hostname: str) -> list[str]:
    """Set the computer name in every Windows installation on the disk; returns the partitions changed."""
    netbios, dns = windows_names(hostname)
    changed = []
    for part in partitions:
        if part.get("fstype") != "ntfs":
            continue
        device = disks.partition_path(disk_path, part["number"])
        with _mounted(device, "ro") as root:
            found = find_system_hive(root) is not None
        if not found:
            log.debug("%s holds no Windows SYSTEM hive", device)
            continue
        with _mounted(device, "rw,remove_hiberfile") as root:
            hive = find_system_hive(root)
            if hive is None:  # it was there a moment ago, on the same volume
                raise RegistryError(f"the SYSTEM hive on {device} vanished between two mounts")
            control_set = set_computer_name(hive, netbios, dns)
        changed.append(device)
        log.info("Windows computer name set to %s (host name %s) in %s on %s", netbios, dns, control_set, device)
    return changed


@contextlib.contextmanager
def _mounted(device: str, options: str) -> Iterator[str]:
    if not os.path.exists("/dev/fuse"):  # the boot image has fuse as a module
        process.run(["modprobe", "fuse"], check=False)
    mountpoint = tempfile.mkdtemp(prefix="imager-ntfs-")
    try:
        # FUSE: util-linux and busybox mount both hand over to mount.ntfs-3g.
        process.run(["mount", "-t", "ntfs-3g", "-o", options, device, mountpoint])
        try:
            yield mountpoint
        finally:
            # fuseblk: umount returns once ntfs-3g has written everything back.
            process.run(["umount", mountpoint], check=False)
    finally:
        os.rmdir(mountpoint)


def find_system_hive(root: str) -> str | None:
    """``Windows/System32/config/SYSTEM`` under ``root``, each part matched regardless of case."""
    path = root
    for part in HIVE_PATH:
        try:
            names = os.listdir(path)
        except (NotADirectoryError, FileNotFoundError):
            return None
        match = next((n for n in sorted(names) if n.lower() == part.lower()), None)
        if match is None:
            return None
        path = os.path.join(path, match)
    return path if os.path.isfile(path) and not os.path.islink(path) else None


def set_computer_name(hive_path: str, netbios: str, dns: str) -> str:
    """Edit the SYSTEM hive at ``hive_path`` in place; returns the control set changed (ControlSet00N)."""
    if hivex is None:
        raise RegistryError("python3-hivex is missing: cannot edit the Windows registry",
                            hint="The boot image lacks python3-hivex; rebuild it.")
    _warn_if_dirty(hive_path)
    try:
        h = _open(hive_path, write=True)
        control_set = _current_control_set(h, hive_path)
        cs = _child(h, h.root(), control_set)
        control = _child(h, cs, "Control") if cs else None
        if cs is None or control is None:
            raise RegistryError(f"{hive_path} has no {control_set}\\Control key: not a Windows SYSTEM hive")
        names = _ensure(h, control, "ComputerName")
        for key in ("ComputerName", "ActiveComputerName"):
            h.node_set_value(_ensure(h, names, key), {"key": "ComputerName", "t": REG_SZ, "value": reg_sz(netbios)})
        tcpip = _path(h, cs, ("Services", "Tcpip", "Parameters"))
        if tcpip is None:  # never invent a service key: Windows would see a broken Tcpip service
            log.warning("%s has no %s\\Services\\Tcpip\\Parameters: DNS host name not set", hive_path, control_set)
        else:
            for key in ("Hostname", "NV Hostname"):
                h.node_set_value(tcpip, {"key": key, "t": REG_SZ, "value": reg_sz(dns)})
        h.commit(None)  # hivex rewrites the file in place (keeps the file's NTFS security descriptor)
        del h
        check = _open(hive_path, write=False)  # read back what Windows will read
        written = _path(check, check.root(), (control_set, "Control", "ComputerName", "ComputerName"))
        value = _value(check, written, "ComputerName") if written else None
        if value is None or check.value_value(value) != (REG_SZ, reg_sz(netbios)):
            raise RegistryError(f"{hive_path}: the computer name did not read back after writing")
    except RuntimeError as exc:  # hivex reports damage as RuntimeError(strerror)
        raise RegistryError(f"cannot edit the Windows registry {hive_path}: {exc}", path=hive_path) from exc
    return control_set


def _open(path: str, write: bool) -> Any:
    return _Hive(path, write=write)


if hivex is not None:
    class _Hive(hivex.Hivex):
        """hivex.Hivex whose destructor stays quiet when opening failed (it has no handle then)."""

        def __del__(self) -> None:
            if hasattr(self, "_o"):
                super().__del__()


def _current_control_set(h: Any, hive_path: str) -> str:
    select = _child(h, h.root(), "Select")
    value = _value(h, select, "Current") if select else None
    if value is None:
        raise RegistryError(f"{hive_path} has no Select\\Current: not a Windows SYSTEM hive")
    kind, data = h.value_value(value)
    if kind != REG_DWORD or len(data) != 4:
        raise RegistryError(f"{hive_path}: Select\\Current is not a REG_DWORD")
    (number,) = struct.unpack("<I", data)
    if not 1 <= number <= 999:
        raise RegistryError(f"{hive_path}: Select\\Current is {number}, not a control set number")
    name = f"ControlSet{number:03d}"
    if _child(h, h.root(), name) is None:
        raise RegistryError(f"{hive_path}: Select\\Current names {name}, which the hive does not have")
    return name


def _child(h: Any, node: int, name: str) -> int | None:
    return h.node_get_child(node, name) or None  # hivex matches key names regardless of case


def _path(h: Any, node: int, names: tuple[str, ...]) -> int | None:
    found: int | None = node
    for name in names:
        found = _child(h, found, name) if found is not None else None
    return found


def _ensure(h: Any, node: int, name: str) -> int:
    return _child(h, node, name) or h.node_add_child(node, name)


def _value(h: Any, node: int, key: str) -> int | None:
    # Not node_get_value: it raises a bare RuntimeError("Success") for a missing value.
    return next((v for v in h.node_values(node) if h.value_key(v).lower() == key.lower()), None)


def _warn_if_dirty(hive_path: str) -> None:
    """Unequal sequence numbers: Windows had changes only in SYSTEM.LOG1/2 when the image was captured."""
    with open(hive_path, "rb") as f:
        base = f.read(12)
    if len(base) == 12 and base[:4] == b"regf":
        primary, secondary = struct.unpack_from("<II", base, 4)
        if primary != secondary:
            log.warning("%s was not flushed when captured (sequence %d/%d): changes kept only in its "
                        "transaction logs are lost once the hive is rewritten", hive_path, primary, secondary)
