"""What a machine boots: one pure function of (host, task), and its renderings.

No I/O here: the HTTP and TFTP servers look the host and task up, call
``decide``, and send ``render_ipxe`` of the answer.
"""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from collections.abc import Mapping
from typing import Any, Literal

# What a MAC the server does not know gets (imager-server serve --unknown-hosts):
# "menu" (FOG's default): a short menu whose default entry boots the local disk;
# "register": quick registration and inventory without asking; "local": the local disk.
UnknownHosts = Literal["menu", "register", "local"]
DEFAULT_KERNEL_ARGS = "console=ttyS0,115200n8 console=tty0"  # the last one is /dev/console: the screen


@dataclass(frozen=True)
class BootContext:
    base_url: str            # how the client reaches our HTTP server, e.g. http://10.0.0.1:8080
    kernel: str = "vmlinuz"
    initrd: str = "initrd.img"
    extra_args: str = DEFAULT_KERNEL_ARGS
    unknown_hosts: UnknownHosts = "menu"
    menu_timeout: int = 3     # seconds before the menu's default entry (FOG: 3)
    # serve --tls-cert: the API's https URL and the certificate's "sha256:…" the client pins (docs/tls.md);
    # kernel and initrd still come from base_url over plain HTTP.
    api_url: str = ""
    server_fp: str = ""


@dataclass(frozen=True)
class ImagerBoot:
    kernel_url: str
    initrd_url: str
    cmdline: str


@dataclass(frozen=True)
class LocalBoot:
    reason: str


@dataclass(frozen=True)
class MenuBoot:
    """An unknown machine's menu: the local disk unless someone picks an entry within ``timeout`` s."""
    reason: str
    timeout: int
    register: ImagerBoot      # "Quick registration and inventory"
    menu: ImagerBoot          # "Imager menu" (imager.mode=menu)


BootSpec = ImagerBoot | LocalBoot | MenuBoot


def claim_of(token: str) -> str:
    """The one-time claim a boot script carries instead of the task token (docs/security.md#task-claims):
    derived from the token, so a boot decision needs no write, and the token cannot be read back from it."""
    return hmac.new(token.encode(), b"imager task claim", hashlib.sha256).hexdigest()[:32]


def _imager(mac: str, ctx: BootContext, *args: str) -> ImagerBoot:
    pin = f"imager.server_fp={ctx.server_fp}" if ctx.server_fp else ""
    words = [f"imager.server={ctx.api_url or ctx.base_url}", pin, *args, f"imager.mac={mac}", ctx.extra_args]
    return ImagerBoot(kernel_url=f"{ctx.base_url}/files/{ctx.kernel}",
                      initrd_url=f"{ctx.base_url}/files/{ctx.initrd}",
                      cmdline=" ".join(w for w in words if w))


def decide(mac: str, host: Mapping[str, Any] | None, task: Mapping[str, Any] | None, ctx: BootContext) -> BootSpec:
    """An active task for this MAC boots the imager; an unknown MAC gets the server's policy for
    unknown hosts; everything else boots the local disk."""
    if host is None:
        if ctx.unknown_hosts == "register":
            return _imager(mac, ctx, "imager.mode=register")
        if ctx.unknown_hosts == "menu":
            return MenuBoot("unknown host", ctx.menu_timeout, register=_imager(mac, ctx, "imager.mode=register"),
                            menu=_imager(mac, ctx, "imager.mode=menu"))
        return LocalBoot("unknown host")
    if task is None or task.get("state") not in ("queued", "running"):
        return LocalBoot("no task")
    return _imager(mac, ctx, f"imager.task={task['id']}", f"imager.claim={claim_of(task['token'])}")


def describe(spec: BootSpec) -> str:
    """One line for the boot log."""
    if isinstance(spec, ImagerBoot):
        mode = next((w.split("=", 1)[1] for w in spec.cmdline.split() if w.startswith("imager.mode=")), "")
        return f"imager: {mode}" if mode else "imager"
    if isinstance(spec, MenuBoot):
        return f"menu: {spec.reason} (local disk after {spec.timeout} s)"
    return f"local: {spec.reason}"


def _ipxe_imager(spec: ImagerBoot) -> str:
    return ("echo imager: booting the imaging environment\n"
            f"kernel {spec.kernel_url} initrd=initrd.img {spec.cmdline}\n"
            f"initrd --name initrd.img {spec.initrd_url}\n"
            "boot\n")


def _ipxe_local(reason: str) -> str:
    # Like FOG: hand the machine back to its own disk. BIOS: sanboot the first disk. UEFI: sanboot of
    # drive 0x80 does not exist there, so 'exit' returns to the firmware, which boots its next entry.
    return (f"echo imager: {reason}, booting the local disk\n"
            "iseq ${platform} efi && exit ||\n"
            "sanboot --no-describe --drive 0x80 || exit\n")


def render_ipxe(spec: BootSpec) -> str:
    if isinstance(spec, ImagerBoot):
        return "#!ipxe\n" + _ipxe_imager(spec)
    if isinstance(spec, MenuBoot):
        # Esc or a failed menu falls through to the local disk, as the timeout does.
        return ("#!ipxe\n"
                f"menu imager: this machine is not registered (${{net0/mac}})\n"
                f"item local Boot from the local disk (in {spec.timeout} s)\n"
                "item register Quick registration and inventory\n"
                "item imager Imager menu\n"
                f"choose --timeout {spec.timeout * 1000} --default local target || set target local\n"
                "goto ${target}\n"
                ":register\n" + _ipxe_imager(spec.register) +
                ":imager\n" + _ipxe_imager(spec.menu) +
                ":local\n" + _ipxe_local(spec.reason))
    return "#!ipxe\n" + _ipxe_local(spec.reason)


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
    def label(name: str, boot: ImagerBoot) -> str:
        return f"LABEL {name}\n  KERNEL {kernel}\n  INITRD {initrd}\n  APPEND {boot.cmdline}\n"

    if isinstance(spec, ImagerBoot):
        return "DEFAULT imager\nPROMPT 0\n" + label("imager", spec)
    if isinstance(spec, MenuBoot):  # plain pxelinux has no menu module here: a prompt with a timeout
        return ("DEFAULT local\nPROMPT 1\n"
                f"TIMEOUT {spec.timeout * 10}\n"
                f"SAY imager: {spec.reason}. Type register (quick registration and inventory) or imager "
                f"(imager menu); the local disk boots in {spec.timeout} s.\n"
                "LABEL local\n  LOCALBOOT 0\n" + label("register", spec.register) + label("imager", spec.menu))
    return f"DEFAULT local\nPROMPT 0\n# {spec.reason}\nLABEL local\n  LOCALBOOT 0\n"
