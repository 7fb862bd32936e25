"""``imager-server init``: the server's directories on a new machine, and the settings the site's other services
need (sitesettings.py), printed to paste.

    imager-server init [--data-dir /var/lib/imager] [--server-ip IP] [--clients CIDR] [--http-port 80]
                       [--images-dir /srv/images] [--user imager] [--secure-boot] [--only SECTION] [--json]

Idempotent: a second run changes nothing and says so. Directories it creates or corrects belong to --user
(the systemd unit's user): the data directory 0750 (it holds admin.token and the database), its boot/ for
vmlinuz and initrd.img, and the images directory; anything in the data directory owned by someone else (a
``serve`` once run as root) is given to --user, so the service can read its own database.
"""
from __future__ import annotations

import argparse
import grp
import ipaddress
import json
import os
import pwd
import socket
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from server_stub import sitesettings
from server_stub.sitesettings import Site

DATA_DIR = "/var/lib/imager"      # the systemd unit's StateDirectory
IMAGES_DIR = "/srv/images"        # the unit's ReadWritePaths
SERVICE_USER = "imager"
SERVICE_HTTP_PORT = 80            # /etc/default/imager-server's IMAGER_SERVE_ARGS
BOOT_FILES = ("vmlinuz", "initrd.img")


class InitError(Exception):
    """A refusal with its reason, printed without a traceback."""


@dataclass(frozen=True)
class Owner:
    name: str
    uid: int
    gid: int


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("init", help="create the data directory; print DHCP, NFS and firewall settings",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=DATA_DIR, help=f"the server's data directory (default {DATA_DIR})")
    p.add_argument("--server-ip", help="the IPv4 address clients reach the server at (default: the address of "
                                       "the interface of the default route)")
    p.add_argument("--clients", help="the clients' network, CIDR, allowed to mount the images and through the "
                                     "firewall (default: the network of --server-ip on its interface, else /24)")
    p.add_argument("--http-port", type=int, default=SERVICE_HTTP_PORT,
                   help=f"the port serve listens on for HTTP (default {SERVICE_HTTP_PORT}, the unit's)")
    p.add_argument("--images-dir", default=IMAGES_DIR, help=f"the directory NFS exports (default {IMAGES_DIR})")
    p.add_argument("--user", default=SERVICE_USER, help=f"who owns the directories (default {SERVICE_USER}, "
                                                        "the service's user the package creates)")
    p.add_argument("--secure-boot", action="store_true",
                   help="UEFI clients get shimx64.efi (shim → Debian's signed GRUB) instead of iPXE's snponly.efi")
    p.add_argument("--only", choices=sitesettings.SECTIONS,
                   help="print one section's text alone, nothing else (e.g. > /etc/dnsmasq.d/imager.conf)")


# --- the site's addresses ------------------------------------------------------

def parse_server_ip(text: str) -> ipaddress.IPv4Address:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise InitError(f"--server-ip {text!r} is not an IP address (an IPv4 address like 10.0.0.1)") from None
    if not isinstance(address, ipaddress.IPv4Address):
        raise InitError(f"--server-ip {text}: an IPv4 address is needed (DHCPv4 options 66/67, PXE boots over IPv4)")
    if address.is_unspecified or address.is_loopback or address.is_multicast or address == ipaddress.IPv4Address(
            "255.255.255.255"):
        raise InitError(f"--server-ip {text}: clients cannot reach the server there (give the address of the "
                        "interface on the clients' network)")
    return address


def parse_clients(text: str) -> ipaddress.IPv4Network:
    try:
        network = ipaddress.IPv4Network(text, strict=False)
    except ValueError:
        raise InitError(f"--clients {text!r} is not an IPv4 network (like 10.0.0.0/24)") from None
    return network


def network_of(address: ipaddress.IPv4Address, ip_addr_json: str) -> ipaddress.IPv4Network | None:
    """The network ``address`` has on its interface, from ``ip -j -4 addr``'s output; None if no interface has it."""
    try:
        interfaces = json.loads(ip_addr_json)
    except ValueError:
        return None
    for interface in interfaces if isinstance(interfaces, list) else []:
        for info in interface.get("addr_info", []) if isinstance(interface, dict) else []:
            if info.get("local") == str(address) and isinstance(info.get("prefixlen"), int):
                return ipaddress.IPv4Network(f"{address}/{info['prefixlen']}", strict=False)
    return None


def default_route_address() -> ipaddress.IPv4Address:
    # A UDP "connect" sends nothing; it only asks the kernel which source address the route would use.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError:
            raise InitError("no IPv4 default route to guess the server's address from: give --server-ip") from None
        return ipaddress.IPv4Address(probe.getsockname()[0])


