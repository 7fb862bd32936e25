"""The Windows computer name after a deploy: a real SYSTEM hive edited with hivex on a real NTFS (ntfs-3g)."""
from __future__ import annotations

import logging
import shutil
import struct
import subprocess
from pathlib import Path

import hivex
import pytest

from imager import imagestore, winhostname
from imager.errors import RegistryError
from tests.disktools import attached, file_sha256, mounted_rw
from tests.regftools import BASE_BLOCK, checksum, empty_hive

MiB = 1024 * 1024
REG_SZ, REG_DWORD = 1, 4
GOLDEN = "GOLDEN-PC"


def sz(text: str) -> dict:
    return {"t": REG_SZ, "value": (text + "\0").encode("utf-16-le")}


def build_system_hive(path: Path, current: int = 2, tcpip: bool = True, active: bool = False) -> None:
    """A SYSTEM hive as Windows lays it out: Select\\Current and two control sets, the old one stale."""
    path.write_bytes(empty_hive())
    h = hivex.Hivex(str(path), write=True)
    select = h.node_add_child(h.root(), "Select")
    h.node_set_values(select, [{"key": "Current", "t": REG_DWORD, "value": struct.pack("<I", current)},
                               {"key": "Default", "t": REG_DWORD, "value": struct.pack("<I", current)},
                               {"key": "LastKnownGood", "t": REG_DWORD, "value": struct.pack("<I", 1)}])
    for number in (1, 2):
        cs = h.node_add_child(h.root(), f"ControlSet{number:03d}")
        control = h.node_add_child(cs, "Control")
        names = h.node_add_child(control, "ComputerName")
        computer = h.node_add_child(names, "ComputerName")
        h.node_set_values(computer, [{"key": "ComputerName", **sz(GOLDEN)}, {"key": "Other", **sz("kept")}])
        if active:
            h.node_set_value(h.node_add_child(names, "ActiveComputerName"), {"key": "ComputerName", **sz(GOLDEN)})
        if tcpip:
            services = h.node_add_child(cs, "Services")
            params = h.node_add_child(h.node_add_child(services, "Tcpip"), "Parameters")
            h.node_set_values(params, [{"key": "Hostname", **sz("golden-pc")}, {"key": "NV Hostname", **sz("golden-pc")},
                                       {"key": "Domain", **sz("corp.example")},
                                       {"key": "SearchList", "t": REG_SZ, "value": b"a\0b\0\0\0"}])
    h.commit(None)


def read_values(path: Path, key: str) -> dict[str, tuple[int, bytes]]:
    """Every value of ``key`` (backslash path from the root) as (type, raw bytes)."""
    h = hivex.Hivex(str(path))
    node = h.root()
    for name in key.split("\\"):
        node = h.node_get_child(node, name)
        assert node, f"{key} is missing"
    return {h.value_key(v): h.value_value(v) for v in h.node_values(node)}


def utf16(text: str) -> tuple[int, bytes]:
    return REG_SZ, (text + "\0").encode("utf-16-le")


# --- unit tests: the name rules and the hive edit on a plain file (no programs run) -------------------------------

@pytest.mark.parametrize("hostname, netbios, dns", [
    ("lab-pc-42", "LAB-PC-42", "lab-pc-42"),
    ("Mixed-Case9", "MIXED-CASE9", "Mixed-Case9"),
    ("exactly-15-char", "EXACTLY-15-CHAR", "exactly-15-char"),
    ("workstation-floor3-17", "WORKSTATION-FLO", "workstation-floor3-17"),  # NetBIOS cut, DNS name whole
])
def test_windows_names(hostname, netbios, dns):
    assert winhostname.windows_names(hostname) == (netbios, dns)


@pytest.mark.parametrize("bad", ["", "-lead", "under_score", "dot.ted", "ünï", "x" * 64])
def test_names_windows_would_refuse_are_refused(bad):
    from imager.errors import InvalidTask
    with pytest.raises(InvalidTask, match="not a valid hostname"):  # the task's hostname is wrong
        winhostname.windows_names(bad)


def test_reg_sz_is_utf16le_with_its_nul():
    assert winhostname.reg_sz("AB") == b"A\0B\0\0\0"


def test_the_hive_is_found_whatever_the_case(tmp_path):
    assert winhostname.find_system_hive(str(tmp_path)) is None
    config = tmp_path / "WINDOWS" / "system32" / "Config"
    config.mkdir(parents=True)
    assert winhostname.find_system_hive(str(tmp_path)) is None
    (config / "system.LOG1").write_bytes(b"")
    (config / "System").write_bytes(b"regf")
    assert winhostname.find_system_hive(str(tmp_path)) == str(config / "System")


