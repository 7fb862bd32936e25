"""Kernel command-line parameters of the boot environment.

Every parameter is declared once below, with its meaning; docs/kernel-parameters.md
mirrors this table.  Values are parsed, never evaluated.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from imager.errors import BootParameterError

_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


@dataclass(frozen=True)
class BootParams:
    # imager.server=URL    Base URL of the imaging server's HTTP API, e.g. http://10.0.0.1:8080. Required.
    server: str
    # imager.task=ID       Number of the task this boot runs. Required unless imager.mode is register or menu.
    task: int | None = None
    # imager.claim=SECRET  One-time claim of the task: the first call exchanges it for the task's token
    #                      (docs/security.md#task-claims); a second use is refused. Required with imager.task.
    claim: str | None = None
    # imager.mode=MODE     task (default): run imager.task. register: an unknown machine registers itself
    #                      (quick registration: MACs + inventory, no task, no claim). menu: the technician's
    #                      menu (imager/ui/menu.py): registration, and tasks after the technician's password.
    mode: str = "task"
    # imager.mac=MAC       MAC of the NIC that booted (iPXE's ${net0/mac}); DHCP runs on it.
    #                      Optional: without it, pxelinux's BOOTIF=01-aa-bb-… is used, else the first NIC with a link.
    mac: str | None = None
    # imager.debug=1       Verbose log on the console.
    debug: bool = False
    # imager.fail_wait=S   Seconds an error stays on screen before the machine reboots (default 120).
    fail_wait: int = 120
    # imager.server_fp=sha256:HEX  SHA-256 of the server's certificate (DER), with an https imager.server:
    #                      the client trusts exactly that certificate (serve --tls-cert; docs/tls.md).
    #                      Without it an https server must have a certificate from a CA the image trusts.
    server_fp: str | None = None


_KNOWN = {"server", "task", "claim", "mac", "debug", "fail_wait", "mode", "server_fp"}
_FINGERPRINT = re.compile(r"^sha256:([0-9a-f]{2}:?){31}[0-9a-f]{2}$")
MODES = ("task", "register", "menu")


def parse(text: str) -> BootParams:
    """Parse /proc/cmdline text; unknown imager.* keys are an error (a typo must not pass silently)."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise BootParameterError(f"kernel command line is not parseable: {exc}") from exc
    values: dict[str, str] = {}
    bootif = None
    for word in words:
        key, sep, value = word.partition("=")
        if key == "BOOTIF" and sep:
            bootif = value
        if not key.startswith("imager."):
            continue
        name = key[len("imager."):]
        if name not in _KNOWN:
            raise BootParameterError(f"unknown kernel parameter {key}")
        values[name] = value
    mode = values.get("mode", "task")
    if mode not in MODES:
        raise BootParameterError(f"imager.mode={mode} is not one of {', '.join(MODES)}")
    for required in ("server", "task", "claim") if mode == "task" else ("server",):
        if not values.get(required):
            raise BootParameterError(f"kernel parameter imager.{required}= is missing")
    if mode != "task" and ("task" in values or "claim" in values):
        raise BootParameterError(f"imager.mode={mode} runs no task: imager.task and imager.claim do not belong")
    server = values["server"].rstrip("/")
    if not re.match(r"^https?://[^/\s]+", server):
        raise BootParameterError(f"imager.server={server} is not an http(s) URL")
    try:
        task = int(values["task"]) if mode == "task" else None
        fail_wait = int(values.get("fail_wait", "120"))
    except ValueError as exc:
        raise BootParameterError(f"imager.task and imager.fail_wait must be numbers: {exc}") from exc
    mac = values.get("mac") or _mac_from_bootif(bootif)
    if mac is not None:
        mac = mac.lower().replace("-", ":")
        if not _MAC.match(mac):
            raise BootParameterError(f"imager.mac={mac} is not a MAC address")
    server_fp = values.get("server_fp")
    if server_fp is not None:
        if not _FINGERPRINT.match(server_fp.lower()):
            raise BootParameterError(f"imager.server_fp={server_fp} is not sha256: and 64 hex digits")
        if not server.startswith("https://"):
            raise BootParameterError("imager.server_fp pins a certificate: imager.server must be https://")
        server_fp = "sha256:" + server_fp.lower()[7:].replace(":", "")
    return BootParams(server=server, task=task, claim=values.get("claim"), mode=mode, mac=mac,
                      debug=values.get("debug", "0") not in ("0", "", "no", "false"), fail_wait=fail_wait,
                      server_fp=server_fp)


def _mac_from_bootif(bootif: str | None) -> str | None:
    # pxelinux: BOOTIF=01-aa-bb-cc-dd-ee-ff (01 = Ethernet)
    if bootif and len(bootif) == 20 and bootif.startswith("01-"):
        return bootif[3:]
    return None


def read() -> BootParams:
    with open("/proc/cmdline") as f:
        return parse(f.read())
