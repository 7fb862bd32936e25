"""Wake-on-LAN: magic packets (6 × 0xFF, then the MAC 16 times) in UDP to port 9, sent to a directed broadcast
address (10.0.3.255: routers forward it to that subnet only if told to) and/or out of a named interface
(SO_BINDTODEVICE: the subnet on that wire), as configured per storage group with a server-wide default
(store/wake.py; docs/fleet.md#wake-on-lan).

    wake_hosts(store, ["pc1", "pc2"], image="win10")   the one call: each host's target, packets, boot-log lines
    wake_tasks(store, tasks)                           the hosts of just-queued tasks, each by its task's image

Nothing is sent for a host no target covers (no storage group's, no server default): a server never broadcasts
onto a network nobody told it about. A wake is best effort: a send that fails is reported in the answer (and the boot log), never raised, so the
task it was for stays queued. Sending with an interface needs CAP_NET_RAW (SO_BINDTODEVICE).
"""
from __future__ import annotations

import errno
import ipaddress
import logging
import re
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

from server_stub.errors import Invalid

if TYPE_CHECKING:
    from server_stub.store import Store
    from server_stub.store.models import Task

log = logging.getLogger(__name__)

WOL_PORT = 9                        # "discard": what FOG and most tools send to
REPEAT = 3                          # packets per MAC: UDP may lose one, a NIC wakes on any
LIMITED_BROADCAST = "255.255.255.255"
MAX_HOSTS_PER_WAKE = 10_000         # bounds the packets one call sends
_INTERFACE = re.compile(r"^[A-Za-z0-9_.:@-]{1,15}$")  # Linux IFNAMSIZ − 1
_MAC = re.compile(r"^[0-9a-f]{2}([:-]?)[0-9a-f]{2}(\1[0-9a-f]{2}){4}$", re.I)


@dataclass(frozen=True)
class WakeTarget:
    """Where a host's packets go: ``broadcast`` (None: 255.255.255.255) out of ``interface`` (None: as routed)."""
    broadcast: str | None = None
    interface: str | None = None
    source: str = "server default"      # or "storage group lab"

    @property
    def address(self) -> str:
        return self.broadcast or LIMITED_BROADCAST


class WakeSent(TypedDict):
    host: str
    mac: str
    address: str
    interface: str | None
    target: str             # which setting chose it


class WakeFailed(TypedDict):
    host: str
    mac: str
    reason: str


class WakeReport(TypedDict):
    sent: list[WakeSent]
    failed: list[WakeFailed]
    not_configured: list[str]  # hosts no wake target covers: nothing sent (imager-server wake set …)


def wake_wanted(body: Mapping[str, Any]) -> bool:
    """A request's ``wake``: true unless ``"wake": false`` (FOG wakes a host whenever a task is queued for it)."""
    value = body.get("wake")
    if value is None:
        return True
    if not isinstance(value, bool):
        raise Invalid("wake must be true or false", field="wake")
    return value


def mac_bytes(mac: str) -> bytes:
    """52:54:00:12:34:56, 52-54-00-…, or 525400123456 → 6 bytes; anything else: Invalid naming it."""
    if not isinstance(mac, str) or not _MAC.fullmatch(mac.strip()):
        raise Invalid(f"{mac!r} is not a MAC address (like 52:54:00:12:34:56)", field="mac")
    return bytes.fromhex(re.sub(r"[:-]", "", mac.strip()))


def magic_packet(mac: str) -> bytes:
    return b"\xff" * 6 + mac_bytes(mac) * 16


def check_broadcast(text: object) -> str:
    """An IPv4 address to send to: a subnet's directed broadcast (10.0.3.255), or 255.255.255.255. Not a
    multicast, loopback or unspecified address, and not IPv6 (Wake-on-LAN is an IPv4 broadcast)."""
    try:
        address = ipaddress.IPv4Address(str(text).strip()) if isinstance(text, str) else None
    except ValueError:
        address = None
    if address is None or address.is_multicast or address.is_loopback or address.is_unspecified:
        raise Invalid(f"broadcast {text!r} must be an IPv4 broadcast address, like 10.0.3.255 (a subnet's "
                      "directed broadcast) or 255.255.255.255", field="broadcast")
    return str(address)