def test_the_current_control_set_is_edited_and_nothing_else(tmp_path):
    hive = tmp_path / "SYSTEM"
    build_system_hive(hive, current=2)
    assert winhostname.set_computer_name(str(hive), "WORKSTATION-FLO", "workstation-floor3-17") == "ControlSet002"
    names = "ControlSet002\\Control\\ComputerName"
    assert read_values(hive, names + "\\ComputerName") == {"ComputerName": utf16("WORKSTATION-FLO"),
                                                           "Other": utf16("kept")}
    assert read_values(hive, names + "\\ActiveComputerName") == {"ComputerName": utf16("WORKSTATION-FLO")}
    params = read_values(hive, "ControlSet002\\Services\\Tcpip\\Parameters")
    assert params["Hostname"] == params["NV Hostname"] == utf16("workstation-floor3-17")
    assert params["Domain"] == utf16("corp.example") and params["SearchList"] == (REG_SZ, b"a\0b\0\0\0")
    assert read_values(hive, "ControlSet001\\Control\\ComputerName\\ComputerName")["ComputerName"] == utf16(GOLDEN)
    assert read_values(hive, "Select")["Current"] == (REG_DWORD, struct.pack("<I", 2))


def test_no_tcpip_key_is_invented(tmp_path, caplog):
    hive = tmp_path / "SYSTEM"
    build_system_hive(hive, current=1, tcpip=False, active=True)
    with caplog.at_level(logging.WARNING):
        winhostname.set_computer_name(str(hive), "PC", "pc")
    assert "DNS host name not set" in caplog.text
    h = hivex.Hivex(str(hive))
    assert not h.node_get_child(h.node_get_child(h.root(), "ControlSet001"), "Services")
    assert read_values(hive, "ControlSet001\\Control\\ComputerName\\ActiveComputerName") == {"ComputerName": utf16("PC")}


def test_a_hive_not_flushed_when_captured_is_edited_with_a_warning(tmp_path, caplog):
    hive = tmp_path / "SYSTEM"
    build_system_hive(hive)
    data = bytearray(hive.read_bytes())
    struct.pack_into("<I", data, 4, struct.unpack_from("<I", data, 8)[0] + 1)  # primary sequence ahead
    struct.pack_into("<I", data, 0x1FC, checksum(bytes(data[:BASE_BLOCK])))
    hive.write_bytes(data)
    with caplog.at_level(logging.WARNING):
        winhostname.set_computer_name(str(hive), "PC", "pc")
    assert "was not flushed" in caplog.text
    seq = struct.unpack_from("<II", hive.read_bytes(), 4)
    assert seq[0] == seq[1]  # hivex leaves it clean: Windows will not replay stale logs over our values


@pytest.mark.parametrize("damage", ["garbage", "truncated", "hbin", "no-select", "select-points-nowhere"])
def test_a_damaged_hive_is_a_registry_error(tmp_path, damage):
    hive = tmp_path / "SYSTEM"
    build_system_hive(hive, current=7 if damage == "select-points-nowhere" else 2)
    data = bytearray(hive.read_bytes())
    if damage == "garbage":
        data = bytearray(b"regf" + bytes(range(256)) * 20)
    elif damage == "truncated":
        data = data[:5000]
    elif damage == "hbin":
        data[4096:4100] = b"junk"
    elif damage == "no-select":
        hive.write_bytes(empty_hive())
        h = hivex.Hivex(str(hive), write=True)
        h.node_add_child(h.root(), "ControlSet001")
        h.commit(None)
        data = bytearray(hive.read_bytes())
    hive.write_bytes(data)
    with pytest.raises(RegistryError) as err:
        winhostname.set_computer_name(str(hive), "PC", "pc")
    assert err.value.code == "windows_registry" and err.value.hint
    assert str(hive) in err.value.message
    if damage in ("no-select", "select-points-nowhere"):
        assert hive.read_bytes() == bytes(data)  # refused before writing


# --- on a real NTFS, through the deploy ---------------------------------------------------------------------------

def make_windows_disk(path: Path, with_hive: bool = True) -> None:
    """GPT: p1 NTFS with Windows (mixed-case path, as Windows writes it), p2 NTFS data without Windows."""
    with open(path, "wb") as f:
        f.truncate(96 * MiB)
    subprocess.run(["sgdisk", "-n1:2048:+48M", "-t1:0700", "-n2:0:0", "-t2:0700", str(path)], check=True,
                   capture_output=True)
    with attached(path) as dev:
        for n in (1, 2):
            subprocess.run(["mkntfs", "-Q", "-F", f"{dev}p{n}"], check=True, capture_output=True)
        with mounted_rw(f"{dev}p1", "ntfs") as root:
            config = root / "Windows" / "System32" / "config"
            config.mkdir(parents=True)
            (root / "Windows" / "explorer.exe").write_bytes(b"MZ" + bytes(5000))
            if with_hive:
                build_system_hive(config / "SYSTEM")
        with mounted_rw(f"{dev}p2", "ntfs") as root:
            (root / "data.txt").write_text("no Windows here\n")