def local_networks() -> str:
    try:
        return subprocess.run(["ip", "-j", "-4", "addr"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "[]"


def make_site(server_ip: str | None, clients: str | None, http_port: int, images_dir: str, uid: int, gid: int,
              secure_boot: bool, ip_addr_json: str) -> Site:
    """The site from what the admin gave (text, as typed; None: guessed); InitError names the bad one."""
    address = parse_server_ip(server_ip) if server_ip else default_route_address()
    network = (parse_clients(clients) if clients else
               network_of(address, ip_addr_json) or ipaddress.IPv4Network(f"{address}/24", strict=False))
    if address not in network:
        raise InitError(f"--clients {network} does not contain the server's address {address}")
    if not 1 <= http_port <= 65535:
        raise InitError(f"--http-port {http_port}: a port from 1 to 65535")
    if not os.path.isabs(images_dir) or any(c in images_dir for c in " \t\n\"'()"):
        raise InitError(f"--images-dir {images_dir!r}: an absolute path without spaces, quotes or brackets "
                        "(it goes into /etc/exports)")
    return Site(server_ip=address, clients=network, http_port=http_port, images_dir=os.path.normpath(images_dir),
                uid=uid, gid=gid, secure_boot=secure_boot)


def site_from(args: argparse.Namespace, owner: Owner) -> Site:
    return make_site(args.server_ip, args.clients, args.http_port, args.images_dir, owner.uid, owner.gid,
                     args.secure_boot, "[]" if args.clients else local_networks())


# --- directories -----------------------------------------------------------------

def find_owner(name: str) -> Owner:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise InitError(f"no user {name!r} on this machine: the imager-server package creates 'imager' "
                        "(or: adduser --system --group imager), or give --user") from None
    return Owner(name, entry.pw_uid, entry.pw_gid)


def ensure_directory(path: Path, owner: Owner, mode: int) -> list[str]:
    """``path`` exists as a directory of ``owner`` with ``mode``; what had to change, in words."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise InitError(f"{path} exists and is not a directory")
    changes: list[str] = []
    if not path.exists():
        path.mkdir(parents=True, mode=mode)
        changes.append(f"created {path}")
    info = path.stat()
    if (info.st_uid, info.st_gid) != (owner.uid, owner.gid):
        _chown(path, owner)
        changes.append(f"{path}: owner set to {owner.name}")
    if stat.S_IMODE(info.st_mode) != mode:
        os.chmod(path, mode)
        changes.append(f"{path}: mode set to {mode:04o}")
    return changes


def _chown(path: Path, owner: Owner) -> None:
    try:
        os.chown(path, owner.uid, owner.gid, follow_symlinks=False)
    except PermissionError:
        raise InitError(f"cannot give {path} to {owner.name}: run init as root") from None


def adopt_contents(data_dir: Path, owner: Owner) -> int:
    """Everything inside the data directory belongs to the service's user (a root-run serve left root's files)."""
    changed = 0
    for root, dirs, files in os.walk(data_dir):
        for name in dirs + files:
            path = Path(root) / name
            info = path.lstat()
            if (info.st_uid, info.st_gid) != (owner.uid, owner.gid):
                _chown(path, owner)
                changed += 1
    return changed


def prepare(data_dir: Path, images_dir: Path, owner: Owner) -> list[str]:
    changes = ensure_directory(data_dir, owner, 0o750)
    changes += ensure_directory(data_dir / "boot", owner, 0o755)
    changes += ensure_directory(images_dir, owner, 0o755)
    adopted = adopt_contents(data_dir, owner)
    if adopted:
        changes.append(f"{adopted} file(s) in {data_dir} given to {owner.name}")
    return changes


# --- the command --------------------------------------------------------------------

def report(site: Site, data_dir: Path, changes: list[str]) -> str:
    boot = data_dir / "boot"
    missing = [name for name in BOOT_FILES if not (boot / name).is_file()]
    lines = ["Directories:"] + [f"  {c}" for c in changes] if changes else ["Directories: as they should be, "
                                                                              "nothing changed."]
    if missing:
        lines.append(f"  {boot} lacks {' and '.join(missing)}: copy build/boot/vmlinuz and build/boot/initrd.img "
                     "there (make initramfs), then: systemctl restart imager-server")
    lines += ["", f"Server {site.server_ip}, clients {site.clients}, HTTP {site.http_base}, images in "
                  f"{site.images_dir}.", "", "Ports the clients' network must reach on this server:"]
    lines += [f"  {port}/{proto}  {what}" for proto, port, what in sitesettings.ports(site)]
    lines += ["", "Paste the section of your DHCP server, NFS server and firewall "
                  "(one alone: imager-server init --only SECTION):", ""]
    return "\n".join(lines) + "\n" + sitesettings.render_all(site)


def run(args: argparse.Namespace) -> int:
    try:
        owner = find_owner(args.user)
        site = site_from(args, owner)
        data_dir = Path(args.data_dir)
        if not data_dir.is_absolute():
            raise InitError(f"--data-dir {args.data_dir!r}: an absolute path")
        if args.only:  # settings only: a script's redirect gets exactly the section, and nothing is created
            sys.stdout.write(sitesettings.RENDERERS[args.only](site))
            return 0
        changes = prepare(data_dir, Path(site.images_dir), owner)
    except (InitError, OSError) as exc:
        print(f"imager-server init: {exc}", file=sys.stderr)
        return 2
    if getattr(args, "json", False):  # --json: GET /api/setup's object, and what init changed
        print(json.dumps({"changes": changes, **sitesettings.as_json(site)}, indent=2))
    else:
        sys.stdout.write(report(site, data_dir, changes))
    return 0
