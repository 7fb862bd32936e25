"""Boot wiring: from a MAC (over HTTP or TFTP) to what it boots, with the boot log.

server_stub/bootpolicy.py decides and renders without I/O; this module looks the host and task up,
records each decision in the boot log, and holds the TFTP server's table of generated files.
"""
from __future__ import annotations

import dataclasses
import logging
import re
import sqlite3
from pathlib import Path

from server_stub import bootpolicy, tls
from server_stub.config import ServerConfig, http_url
from server_stub.errors import Invalid
from server_stub.store import Store
from server_stub.store.validate import normalize_mac

log = logging.getLogger(__name__)

_PXELINUX_CONFIG = re.compile(r"pxelinux\.cfg/01-([0-9a-fA-F]{2}(?:-[0-9a-fA-F]{2}){5})")
_IPXE_SCRIPT = re.compile(r"boot/([0-9a-fA-F:-]{17})\.ipxe")
# GRUB's $prefix is (tftp,SERVER)/grub: the static entry there, then this machine's config (docs/secure-boot.md)
GRUB_ENTRY = "grub/grub.cfg"
_GRUB_CONFIG = re.compile(r"grub/grub\.cfg-([0-9a-fA-F:-]{17})")
PXELINUX_BOOT_FILES = ("imager/vmlinuz", "imager/initrd.img")  # pxelinux and GRUB fetch them over TFTP


class BootService:
    def __init__(self, store: Store, config: ServerConfig) -> None:
        self.store, self.config = store, config
        # Everything but the URLs, which depend on how the machine reached us.
        self._context = bootpolicy.BootContext(base_url="", extra_args=config.kernel_args,
                                               unknown_hosts=config.unknown_hosts, menu_timeout=config.menu_timeout)

    def context(self, base_url: str) -> bootpolicy.BootContext:
        """With serve --tls-cert the imaging environment calls the API over https and pins the certificate.
        The unknown-host policy is the stored setting, read at each boot (serve --unknown-hosts while unset)."""
        unknown_hosts = self.store.unknown_hosts(self.config.unknown_hosts)
        context = dataclasses.replace(self._context, base_url=base_url, unknown_hosts=unknown_hosts,
                                      uefi_loader=self.uefi_loader(base_url))
        if self.config.tls is None:
            return context
        return dataclasses.replace(context, api_url=tls.api_url(base_url, self.config.tls.https_port),
                                   server_fp=self.config.tls.fingerprint)

    def uefi_loader(self, base_url: str) -> str:
        """What an iPXE client on UEFI chains for its local disk: our GRUB (serve --uefi-local-boot grub, while
        startup installed it), which chainloads the disk's ESP loader; "": 'exit' to the firmware."""
        if self.config.uefi_local_boot != "grub" or not (Path(self.config.data_dir) / "tftp" / "grubx64.efi").is_file():
            return ""
        return f"{base_url}/files/grubx64.efi"

    def http_base(self, request_host: str) -> str:
        """Our URL as a machine that asked over HTTP sees it."""
        return self.config.public_url or f"http://{request_host}"

    def ipxe_base(self) -> str:
        """Our URL for iPXE scripts sent over TFTP: without a configured one, iPXE fills in the address it
        fetched the script from (wrong behind proxyDHCP, where next-server is the site's DHCP server)."""
        return self.config.public_url or f"http://${{next-server}}:{self.config.http_port}"

    def grub_base(self) -> str:
        """Our URL in GRUB configs sent over TFTP (the imager's API): GRUB fills in its TFTP server's address."""
        return self.config.public_url or f"http://${{net_default_server}}:{self.config.http_port}"

    def decide_for_mac(self, mac: str, base_url: str) -> bootpolicy.BootSpec:
        mac = normalize_mac(mac)
        host = self.store.find_host_by_mac(mac)
        task = self.store.active_task_for_mac(mac) if host else None
        spec = bootpolicy.decide(mac, host, task, self.context(base_url))
        decision = bootpolicy.describe(spec)
        log.info("boot %s → %s", mac, decision)
        try:  # best effort: a full disk or a locked database must not keep a machine from booting
            self.store.log_boot(mac, decision, task["id"] if task else None)
        except (sqlite3.Error, OSError) as exc:
            log.warning("boot log of %s not written: %s", mac, exc)
        return spec

    def tftp_file(self, path: str, client_ip: str) -> bytes | Path | None:
        """The generated files the TFTP server sends, or a file outside its root it sends (the boot files, read
        block by block, not all at once on the event loop); None: look for ``path`` in the root."""
        if path == "boot.ipxe":
            return bootpolicy.render_chain_script(self.ipxe_base()).encode()
        pxelinux = _PXELINUX_CONFIG.fullmatch(path)
        if pxelinux:  # pxelinux expands no variables: our bound address
            base = self.config.public_url or http_url(self.config.bind, self.config.http_port)
            return bootpolicy.render_pxelinux(self.decide_for_mac(pxelinux.group(1), base)).encode()
        if path in PXELINUX_BOOT_FILES:
            return Path(self.config.boot_dir) / path.split("/", 1)[1]
        if path == GRUB_ENTRY:
            return bootpolicy.render_grub_entry("/grub/grub.cfg-${imager_mac}").encode()
        grub = _GRUB_CONFIG.fullmatch(path)
        if grub:  # Debian's signed GRUB has no http: the kernel comes over TFTP too
            try:
                spec = self.decide_for_mac(grub.group(1), self.grub_base())
            except Invalid:
                return None
            return bootpolicy.render_grub(spec, bootpolicy.GRUB_TFTP_KERNEL, bootpolicy.GRUB_TFTP_INITRD).encode()
        script = _IPXE_SCRIPT.fullmatch(path)
        if script:
            try:
                spec = self.decide_for_mac(script.group(1), self.ipxe_base())
            except Invalid:  # 17 characters of hex digits and colons, but no MAC
                return None
            return bootpolicy.render_ipxe(spec).encode()
        return None
