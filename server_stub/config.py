"""The server's settings, typed: what ``imager-server serve`` was started with (server_stub/cli.py)."""
from __future__ import annotations

from dataclasses import dataclass

from server_stub.bootpolicy import DEFAULT_KERNEL_ARGS, UefiLocalBoot, UnknownHosts


@dataclass(frozen=True)
class TlsConfig:
    """serve --tls-cert: the HTTPS port of the API and the certificate's fingerprint clients pin."""

    https_port: int
    fingerprint: str  # "sha256:<64 hex>"


@dataclass(frozen=True)
class ServerConfig:
    admin_token: str
    boot_dir: str                     # where vmlinuz and initrd.img are
    data_dir: str = "."               # the database, admin.token, tftp/, multicast/ logs
    bind: str = "0.0.0.0"
    http_port: int = 8080
    public_url: str = ""              # how clients reach us; empty: as each request asked
    kernel_args: str = DEFAULT_KERNEL_ARGS
    unknown_hosts: UnknownHosts = "menu"
    menu_timeout: int = 3
    register_prefix: str = "mac"
    register_rate: int = 60           # registrations per minute, all machines together
    tls: TlsConfig | None = None
    uefi_local_boot: UefiLocalBoot = "grub"  # an iPXE client on UEFI: chain GRUB for the local disk, or exit


def http_url(host: str, port: int, scheme: str = "http") -> str:
    """``scheme://host:port``, an IPv6 address in brackets (RFC 3986)."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"
