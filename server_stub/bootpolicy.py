"""What a machine boots: one pure function of (host, task), and its renderings.

No I/O here: the HTTP and TFTP servers look the host and task up, call
``decide``, and send ``render_ipxe`` (or ``render_grub``, ``render_pxelinux``) of the answer.
"""
from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from collections.abc import Mapping
from typing import Any, Literal

# What a MAC the server does not know gets (imager-server serve --unknown-hosts):
# "menu" (FOG's default): a short menu whose default entry boots the local disk;
# "register": quick registration and inventory without asking; "local": the local disk.
UnknownHosts = Literal["menu", "register", "local"]
# What an iPXE client on UEFI does to boot its local disk (serve --uefi-local-boot): "grub" chains Debian's
# signed GRUB, which chainloads the disk's ESP loader (FOG's exit types exist because 'exit' varies by vendor);
# "exit" hands the machine back to the firmware.
UefiLocalBoot = Literal["grub", "exit"]
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
    uefi_loader: str = ""     # the URL of GRUB an iPXE client on UEFI chains to boot its disk; "": exit


@dataclass(frozen=True)
class ImagerBoot:
    kernel_url: str
    initrd_url: str
    cmdline: str


@dataclass(frozen=True)
class LocalBoot:
    reason: str
    uefi_loader: str = ""     # BootContext.uefi_loader


@dataclass(frozen=True)
class MenuBoot:
    """An unknown machine's menu: the local disk unless someone picks an entry within ``timeout`` s."""
    reason: str
    timeout: int
    register: ImagerBoot      # "Quick registration and inventory"
    menu: ImagerBoot          # "Imager menu" (imager.mode=menu)
    uefi_loader: str = ""     # BootContext.uefi_loader, for the local entry


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
                            menu=_imager(mac, ctx, "imager.mode=menu"), uefi_loader=ctx.uefi_loader)
        return LocalBoot("unknown host", ctx.uefi_loader)
    if task is None or task.get("state") not in ("queued", "running"):
        return LocalBoot("no task", ctx.uefi_loader)
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


def _ipxe_local(reason: str, uefi_loader: str) -> str:
    # Like FOG: hand the machine back to its own disk. BIOS: sanboot the first disk. UEFI: drive 0x80 does not
    # exist there; GRUB chainloads the disk's ESP loader (render_grub), or 'exit' returns to the firmware.
    if not uefi_loader:
        return (f"echo imager: {reason}, booting the local disk\n"
                "iseq ${platform} efi && exit ||\n"
                "sanboot --no-describe --drive 0x80 || exit\n")
    return (f"echo imager: {reason}, booting the local disk\n"
            "iseq ${platform} efi && goto imager_uefi_local ||\n"
            "sanboot --no-describe --drive 0x80 || exit\n"
            ":imager_uefi_local\n"
            f"chain --autofree {uefi_loader} || exit\n")


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
                ":local\n" + _ipxe_local(spec.reason, spec.uefi_loader))
    return "#!ipxe\n" + _ipxe_local(spec.reason, spec.uefi_loader)


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


# --- GRUB (the Secure Boot chain: shim → Debian's signed GRUB; docs/secure-boot.md) ---------------------------

# Debian 12's signed GRUB network image (grubnetx64.efi) has tftp but no http module, and under Secure Boot it
# loads no module: the configs the server sends over TFTP load the kernel over TFTP, relative to $root, the
# (tftp,SERVER) device GRUB started from. /boot/<mac>.grub over HTTP is for GRUB builds that have http.
GRUB_TFTP_KERNEL, GRUB_TFTP_INITRD = "/imager/vmlinuz", "/imager/initrd.img"
# The ESP loaders local boot chainloads, in this order: Windows Boot Manager, then the removable-media path
# (where shim, a distribution's GRUB or any OS's fallback loader sits). Under Secure Boot, GRUB verifies the
# loader through shim: only a signed one runs.
ESP_LOADERS = ("/EFI/Microsoft/Boot/bootmgfw.efi", "/EFI/BOOT/BOOTX64.EFI")
_GRUB_SAFE = re.compile(r"[A-Za-z0-9_.,:/=@+%()-]+")
_GRUB_VARIABLE = re.compile(r"(\$\{net_default_server\})")  # the one variable a rendered word may carry


