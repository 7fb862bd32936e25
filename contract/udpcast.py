"""udpcast's command lines: the options of one udp-sender or udp-receiver and the argv built from them.

The server starts udp-sender (server_stub/udpcast.py owns that process); the client starts
udp-receiver (imager/ops/multicast.py). Both build the argv here, so the two always agree on
ports, TTL and rendezvous. The flags are those of Debian's udpcast 20120424.
"""
from __future__ import annotations

import dataclasses
import enum
import ipaddress
import os
import re
from pathlib import Path

UDP_SENDER = "udp-sender"
UDP_RECEIVER = "udp-receiver"
MAX_BLOCKSIZE = 1456          # bytes of payload per packet: udpcast's default and maximum
MAX_SLICE_SIZE = 1024         # blocks per slice: udpcast's upper bound
DEFAULT_PORTBASE = 9000


class UdpcastError(ValueError):
    """Options that udpcast would reject or misread."""


class Mode(str, enum.Enum):
    """How the sender learns what the receivers lack (docs/multicast.md has the measurements)."""

    FULL_DUPLEX = "full-duplex"  # acknowledgements; the next slice goes out while the last one's acks come in
    HALF_DUPLEX = "half-duplex"  # acknowledgements; waits for them after each slice (hubs, coax)
    ASYNC = "async"              # no return channel: forward error correction and a fixed bitrate only


@dataclasses.dataclass(frozen=True)
class SenderOptions:
    """One udp-sender session.  The defaults are the mode docs/multicast.md chose."""

    portbase: int = DEFAULT_PORTBASE          # uses portbase and portbase+1; even
    interface: str | None = None              # udpcast's own default is eth0
    min_receivers: int | None = None          # start as soon as this many have connected …
    min_wait: int | None = 2                  # … but not before this many seconds after the first one
    max_wait: int | None = None               # start anyway this many seconds after the first connection
    start_timeout: int | None = None          # give up if no transfer has started after this many seconds
    mode: Mode = Mode.FULL_DUPLEX
    slice_size: int | None = 1024             # blocks per slice (--default-slice-size)
    blocksize: int | None = None              # bytes per packet, ≤ 1456
    max_bitrate: int | None = None            # bits per second on the wire, headers and retransmissions included
    fec: str | None = "8x8/128"               # "<interleave>x<redundancy>[/<stripesize>]", or None for none
    ttl: int = 1                              # 1: never leaves the LAN
    mcast_data_address: str | None = None     # default: 232.x.y.z from the sender's address
    mcast_rdv_address: str | None = None      # default: broadcast with ttl 1, else 224.0.0.1
    retries_until_drop: int | None = 30       # unanswered REQACKs before a receiver is dropped (udpcast: 200)
    pointopoint: bool = False                 # False: multicast even to a single receiver (--nopointopoint)
    broadcast: bool = False                   # Ethernet broadcast instead of multicast
    rexmit_hello_interval: int | None = 500   # ms between HELLOs: a receiver that missed one still finds us
    autostart: int | None = None              # start after this many HELLOs whoever listens (async: required)
    progress: bool = True                     # progress lines on stderr (SenderProcess reads them)
    # No --log: udp-sender then writes its messages there instead of stderr, and SenderProcess would not
    # see the transfer start or complete.  SenderProcess(stderr_log=...) keeps a copy of stderr instead.


@dataclasses.dataclass(frozen=True)
class ReceiverOptions:
    """One udp-receiver; portbase, ttl and rdv address must match the sender's."""

    portbase: int = DEFAULT_PORTBASE
    interface: str | None = None
    mcast_rdv_address: str | None = None      # where to look for the sender; the server's address works too
    ttl: int | None = None
    start_timeout: int | None = None          # give up if no sender starts a transfer within this many seconds
    receive_timeout: int | None = None        # give up when the sender is silent this long mid-transfer
    rcvbuf: int | None = None                 # bytes of socket receive buffer (capped by net.core.rmem_max)
    exit_wait: int | None = None              # milliseconds to linger after the final REQACK (udpcast: 500)
    progress: bool = True
    log: Path | None = None