def check_interface(text: object) -> str:
    if not isinstance(text, str) or not _INTERFACE.fullmatch(text) or text in (".", ".."):
        raise Invalid(f"interface {text!r} must be a network interface name (1-15 letters, digits, '_', '.', "
                      "'-', ':' or '@'), like eth1 or vlan30", field="interface")
    return text


def _socket_for(target: WakeTarget) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        if target.interface:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, target.interface.encode())
            except PermissionError:
                raise OSError(errno.EPERM, f"sending out of interface {target.interface} needs CAP_NET_RAW "
                                           "(SO_BINDTODEVICE); give the server that capability or set a "
                                           "directed broadcast address instead") from None
            except OSError as exc:
                if exc.errno == errno.ENODEV:
                    raise OSError(errno.ENODEV, f"this server has no network interface {target.interface}") from None
                raise
    except BaseException:
        sock.close()
        raise
    return sock


def send_magic(packets: Sequence[tuple[str, str, WakeTarget]], repeat: int = REPEAT,
               port: int = WOL_PORT) -> WakeReport:
    """Send each (host, mac, target)'s packets, ``repeat`` times; one socket per target."""
    report = WakeReport(sent=[], failed=[], not_configured=[])
    by_target: dict[WakeTarget, list[tuple[str, str]]] = {}
    for host, mac, target in packets:
        by_target.setdefault(target, []).append((host, mac))
    for target, hosts in by_target.items():
        try:
            sock = _socket_for(target)
        except OSError as exc:
            report["failed"] += [WakeFailed(host=h, mac=m, reason=exc.strerror or str(exc)) for h, m in hosts]
            continue
        with sock:
            for host, mac in hosts:
                try:
                    packet = magic_packet(mac)
                    for _ in range(repeat):
                        sock.sendto(packet, (target.address, port))
                except OSError as exc:
                    reason = f"sending to {target.address}:{port} failed: {exc.strerror or exc}"
                    report["failed"].append(WakeFailed(host=host, mac=mac, reason=reason))
                    continue
                report["sent"].append(WakeSent(host=host, mac=mac, address=target.address,
                                               interface=target.interface, target=target.source))
    return report


def wake_hosts(store: Store, hosts: Iterable[str], image: str | None = None, task_id: int | None = None,
               port: int = WOL_PORT) -> WakeReport:
    """Wake these hosts (names or MACs; an unknown one: NotFound before anything is sent). Each host's target
    comes from the storage group of ``image`` (the task's), else of the host's assigned image, else the
    server's default. Every packet sent or failed is written to the host's boot log."""
    wanted = list(hosts)
    if len(wanted) > MAX_HOSTS_PER_WAKE:
        raise Invalid(f"at most {MAX_HOSTS_PER_WAKE} hosts at a time", field="hosts")
    from server_stub.store.wake import WakeTargets  # here: the store's module imports this one's checks

    targets = WakeTargets(store.db)
    packets, not_configured = [], []
    for host in [store.host(key) for key in wanted]:
        target = targets.target_for(host["id"], image)
        if target is None:
            not_configured.append(host["name"])
        else:
            packets.append((host["name"], host["mac"], target))
    report = send_magic(packets, port=port)
    report["not_configured"] = not_configured
    for sent in report["sent"]:
        via = f" via {sent['interface']}" if sent["interface"] else ""
        store.log_boot(sent["mac"], f"wake-on-lan: magic packets to {sent['address']}{via} ({sent['target']})",
                       task_id)
    for failed in report["failed"]:
        log.warning("wake-on-lan for %s failed: %s", failed["host"], failed["reason"])
        store.log_boot(failed["mac"], f"wake-on-lan failed: {failed['reason']}", task_id)
    return report


def wake_tasks(store: Store, tasks: Sequence[Task], port: int = WOL_PORT) -> WakeReport:
    """Wake the hosts of just-queued tasks (FOG wakes a host whenever a task is queued for it)."""
    report = WakeReport(sent=[], failed=[], not_configured=[])
    for task in tasks:
        done = wake_hosts(store, [task["mac"]], image=task["image"], task_id=task["id"], port=port)
        report["sent"] += done["sent"]
        report["failed"] += done["failed"]
        report["not_configured"] += done["not_configured"]
    return report
