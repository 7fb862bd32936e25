"""Hardware reach of the Debian boot image (issue 15): which drivers initramfs/build.py selects, how
initramfs/hardware_report.py counts the device IDs the built initrd covers, FIRMWARE_DIR's filter."""
import gzip
import sys
import subprocess
from pathlib import Path

import pytest

from tests.bootimage.conftest import REPO, load_script

hardware = load_script("initramfs", "hardware")
report = load_script("initramfs", "hardware_report")
firmware = load_script("initramfs", "firmware")

R8169 = "kernel/drivers/net/ethernet/realtek/r8169.ko"
LIBPHY = "kernel/drivers/net/phy/libphy.ko"
REALTEK_PHY = "kernel/drivers/net/phy/realtek.ko"
IWLWIFI = "kernel/drivers/net/wireless/intel/iwlwifi/iwlwifi.ko"
R8152 = "kernel/drivers/net/usb/r8152.ko"
MEGARAID = "kernel/drivers/scsi/megaraid/megaraid_sas.ko"
SCSI_MOD = "kernel/drivers/scsi/scsi_mod.ko"
VMD = "kernel/drivers/pci/controller/vmd.ko"
PLX_CAN = "kernel/drivers/net/can/sja1000/plx_pci.ko"
EXT4 = "kernel/fs/ext4/ext4.ko"
BUILTIN_AHCI = "kernel/drivers/ata/ahci.ko"

DEP = f"""{R8169}: kernel/drivers/net/phy/mdio_devres.ko {LIBPHY}
kernel/drivers/net/phy/mdio_devres.ko: {LIBPHY}
{LIBPHY}:
{REALTEK_PHY}: {LIBPHY}
{IWLWIFI}:
{R8152}: kernel/drivers/net/mii.ko
kernel/drivers/net/mii.ko:
kernel/drivers/net/phy/unused_helper.ko:
{MEGARAID}: {SCSI_MOD}
{SCSI_MOD}:
{VMD}:
{PLX_CAN}:
{EXT4}:
"""
ALIASES = """# Aliases extracted from modules themselves.
alias pci:v000010ECd00008168sv*sd*bc*sc*i* r8169
alias pci:v000010ECd00008161sv*sd*bc*sc*i* r8169
alias mdio:0000000000011100110010010001???? realtek
alias pci:v00008086d00002723sv*sd*bc*sc*i* iwlwifi
alias usb:v0BDAp8153d*dc*dsc*dp*ic*isc*ip*in* r8152
alias usb:v0BDAp8156d*dc*dsc*dp*ic*isc*ip*in* r8152
alias pci:v00001000d0000005Dsv*sd*bc*sc*i* megaraid_sas
alias pci:v00008086d0000467Fsv*sd*bc*sc*i* vmd
alias pci:v000010B5d00009050sv*sd*bc*sc*i* plx_pci
alias fs-ext4 ext4
"""
SOFTDEP = "# Soft dependencies extracted from modules themselves.\nsoftdep r8169 pre: realtek\n"
BUILTIN_MODINFO = b"ahci.alias=pci:v*d*sv*sd*bc01sc06i01*\0ahci.license=GPL\0"


def index():
    paths, needs = hardware.parse_dep(DEP)
    return hardware.KernelIndex(paths=paths, needs=needs,
                                aliases=hardware.parse_aliases(ALIASES) + hardware.parse_builtin_aliases(BUILTIN_MODINFO),
                                softdeps=hardware.parse_softdep(SOFTDEP),
                                builtin={"ahci": BUILTIN_AHCI})


@pytest.mark.parametrize("path, pattern, cls", [
    (R8169, "pci:v000010ECd00008168sv*", hardware.WIRED_NIC),
    ("kernel/drivers/net/vmxnet3/vmxnet3.ko", "pci:v000015ADd000007B0sv*", hardware.WIRED_NIC),
    (IWLWIFI, "pci:v00008086d00002723sv*", None),  # Wi-Fi is not wired
    (PLX_CAN, "pci:v000010B5d00009050sv*", None),  # nor a CAN bus card
    (R8152, "usb:v0BDAp8153d*", hardware.USB_NIC),
    (R8152, "of:Nusb", None),
    ("kernel/drivers/usb/storage/usb-storage.ko", "usb:v0BC2p3300d*", None),
    (MEGARAID, "pci:v00001000d0000005Dsv*", hardware.STORAGE),
    (VMD, "pci:v00008086d0000467Fsv*", hardware.STORAGE),
    ("kernel/drivers/pci/controller/pci-hyperv.ko", "pci:v*", None),  # not the VMD storage bridge
    ("kernel/drivers/nvme/host/nvme.ko", "pci:v*d*sv*sd*bc01sc08i02*", hardware.STORAGE),
    ("kernel/drivers/mmc/host/sdhci-pci.ko", "pci:v*d*sv*sd*bc08sc05i*", hardware.STORAGE),
    ("kernel/drivers/gpu/drm/i915/i915.ko", "pci:v00008086d*", None),
])
def test_a_drivers_class_follows_its_place_in_the_kernel_tree(path, pattern, cls):
    assert hardware.hardware_class(path, pattern) == cls


