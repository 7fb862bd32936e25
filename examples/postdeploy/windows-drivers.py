#!/usr/bin/env python3
"""imager post-deploy script: inject this machine model's driver folder into the deployed Windows.

Plug and Play searches the folders in HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion ``DevicePath``
(REG_EXPAND_SZ, ';'-separated, with their subfolders) for drivers of devices it finds. So: copy the folder
into C:\\Drivers and add ``%SystemDrive%\\Drivers`` to DevicePath in the offline SOFTWARE hive (hivex, as
imager sets the computer name), and the first boot installs them.

Where the drivers come from: the storage node the image came from, mounted for the deploy (IMAGER_STORAGE):
``drivers/<product_name>/`` for the model the inventory names (IMAGER_INVENTORY, dmi.product_name), else
``drivers/common/``. A machine without a folder is left as it is (exit 0: not every model needs one).

Attach it:  imager-server script add windows-drivers examples/postdeploy/windows-drivers.py
            imager-server script attach windows-drivers --image win11 --policy fail
"""
from __future__ import annotations

import json
import os
import shutil
import sys

import hivex

DRIVERS = "Drivers"                       # C:\Drivers
DEVICE_PATH_ENTRY = "%SystemDrive%\\Drivers"
DEFAULT_DEVICE_PATH = "%SystemRoot%\\inf"
REG_SZ, REG_EXPAND_SZ = 1, 2
SOFTWARE_HIVE = ("Windows", "System32", "config", "SOFTWARE")
CURRENT_VERSION = ("Microsoft", "Windows", "CurrentVersion")


def mounts() -> dict[str, str]:
    """IMAGER_MOUNTS "1=/path 2=/path" → {"1": "/path", …}; IMAGER_FSTYPES likewise."""
    return dict(pair.split("=", 1) for pair in os.environ.get("IMAGER_MOUNTS", "").split() if "=" in pair)


def fstypes() -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in os.environ.get("IMAGER_FSTYPES", "").split() if "=" in pair)


def driver_source() -> str | None:
    storage = os.environ.get("IMAGER_STORAGE", "")
    if not storage:
        return None
    product = ""
    try:
        with open(os.environ["IMAGER_INVENTORY"]) as f:
            product = str(json.load(f).get("dmi", {}).get("product_name") or "")
    except (KeyError, OSError, ValueError):
        pass
    for name in ([product] if product and "/" not in product and product not in (".", "..") else []) + ["common"]:
        candidate = os.path.join(storage, "drivers", name)
        if os.path.isdir(candidate):
            return candidate
    return None


def find(root: str, parts: tuple[str, ...]) -> str | None:
    """``root/parts…`` with each part matched regardless of case (NTFS keeps Windows' own spelling)."""
    path = root
    for part in parts:
        try:
            names = sorted(os.listdir(path))
        except OSError:
            return None
        match = next((n for n in names if n.lower() == part.lower()), None)
        if match is None:
            return None
        path = os.path.join(path, match)
    return path


def utf16(text: str) -> bytes:
    return (text + "\0").encode("utf-16-le")


def add_device_path(hive_path: str) -> str:
    """Append our folder to DevicePath (once); returns the new value."""
    h = hivex.Hivex(hive_path, write=True)
    node = h.root()
    for name in CURRENT_VERSION:
        node = h.node_get_child(node, name)
        if not node:
            raise SystemExit(f"{hive_path} has no Microsoft\\Windows\\CurrentVersion: not a SOFTWARE hive")
    value = next((v for v in h.node_values(node) if h.value_key(v).lower() == "devicepath"), None)
    current = DEFAULT_DEVICE_PATH
    if value is not None:
        kind, data = h.value_value(value)
        if kind in (REG_SZ, REG_EXPAND_SZ):
            current = data.decode("utf-16-le").rstrip("\0") or DEFAULT_DEVICE_PATH
    entries = [e for e in current.split(";") if e]
    if DEVICE_PATH_ENTRY.lower() not in (e.lower() for e in entries):
        entries.append(DEVICE_PATH_ENTRY)
    wanted = ";".join(entries)
    h.node_set_value(node, {"key": "DevicePath", "t": REG_EXPAND_SZ, "value": utf16(wanted)})
    h.commit(None)
    return wanted


def main() -> int:
    source = driver_source()
    if source is None:
        print("no driver folder for this model (drivers/<product_name> or drivers/common on the storage node): "
              "nothing to inject")
        return 0
    injected = 0
    kinds = fstypes()
    for key, root in sorted(mounts().items()):
        if kinds.get(key) != "ntfs":
            continue
        hive = find(root, SOFTWARE_HIVE)
        if hive is None:
            continue
        target = os.path.join(root, DRIVERS)
        if os.path.islink(target):
            print(f"partition {key}: {DRIVERS} is a link; refused", file=sys.stderr)
            return 1
        shutil.copytree(source, target, dirs_exist_ok=True, symlinks=True)
        value = add_device_path(hive)
        print(f"partition {key}: {source} copied to C:\\{DRIVERS}; DevicePath is now {value}")
        injected += 1
    if injected == 0:
        print(f"no Windows (SOFTWARE hive) among the NTFS partitions: {os.environ.get('IMAGER_MOUNTS', '')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