# --- argv builders -------------------------------------------------------------------------------------

_IFNAME = re.compile(r"^[A-Za-z0-9_.:@-]{1,15}$")
_FEC = re.compile(r"^(\d+)x(\d+)(?:/(\d+))?$")


def _check_portbase(portbase: int) -> None:
    if not 1024 <= portbase <= 65534 or portbase % 2:
        raise UdpcastError(f"portbase {portbase}: an even port from 1024 to 65534 (it uses portbase and portbase+1)")


def _check_interface(interface: str | None) -> None:
    if interface is not None and not _IFNAME.match(interface):
        raise UdpcastError(f"interface {interface!r} is not a network interface name")


def _check_seconds(name: str, value: int | None, minimum: int = 0, unit: str = "seconds") -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < minimum):
        raise UdpcastError(f"{name} {value!r}: whole {unit} ≥ {minimum} (udpcast reads integers)")


def _check_positive(name: str, value: int | None, maximum: int | None = None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (maximum is not None and value > maximum):
        bound = f"1…{maximum}" if maximum is not None else "≥ 1"
        raise UdpcastError(f"{name} {value!r}: an integer {bound}")


def _check_ttl(ttl: int | None) -> None:
    if ttl is not None:
        _check_positive("ttl", ttl, 255)


def _check_multicast(name: str, address: str | None, unicast_ok: bool = False) -> None:
    if address is None:
        return
    try:
        ip = ipaddress.IPv4Address(address)
    except ValueError:
        raise UdpcastError(f"{name} {address!r} is not an IPv4 address") from None
    if not (ip.is_multicast or unicast_ok):
        raise UdpcastError(f"{name} {address}: not a multicast address (224.0.0.0/4)")


def sender_argv(options: SenderOptions, source: Path | None = None, *, program: str = UDP_SENDER) -> list[str]:
    """The udp-sender command line; ``source`` None means the data comes on stdin."""
    o = options
    _check_portbase(o.portbase)
    _check_interface(o.interface)
    _check_positive("min_receivers", o.min_receivers)
    _check_seconds("min_wait", o.min_wait)
    _check_seconds("max_wait", o.max_wait)
    _check_seconds("start_timeout", o.start_timeout, 1)
    _check_positive("slice_size", o.slice_size, MAX_SLICE_SIZE)
    _check_positive("blocksize", o.blocksize, MAX_BLOCKSIZE)
    _check_positive("max_bitrate", o.max_bitrate)
    _check_positive("retries_until_drop", o.retries_until_drop)
    _check_positive("rexmit_hello_interval", o.rexmit_hello_interval)
    _check_positive("autostart", o.autostart)
    _check_ttl(o.ttl)
    _check_multicast("mcast_data_address", o.mcast_data_address)
    _check_multicast("mcast_rdv_address", o.mcast_rdv_address, unicast_ok=True)
    if o.min_wait is not None and o.max_wait is not None and o.max_wait < o.min_wait:
        raise UdpcastError(f"max_wait {o.max_wait} < min_wait {o.min_wait}")
    if o.pointopoint and o.broadcast:
        raise UdpcastError("pointopoint and broadcast exclude each other")
    mode = Mode(o.mode)
    if mode is Mode.ASYNC:
        if o.max_bitrate is None:
            raise UdpcastError("async mode needs max_bitrate: without a return channel nothing else paces the sender")
        if o.fec is None:
            raise UdpcastError("async mode needs fec: without it any lost packet aborts the receivers")
        if o.pointopoint:
            raise UdpcastError("async mode cannot be point-to-point")
        if o.min_receivers is not None or o.autostart is None:
            raise UdpcastError("async receivers never connect, so min_receivers cannot start it: use autostart")
    if o.min_receivers is None and o.autostart is None:
        raise UdpcastError("nothing would start the transfer: set min_receivers (with max_wait) or autostart")
    if o.fec is not None:
        m = _FEC.match(o.fec)
        if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1 or (m.group(3) and not 1 <= int(m.group(3)) <= 128):
            raise UdpcastError(f"fec {o.fec!r}: '<interleave>x<redundancy>' or '…/<stripesize ≤ 128>'")
    if source is not None and not str(source):
        raise UdpcastError("empty source path")

    argv = [program, "--nokbd", "--portbase", str(o.portbase)]
    if source is not None:
        argv += ["--file", os.fspath(source)]
    if o.interface is not None:
        argv += ["--interface", o.interface]
    argv.append({Mode.FULL_DUPLEX: "--full-duplex", Mode.HALF_DUPLEX: "--half-duplex", Mode.ASYNC: "--async"}[mode])
    if o.fec is not None:
        argv += ["--fec", o.fec]
    if o.max_bitrate is not None:
        argv += ["--max-bitrate", str(o.max_bitrate)]
    if o.slice_size is not None:
        argv += ["--default-slice-size", str(o.slice_size)]
    if o.blocksize is not None:
        argv += ["--blocksize", str(o.blocksize)]
    if o.min_receivers is not None:     # min/max wait count from the first connection: only with it
        argv += ["--min-receivers", str(o.min_receivers)]
        if o.min_wait is not None:
            argv += ["--min-wait", str(o.min_wait)]
        if o.max_wait is not None:
            argv += ["--max-wait", str(o.max_wait)]
    if o.autostart is not None:
        argv += ["--autostart", str(o.autostart)]
    if o.start_timeout is not None:
        argv += ["--start-timeout", str(o.start_timeout)]
    if o.retries_until_drop is not None and mode is not Mode.ASYNC:
        argv += ["--retries-until-drop", str(o.retries_until_drop)]
    argv += ["--ttl", str(o.ttl)]
    if o.mcast_data_address is not None:
        argv += ["--mcast-data-address", o.mcast_data_address]
    if o.mcast_rdv_address is not None:
        argv += ["--mcast-rdv-address", o.mcast_rdv_address]
    if o.pointopoint:
        argv.append("--pointopoint")
    elif not o.broadcast:
        argv.append("--nopointopoint")
    if o.broadcast:
        argv.append("--broadcast")
    if o.rexmit_hello_interval is not None:
        argv += ["--rexmit-hello-interval", str(o.rexmit_hello_interval)]
    if not o.progress:
        argv.append("--no-progress")
    return argv


def receiver_argv(options: ReceiverOptions, output: Path | None = None, *, program: str = UDP_RECEIVER) -> list[str]:
    """The udp-receiver command line; ``output`` None means the data goes to stdout."""
    o = options
    _check_portbase(o.portbase)
    _check_interface(o.interface)
    _check_ttl(o.ttl)
    _check_multicast("mcast_rdv_address", o.mcast_rdv_address, unicast_ok=True)
    _check_seconds("start_timeout", o.start_timeout, 1)
    _check_seconds("receive_timeout", o.receive_timeout, 1)
    _check_positive("rcvbuf", o.rcvbuf)
    _check_seconds("exit_wait", o.exit_wait, unit="milliseconds")
    if output is not None and not str(output):
        raise UdpcastError("empty output path")

    argv = [program, "--nokbd", "--portbase", str(o.portbase)]
    if output is not None:
        argv += ["--file", os.fspath(output)]
    if o.interface is not None:
        argv += ["--interface", o.interface]
    if o.ttl is not None:
        argv += ["--ttl", str(o.ttl)]
    if o.mcast_rdv_address is not None:
        argv += ["--mcast-rdv-address", o.mcast_rdv_address]
    if o.start_timeout is not None:
        argv += ["--start-timeout", str(o.start_timeout)]
    if o.receive_timeout is not None:
        argv += ["--receive-timeout", str(o.receive_timeout)]
    if o.rcvbuf is not None:
        argv += ["--rcvbuf", str(o.rcvbuf)]
    if o.exit_wait is not None:
        argv += ["--exit-wait", str(o.exit_wait)]
    if not o.progress:
        argv.append("--no-progress")
    if o.log is not None:
        argv += ["--log", os.fspath(o.log)]
    return argv