def test_parsers_read_the_kernel_packages_index_files():
    assert hardware.module_name("kernel/drivers/net/usb/ax88179_178a.ko") == "ax88179_178a"
    assert hardware.module_name("kernel/drivers/net/ethernet/intel/e1000e/e1000-e.ko.xz") == "e1000_e"
    assert ("usb:v0BDAp8153d*dc*dsc*dp*ic*isc*ip*in*", "r8152") in hardware.parse_aliases(ALIASES)
    assert len(hardware.parse_aliases(ALIASES)) == 10  # the comment line is no alias
    assert hardware.parse_builtin_aliases(BUILTIN_MODINFO) == [("pci:v*d*sv*sd*bc01sc06i01*", "ahci")]
    assert hardware.parse_softdep("softdep ohci_pci pre: ehci_pci post: x\n") == {"ohci_pci": ["ehci_pci", "x"]}


def test_the_image_takes_every_classified_driver_and_what_it_needs():
    chosen = hardware.select(index(), ["ext4", "ahci", "not_in_this_kernel"])
    assert chosen == {R8169, LIBPHY, "kernel/drivers/net/phy/mdio_devres.ko",
                      REALTEK_PHY,  # r8169's softdep, and an aliased PHY driver of a support tree
                      R8152, "kernel/drivers/net/mii.ko", MEGARAID, SCSI_MOD, VMD, EXT4}
    # Wi-Fi and CAN stay out; an alias-less helper of a support tree comes only when something needs it.


def test_a_softdep_brings_its_module_even_outside_the_support_trees():
    dep = f"{R8169}:\nkernel/drivers/other/realtek.ko:\n"
    paths, needs = hardware.parse_dep(dep)
    idx = hardware.KernelIndex(paths, needs, [("pci:v000010ECd00008168sv*", "r8169")],
                               {"r8169": ["realtek"]}, {})
    assert hardware.select(idx, []) == {R8169, "kernel/drivers/other/realtek.ko"}


def test_coverage_counts_ids_whose_module_is_in_the_image_or_built_in():
    cov = hardware.coverage(index(), {"r8169", "megaraid_sas"})
    assert (cov[hardware.WIRED_NIC].covered, cov[hardware.WIRED_NIC].total) == (2, 2)
    assert (cov[hardware.USB_NIC].covered, cov[hardware.USB_NIC].total, cov[hardware.USB_NIC].missing) == (0, 2, ["r8152"])
    # megaraid_sas + the built-in ahci, of megaraid_sas, vmd, ahci
    assert (cov[hardware.STORAGE].covered, cov[hardware.STORAGE].total, cov[hardware.STORAGE].missing) == (2, 3, ["vmd"])
    assert round(cov[hardware.STORAGE].percent, 1) == 66.7


def make_cpio(tree: Path) -> bytes:
    names = subprocess.run(["find", ".", "-mindepth", "1"], cwd=tree, check=True, capture_output=True).stdout
    return subprocess.run(["cpio", "--quiet", "-o", "-H", "newc"], cwd=tree, input=names, check=True,
                          capture_output=True).stdout


def test_the_report_reads_module_names_from_a_real_compressed_cpio(tmp_path):
    tree = tmp_path / "root"
    moddir = tree / "usr/lib/modules/6.1.0-99-amd64/kernel/drivers/net/usb"
    moddir.mkdir(parents=True)
    (moddir / "r8152.ko").write_bytes(b"\x7fELF" + b"x" * 1001)  # odd sizes: the 4-byte padding matters
    (moddir / "cdc-ether.ko").write_bytes(b"y" * 3)
    (tree / "init").write_text("#!/bin/sh\n")
    archive = make_cpio(tree)
    zstd = subprocess.run(["zstd", "-q", "-c"], input=archive, check=True, capture_output=True).stdout
    lz4 = subprocess.run(["lz4", "-l", "-q", "-c"], input=archive, check=True, capture_output=True).stdout
    for packed in (archive, zstd, lz4, gzip.compress(archive)):
        names = report.cpio_names(report.decompress(packed))
        assert "init" in names and "usr/lib/modules/6.1.0-99-amd64/kernel/drivers/net/usb/r8152.ko" in names
        assert report.image_modules(names) == ("6.1.0-99-amd64", {"r8152", "cdc_ether"})
    with pytest.raises(ValueError, match="not a cpio archive"):
        report.decompress(b"PK\x03\x04 a zip")
    with pytest.raises(ValueError, match="without its trailer"):
        report.cpio_names(archive[:200])


def test_an_image_with_two_kernels_modules_or_none_is_refused():
    with pytest.raises(ValueError, match="one kernel"):
        report.image_modules(["usr/lib/modules/a/kernel/x.ko", "usr/lib/modules/b/kernel/y.ko"])
    with pytest.raises(ValueError, match="none"):
        report.image_modules(["init", "usr/bin/busybox"])


