"""What ``serve`` writes before it answers anyone: the boot binaries in the TFTP root (iPXE, syslinux, the Secure
Boot chain) and the admin token.

Each file is written to a temporary name, fsynced and renamed over the target, so a start that fails half way
(a full disk, a kill) leaves the old file or the new one, never a truncated one. At each start the files are
checked: a copy that is a truncated prefix of its source (left by an older version's interrupted copy) is
written again, an empty admin token is replaced, both with a message in the log.
"""
from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

log = logging.getLogger(__name__)

IPXE_BINARIES = ("undionly.kpxe", "ipxe.efi", "snponly.efi", "ipxe.pxe")
# For syslinux clients (Debian's pxelinux and syslinux-common), when installed.
SYSLINUX_BINARIES = {"pxelinux.0": "/usr/lib/PXELINUX/pxelinux.0",
                     "ldlinux.c32": "/usr/lib/syslinux/modules/bios/ldlinux.c32"}
# The Secure Boot chain (Debian's shim-signed, grub-efi-amd64-signed; docs/secure-boot.md): shim, signed by
# Microsoft's UEFI CA, loads grubx64.efi (and, when that fails verification, mmx64.efi) from its own directory;
# GRUB is Debian's signed network image, whose $prefix is /grub.
SECURE_BOOT_BINARIES = {"shimx64.efi": "/usr/lib/shim/shimx64.efi.signed",
                        "mmx64.efi": "/usr/lib/shim/mmx64.efi.signed",
                        "grubx64.efi": "/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed"}
BOOT_BINARIES: dict[str, str] = {**{name: f"/usr/lib/ipxe/{name}" for name in IPXE_BINARIES}, **SYSLINUX_BINARIES,
                                 **SECURE_BOOT_BINARIES}
# The UEFI loaders also served over HTTP (/files/NAME), for UEFI HTTP boot: a URL in the DHCP answer.
HTTP_LOADERS = ("shimx64.efi", "mmx64.efi", "grubx64.efi", "ipxe.efi", "snponly.efi")


def write_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    """``path`` holds ``data`` entirely, or (on any failure) what it held before."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a power loss
    finally:
        os.close(directory)


def install_boot_binaries(tftp_root: Path, binaries: dict[str, str] | None = None) -> list[str]:
    """Debian's boot binaries copied into the TFTP root, served as they are; the names written this time.

    A copy already there is kept (an admin may put their own build there) unless it is empty or a truncated
    prefix of its source.
    """
    written = []
    for name, source in (BOOT_BINARIES if binaries is None else binaries).items():
        if not Path(source).is_file():
            continue
        target = tftp_root / name
        content = Path(source).read_bytes()
        if target.is_file():
            present = target.read_bytes()
            if present == content or not content.startswith(present):
                continue
            log.warning("imager-server: %s holds %d of %s's %d bytes (an interrupted copy): written again",
                        target, len(present), source, len(content))
        write_atomically(target, content)
        written.append(name)
    return written


def ensure_admin_token(path: Path) -> str:
    """The admin credential: created once, readable by root only; the CLI reads it from here.
    An empty file (an interrupted first start of an older version) is replaced with a new token."""
    if path.exists():
        token = path.read_text(errors="replace").strip()
        if token:
            return token
        log.warning("imager-server: %s was empty (an interrupted first start?): a new admin token is written", path)
    token = secrets.token_urlsafe(32)
    write_atomically(path, (token + "\n").encode(), mode=0o600)
    return token