def copy_hive_out(device: str, dest: Path) -> Path:
    with mounted_rw(device, "ntfs", readonly=True) as root:
        shutil.copyfile(root / "Windows" / "System32" / "config" / "SYSTEM", dest)
    return dest


def no_imager_mounts() -> bool:
    return "imager-ntfs-" not in Path("/proc/mounts").read_text()


@pytest.mark.root
def test_deploy_sets_the_windows_computer_name(tmp_path):
    from imager.ops.capture import capture_image
    from imager.ops.deploy import deploy_image
    from imager.progress import Progress
    make_windows_disk(tmp_path / "a.img")
    with open(tmp_path / "b.img", "wb") as f:
        f.truncate(128 * MiB)
    with attached(tmp_path / "a.img") as a, attached(tmp_path / "b.img") as b:
        capture_image(a, str(tmp_path / "store"), "win", Progress())
        original = copy_hive_out(f"{a}p1", tmp_path / "original")
        result = deploy_image(imagestore.resolve(str(tmp_path / "store"), "win"), b, Progress(), hostname="lab-pc-42")
        assert result["hostname_set"] == {"linux": [], "windows": [f"{b}p1"]}
        hive = copy_hive_out(f"{b}p1", tmp_path / "deployed")
        with mounted_rw(f"{b}p2", "ntfs", readonly=True) as root:
            assert (root / "data.txt").read_text() == "no Windows here\n"
    assert no_imager_mounts()
    names = "ControlSet002\\Control\\ComputerName"
    assert read_values(hive, names + "\\ComputerName") == {"ComputerName": utf16("LAB-PC-42"), "Other": utf16("kept")}
    assert read_values(hive, names + "\\ActiveComputerName") == {"ComputerName": utf16("LAB-PC-42")}
    params = read_values(hive, "ControlSet002\\Services\\Tcpip\\Parameters")
    assert params["Hostname"] == params["NV Hostname"] == utf16("lab-pc-42")
    assert params["Domain"] == utf16("corp.example")
    # Everything outside the current control set's name values reads exactly as before.
    for key in ("Select", "ControlSet001\\Control\\ComputerName\\ComputerName",
                "ControlSet001\\Services\\Tcpip\\Parameters"):
        assert read_values(hive, key) == read_values(original, key)
    if shutil.which("hivexget"):  # libhivex-bin: a second reader than the Python binding
        get = subprocess.run(["hivexget", str(hive), names + "\\ComputerName", "ComputerName"],
                             capture_output=True, text=True, check=True).stdout
        assert get.strip() == "LAB-PC-42"
        get = subprocess.run(["hivexget", str(hive), "ControlSet002\\Services\\Tcpip\\Parameters", "NV Hostname"],
                             capture_output=True, text=True, check=True).stdout
        assert get.strip() == "lab-pc-42"


@pytest.mark.root
def test_a_disk_without_windows_is_left_alone(tmp_path):
    make_windows_disk(tmp_path / "a.img", with_hive=False)
    with attached(tmp_path / "a.img") as dev:
        before = {n: file_sha256(Path(f"{dev}p{n}")) for n in (1, 2)}
        parts = [{"number": 1, "fstype": "ntfs"}, {"number": 2, "fstype": "ntfs"}]
        assert winhostname.set_windows_hostname(dev, parts, "lab-pc-42") == []
        assert {n: file_sha256(Path(f"{dev}p{n}")) for n in (1, 2)} == before  # not one byte written
    assert no_imager_mounts()


@pytest.mark.root
def test_a_damaged_hive_on_disk_fails_clearly_and_unmounts(tmp_path):
    make_windows_disk(tmp_path / "a.img")
    with attached(tmp_path / "a.img") as dev:
        with mounted_rw(f"{dev}p1", "ntfs") as root:
            hive = root / "Windows" / "System32" / "config" / "SYSTEM"
            hive.write_bytes(hive.read_bytes()[:4096] + b"\xff" * 4096)
        with pytest.raises(RegistryError) as err:
            winhostname.set_windows_hostname(dev, [{"number": 1, "fstype": "ntfs"}], "lab-pc-42")
        assert err.value.code == "windows_registry" and "SYSTEM" in err.value.message
        assert no_imager_mounts()
        with mounted_rw(f"{dev}p1", "ntfs", readonly=True) as root:  # the volume is still clean and mountable
            assert (root / "Windows" / "explorer.exe").stat().st_size == 5002