def test_the_report_fails_below_the_goal_or_over_the_size_limit():
    good = {c: hardware.Coverage(95, 100, ["x"]) for c in hardware.CLASSES}
    lines, ok = report.report(good, 59_000_000)
    assert ok and lines[0].startswith("wired NIC (PCI)") and "95.0 %" in lines[0] and "ok" in lines[0]
    low = {**good, hardware.USB_NIC: hardware.Coverage(949, 1000, ["r8152"])}
    lines, ok = report.report(low, 1)
    assert not ok and any("BELOW 95 %" in line for line in lines) and any("r8152" in line for line in lines)
    lines, ok = report.report(good, 60_000_001)
    assert not ok and "TOO BIG" in lines[-1]


def test_firmware_dir_keeps_only_what_the_images_drivers_name():
    ko = b"\x7fELF...\0license=GPL\0firmware=rtl_nic/rtl8168h-2.fw\0firmware=bnx2x/bnx2x-e2-*.fw\0alias=pci:v*\0"
    declared = set(firmware.declared_firmware(ko))
    assert declared == {"rtl_nic/rtl8168h-2.fw", "bnx2x/bnx2x-e2-*.fw"}
    available = ["rtl_nic/rtl8168h-2.fw", "rtl_nic/rtl8125a-3.fw", "bnx2x/bnx2x-e2-7.13.21.0.fw.xz",
                 "amdgpu/navi10_sos.bin", "rtl_nic/rtl8168h-2.fw.zst"]
    assert firmware.wanted_files(available, declared) == ["bnx2x/bnx2x-e2-7.13.21.0.fw.xz",
                                                          "rtl_nic/rtl8168h-2.fw", "rtl_nic/rtl8168h-2.fw.zst"]


def test_add_firmware_copies_into_the_image_and_refuses_a_missing_dir(tmp_path, capsys):
    moddir, source, dest = tmp_path / "mod", tmp_path / "fw", tmp_path / "root/usr/lib/firmware"
    (moddir / "kernel").mkdir(parents=True)
    (moddir / "kernel/r8169.ko").write_bytes(b"\0firmware=rtl_nic/rtl8168h-2.fw\0")
    (source / "rtl_nic").mkdir(parents=True)
    (source / "rtl_nic/rtl8168h-2.fw").write_bytes(b"fw")
    (source / "i915").mkdir()
    (source / "i915/dmc.bin").write_bytes(b"gpu")
    assert firmware.add_firmware(source, moddir, {"kernel/r8169.ko"}, dest) == ["rtl_nic/rtl8168h-2.fw"]
    assert (dest / "rtl_nic/rtl8168h-2.fw").read_bytes() == b"fw" and not (dest / "i915").exists()
    assert "1 files" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="is not a directory"):
        firmware.add_firmware(tmp_path / "nope", moddir, set(), dest)


BUILT = REPO / "build" / "boot" / "initrd.img"


@pytest.mark.skipif(not BUILT.exists(), reason="no built image (make initramfs)")
def test_the_built_image_reaches_the_goal():
    """The real thing: the report over build/boot/initrd.img and Debian's modules.alias."""
    result = subprocess.run(["python3", str(REPO / "initramfs/hardware_report.py"), str(BUILT)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "USB NIC" in result.stdout and "initrd size" in result.stdout


def test_the_report_command_fails_below_the_goal_and_names_the_missing_drivers(tmp_path):
    """main() end to end on a small real cpio: the version found in it picks the alias file."""
    version = "6.1.0-99-amd64"
    moddir = tmp_path / "work/kernel" / version / "lib/modules" / version
    moddir.mkdir(parents=True)
    (moddir / "modules.dep").write_text(DEP)
    (moddir / "modules.alias").write_text(ALIASES)
    (moddir / "modules.builtin").write_text(BUILTIN_AHCI + "\n")
    (moddir / "modules.builtin.modinfo").write_bytes(BUILTIN_MODINFO)
    tree = tmp_path / "root"
    for path in (R8169, MEGARAID, VMD):
        (tree / "usr/lib/modules" / version / path).parent.mkdir(parents=True, exist_ok=True)
        (tree / "usr/lib/modules" / version / path).write_bytes(b"\x7fELF")
    initrd = tmp_path / "initrd.img"
    initrd.write_bytes(subprocess.run(["zstd", "-q", "-c"], input=make_cpio(tree), check=True,
                                      capture_output=True).stdout)
    run = [sys.executable, str(REPO / "initramfs/hardware_report.py"), str(initrd), "--work", str(tmp_path / "work")]
    result = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    assert f"kernel {version}, 3 modules" in result.stdout
    lines = result.stdout.splitlines()
    assert any(line.startswith("wired NIC (PCI)") and "100.0 %" in line and line.endswith("ok") for line in lines)
    assert any(line.startswith("USB NIC") and "0.0 %" in line and "BELOW 95 %" in line for line in lines)
    assert any(line.startswith("storage controller") and "3 / 3" in line for line in lines)
    assert "missing: r8152" in result.stdout
    broken = subprocess.run([*run[:2], str(tmp_path / "nothing.img")], capture_output=True, text=True, timeout=60)
    assert broken.returncode == 1 and "cannot read" in broken.stderr and "Traceback" not in broken.stderr
