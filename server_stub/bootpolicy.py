"""What a machine boots: one pure function of (host, task), and its renderings.

No I/O here: the HTTP and TFTP servers look the host and task up, call
``decide``, and send ``render_ipxe`` of the answer.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BootContext:
    base_url: str            # how the client reaches our HTTP server, e.g. http://10.0.0.1:8080
    kernel: str = "vmlinuz"
    initrd: str = "initrd.img"
    extra_args: str = "console=tty0 console=ttyS0,115200n8"


@dataclass(frozen=True)
class ImagerBoot:
    kernel_url: str
    initrd_url: str
    cmdline: str


@dataclass(frozen=True)
class LocalBoot:
    reason: str


BootSpec = ImagerBoot | LocalBoot


def decide(mac: str, host: dict | None, task: dict | None, ctx: BootContext) -> BootSpec:
    """An active task for this MAC boots the imager; everything else boots the local disk."""
    if host is None:
        return LocalBoot("unknown host")
    if task is None or task.get("state") not in ("queued", "running"):
        return LocalBoot("no task")
    args = [f"imager.server={ctx.base_url}", f"imager.task={task['id']}", f"imager.token={task['token']}",
            f"imager.mac={mac}", ctx.extra_args]
    return ImagerBoot(kernel_url=f"{ctx.base_url}/files/{ctx.kernel}",
                      initrd_url=f"{ctx.base_url}/files/{ctx.initrd}",
                      cmdline=" ".join(a for a in args if a))


def render_ipxe(spec: BootSpec) -> str:
    if isinstance(spec, ImagerBoot):
        return ("#!ipxe\n"
                "echo imager: booting the imaging environment\n"
                f"kernel {spec.kernel_url} initrd=initrd.img {spec.cmdline}\n"
                f"initrd --name initrd.img {spec.initrd_url}\n"
                "boot\n")
    # Like FOG: hand the machine back to its own disk. BIOS: sanboot the first disk. UEFI: sanboot of
    # drive 0x80 does not exist there, so 'exit' returns to the firmware, which boots its next entry.
    return ("#!ipxe\n"
            f"echo imager: {spec.reason}, booting the local disk\n"
            "iseq ${platform} efi && exit ||\n"
            "sanboot --no-describe --drive 0x80 || exit\n")


def render_chain_script(base_url: str) -> str:
    """The static script for clients that arrive over TFTP: continue over HTTP, per MAC.

    ``base_url`` is the server's own URL when it knows it; ``http://${next-server}:PORT`` otherwise,
    which is wrong behind proxyDHCP (next-server is then the site's DHCP server).
    """
    return ("#!ipxe\n"
            f"chain {base_url}/boot/${{net0/mac}}.ipxe || "
            "sanboot --no-describe --drive 0x80 || exit\n")


def render_pxelinux(spec: BootSpec, kernel: str = "imager/vmlinuz", initrd: str = "imager/initrd.img") -> str:
    """pxelinux.cfg/01-<mac> for syslinux clients: the kernel and initrd come over TFTP."""
    if isinstance(spec, ImagerBoot):
        return ("DEFAULT imager\nPROMPT 0\n"
                "LABEL imager\n"
                f"  KERNEL {kernel}\n"
                f"  INITRD {initrd}\n"
                f"  APPEND {spec.cmdline}\n")
    return f"DEFAULT local\nPROMPT 0\n# {spec.reason}\nLABEL local\n  LOCALBOOT 0\n"
