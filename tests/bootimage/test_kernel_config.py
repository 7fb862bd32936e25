"""The boot kernel's configuration (issue 7): every symbol kernel-config/imager.fragment asks for
must survive `make olddefconfig` on Debian's linux-source; a dropped symbol is a missing driver."""
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FRAGMENT = REPO / "kernel-config" / "imager.fragment"

# What the issue names, by Kconfig symbol: if one of these leaves the fragment, a site loses hardware.
REQUIRED = [
    # storage
    "BLK_DEV_NVME", "VMD", "SATA_AHCI", "ATA_PIIX", "BLK_DEV_SD", "SCSI_VIRTIO", "VIRTIO_BLK", "USB_STORAGE",
    "USB_UAS", "USB_XHCI_HCD", "USB_EHCI_HCD",
    # NICs, USB NICs
    "E1000", "E1000E", "IGB", "IGC", "IXGBE", "R8169", "TIGON3", "BNX2", "BNX2X", "MLX4_EN", "MLX5_CORE_EN",
    "VIRTIO_NET", "USB_RTL8152", "USB_NET_AX88179_178A", "USB_NET_CDCETHER",
    # issue 15: the families the Debian image carries as modules, mirrored (SAS/RAID/FC HBAs, MMC, UFS, more NICs)
    "SCSI_AACRAID", "SCSI_MPI3MR", "SCSI_ARCMSR", "SCSI_ISCI", "SCSI_QLA_FC", "SCSI_LPFC", "MMC_REALTEK_PCI",
    "SCSI_UFSHCD_PCI", "ICE", "I40EVF", "QEDE", "CHELSIO_T4", "SFC", "BE2NET", "ENA_ETHERNET", "DWMAC_INTEL",
    "FORCEDETH", "USB_NET_CDC_EEM", "USB_NET_RNDIS_HOST", "USB_PEGASUS", "REALTEK_PHY",
    # boot
    "EFI_STUB", "BLK_DEV_INITRD", "RD_ZSTD", "DEVTMPFS", "FW_LOADER",
    # filesystems, LVM, NFS, multicast
    "EXT4_FS", "EXT4_USE_FOR_EXT2", "VFAT_FS", "NTFS3_FS", "XFS_FS", "BTRFS_FS", "BLK_DEV_DM", "DM_SNAPSHOT",
    "NFS_FS", "NFS_V3", "NFS_V4", "NFS_V4_1", "IP_MULTICAST", "PACKET",
]


def test_parse_reads_values_and_unset_symbols(check_config):
    text = "\n".join([
        "# a comment", "", "CONFIG_A=y", "CONFIG_B=m", 'CONFIG_C="-imager"', "# CONFIG_D is not set", "CONFIG_E=n",
        "CONFIG_F=0x10", "BR2_OTHER=y",
    ])
    assert check_config.parse(text) == {"CONFIG_A": "y", "CONFIG_B": "m", "CONFIG_C": '"-imager"',
                                        "CONFIG_D": None, "CONFIG_E": None, "CONFIG_F": "0x10"}
    assert check_config.parse(text, prefix="BR2_") == {"BR2_OTHER": "y"}


def test_a_dropped_symbol_is_reported(check_config):
    wanted = {"CONFIG_KEPT": "y", "CONFIG_DEMOTED": "y", "CONFIG_GONE": "y", "CONFIG_OFF": None,
              "CONFIG_OFF_BUT_ON": None, "CONFIG_STR": '"x"', "CONFIG_OFF_ABSENT": None}
    resolved = {"CONFIG_KEPT": "y", "CONFIG_DEMOTED": "m", "CONFIG_OFF": None, "CONFIG_OFF_BUT_ON": "y",
                "CONFIG_STR": '"y"', "CONFIG_UNRELATED": "y"}
    dropped = check_config.compare(wanted, resolved)
    assert [d.symbol for d in dropped] == ["CONFIG_DEMOTED", "CONFIG_GONE", "CONFIG_OFF_BUT_ON", "CONFIG_STR"]
    by_name = {d.symbol: d for d in dropped}
    assert str(by_name["CONFIG_DEMOTED"]) == "CONFIG_DEMOTED: wanted y, got m"
    assert not by_name["CONFIG_GONE"].present and "absent" in str(by_name["CONFIG_GONE"])
    assert str(by_name["CONFIG_OFF_BUT_ON"]) == "CONFIG_OFF_BUT_ON: wanted not set, got y"


def test_fragment_mistakes_are_errors(check_config):
    with pytest.raises(check_config.FragmentError, match="set twice"):
        check_config.parse("CONFIG_A=y\nCONFIG_A=m\n", strict=True)
    with pytest.raises(check_config.FragmentError, match="not a CONFIG_"):
        check_config.parse("CONFIG_A=y\nCONFIG_A y\n", strict=True)
    assert check_config.parse("CONFIG_A=y\nCONFIG_A=y\n", strict=True) == {"CONFIG_A": "y"}


def test_main_exit_status_and_report(check_config, tmp_path, capsys):
    fragment = tmp_path / "f.fragment"
    fragment.write_text("CONFIG_NVME=y\nCONFIG_IGC=y\n# CONFIG_WERROR is not set\n")
    dotconfig = tmp_path / ".config"
    dotconfig.write_text("CONFIG_NVME=y\nCONFIG_IGC=m\nCONFIG_WERROR=y\n")
    assert check_config.main([str(fragment), str(dotconfig)]) == 1
    out = capsys.readouterr().out
    assert "DROPPED CONFIG_IGC: wanted y, got m" in out and "DROPPED CONFIG_WERROR" in out
    assert "2 of 3 symbols" in out
    dotconfig.write_text("CONFIG_NVME=y\nCONFIG_IGC=y\n# CONFIG_WERROR is not set\n")
    assert check_config.main([str(fragment), str(dotconfig)]) == 0
    assert check_config.main([str(fragment), str(tmp_path / "missing")]) == 2


def test_fragment_builds_in_everything_the_issue_names(check_config):
    wanted = check_config.parse(FRAGMENT.read_text(), source=str(FRAGMENT), strict=True)
    missing = [s for s in REQUIRED if wanted.get(f"CONFIG_{s}") != "y"]
    assert not missing, f"not built in by {FRAGMENT.name}: {missing}"
    modules = [s for s, v in wanted.items() if v == "m"]
    assert not modules, f"the boot image must not need modules: {modules}"


@pytest.mark.root
@pytest.mark.timeout(1200)
def test_fragment_survives_olddefconfig_on_debian_linux_source():
    """Unpacks linux-source once (cached in build/kernel-src), then defconfig + fragment + olddefconfig."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKEFLAGS", "MFLAGS", "MAKELEVEL"))}
    result = subprocess.run(["make", "-f", "mk/bootimage.mk", "kernel-config-check"], cwd=REPO, env=env,
                            text=True, capture_output=True)
    report = result.stdout + result.stderr
    dropped = [line for line in report.splitlines() if line.startswith("DROPPED ")]
    assert not dropped, "symbols that did not survive olddefconfig:\n" + "\n".join(dropped)
    assert result.returncode == 0, report[-4000:]
    assert "survived into" in result.stdout