def _grub_quote(text: str) -> str:
    """One word for GRUB's shell-like parser: single quotes unless plainly safe; ${net_default_server} stays
    outside them so GRUB expands it (the server's address when it does not know its own URL)."""
    parts = []
    for part in _GRUB_VARIABLE.split(text):
        if not part or _GRUB_VARIABLE.fullmatch(part) or _GRUB_SAFE.fullmatch(part):
            parts.append(part)
        else:
            parts.append("'" + part.replace("'", "'\\''") + "'")
    return "".join(parts) or "''"


def grub_path(url: str) -> str:
    """http://host:port/path → GRUB's (http,host:port)/path (GRUB 2.06 as Debian builds it reads the port)."""
    rest = url.split("://", 1)[1]
    host, _, path = rest.partition("/")
    return f"(http,{host})" + (f"/{path}" if path else "")


def _grub_imager(title: str, entry_id: str, boot: ImagerBoot, kernel: str, initrd: str) -> str:
    args = " ".join(_grub_quote(word) for word in boot.cmdline.split())
    return (f"menuentry {_grub_quote(title)} --id {entry_id} {{\n"
            "  echo 'imager: booting the imaging environment'\n"
            f"  linux {_grub_quote(kernel)} {args}\n"
            f"  initrd {_grub_quote(initrd)}\n"
            "  boot\n"
            "}\n")


def grub_local_commands(reason: str, indent: str = "  ") -> str:
    """The local disk from GRUB on UEFI without 'exit': the first ESP loader found, chainloaded; none (or one
    that fails, or is refused under Secure Boot): back to the firmware, which boots its next entry."""
    lines = [f"echo {_grub_quote(f'imager: {reason}, booting the local disk')}"]
    for number, loader in enumerate(ESP_LOADERS):
        keyword = "if" if number == 0 else "elif"
        lines += [f"{keyword} search --no-floppy --file --set=root {loader}; then", f"  chainloader {loader}"]
    lines += ["else", "  echo 'imager: no boot loader on a local disk: back to the firmware'", "  exit", "fi",
              "boot", "echo 'imager: the local boot loader did not start: back to the firmware'", "exit"]
    return "".join(f"{indent}{line}\n" for line in lines)


def _grub_local(reason: str) -> str:
    return ("menuentry 'Boot from the local disk' --id local {\n" + grub_local_commands(reason) + "}\n")


def render_grub(spec: BootSpec, kernel: str = "", initrd: str = "") -> str:
    """A per-MAC grub.cfg with the outcomes of render_ipxe: the kernel and initrd at ``kernel``/``initrd``
    (GRUB paths; default: the spec's URLs over GRUB's http), the same command line."""
    def files(boot: ImagerBoot) -> tuple[str, str]:
        return kernel or grub_path(boot.kernel_url), initrd or grub_path(boot.initrd_url)

    if isinstance(spec, ImagerBoot):
        return ("set timeout=0\nset default=imager\n"
                + _grub_imager("imager: the imaging environment", "imager", spec, *files(spec)))
    if isinstance(spec, MenuBoot):  # the timeout boots the default entry: the local disk, as with iPXE
        return (f"echo {_grub_quote(f'imager: this machine is not registered ({spec.reason})')}\n"
                f"set timeout={spec.timeout}\nset default=local\n" + _grub_local(spec.reason)
                + _grub_imager("Quick registration and inventory", "register", spec.register, *files(spec.register))
                + _grub_imager("Imager menu", "menu", spec.menu, *files(spec.menu)))
    return "set timeout=0\nset default=local\n" + _grub_local(spec.reason)


def render_grub_entry(config: str) -> str:
    """The static grub.cfg at GRUB's $prefix (/grub): load this machine's config from ``config`` (a GRUB path
    with ${imager_mac}); unreachable: the local disk. GRUB names its MAC net_default_mac, aa:bb:cc:dd:ee:ff."""
    return ("# imager: this machine's boot configuration, per MAC, from the server\n"
            'set imager_mac="$net_default_mac"\n'
            'if [ -z "$imager_mac" ]; then set imager_mac="$net_efinet0_mac"; fi\n'
            f"configfile {config}\n"
            + grub_local_commands("the server did not answer", indent=""))
