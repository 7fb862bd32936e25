"""``imager-server``: run the server, or administer it over its HTTP API.

    imager-server serve [--bind IP] [--http-port N] [--tftp-port N] [--data-dir DIR] [--boot-dir DIR]
                        [--tls-cert FILE --tls-key FILE [--https-port N]]
    imager-server host add MAC NAME | host list [--search Q] [--sort KEY] [--desc] | host show NAME
    imager-server host set NAME [--name N] [--mac M] [--image I] [--group G] | host remove NAME
    imager-server host inventory NAME
    imager-server storage group add NAME | storage group list | storage group rename NAME NEW
    imager-server storage group remove NAME | storage remove NAME
    imager-server storage add NAME HOST:/EXPORT [--group G] [--master] [--max-clients N] [--rsync-target T]
    imager-server storage set NAME [--max-clients N] [--master] [--rsync-target T] [--rename N] [--export E]
                              [--options O] | storage list
    imager-server image add NAME --group G [--type resizable|multipart|alldisks|raw] | image list
    imager-server image show NAME | image versions NAME | image remove NAME | image remove-version NAME VERSION
    imager-server image replicate NAME | replication list [--image NAME]
    imager-server task capture|deploy HOST[,HOST…] IMAGE [--disk SEL] [--partition N] [--after reboot|poweroff]
    imager-server task inventory HOST[,HOST…] [--after reboot|poweroff]
    imager-server task list [--active|--state S] [--host H] [--type T] [--image I] | task show ID | task cancel ID
    imager-server multicast start IMAGE --hosts pc1,pc2,pc3 [--min-receivers N] [--max-wait S] [--rate 200m]
                            [--interface IF] | multicast list | multicast show|go|cancel ID
    imager-server boot-log [--mac MAC]
    imager-server settings show | settings set unknown-hosts menu|register|local
    imager-server user add NAME [--role admin|technician] [--password-stdin] | user list
    imager-server user passwd NAME [--password-stdin] | user role NAME ROLE | user remove NAME
    imager-server audit list [--actor A] [--limit N] [--offset N]

Unknown machines (settings set unknown-hosts; serve --unknown-hosts until set): "menu" (default, like
FOG) shows a 3-second iPXE menu whose default boots the local disk, with "Quick registration and
inventory" and "Imager menu"; "register" registers every unknown machine that PXE-boots, without asking;
"local" boots their disk and refuses registration.

Admin commands talk to --server (default $IMAGER_SERVER or http://127.0.0.1:8080) with the admin
credential the server created at first start in <data-dir>/admin.token (--token-file, $IMAGER_ADMIN_TOKEN).
An https --server (serve --tls-cert, docs/tls.md) is trusted with --cacert FILE or $IMAGER_CACERT.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
import shutil
import datetime
import getpass
import signal
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, get_args

from contract.vocabulary import AFTER_VALUES, IMAGE_TYPES
from server_stub.bootpolicy import DEFAULT_KERNEL_ARGS, UnknownHosts
from server_stub.config import ServerConfig, TlsConfig
from server_stub.errors import Invalid

REPO = Path(__file__).resolve().parent.parent
IPXE_BINARIES = ("undionly.kpxe", "ipxe.efi", "snponly.efi", "ipxe.pxe")
# For syslinux clients (Debian's pxelinux and syslinux-common), when installed.
SYSLINUX_BINARIES = {"pxelinux.0": "/usr/lib/PXELINUX/pxelinux.0",
                     "ldlinux.c32": "/usr/lib/syslinux/modules/bios/ldlinux.c32"}


# --- serve -------------------------------------------------------------------

def ensure_admin_token(path: Path) -> str:
    """The admin credential: created once, readable by root only; the CLI reads it from here."""
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
    return path.read_text().strip()


def _server_config(args: argparse.Namespace, data_dir: Path, admin_token: str,
                   tls_config: TlsConfig | None) -> ServerConfig:
    public_url = args.public_url or (f"http://{args.bind}:{args.http_port}" if args.bind != "0.0.0.0" else "")
    return ServerConfig(admin_token=admin_token, boot_dir=args.boot_dir, data_dir=str(data_dir), bind=args.bind,
                        http_port=args.http_port, public_url=public_url, kernel_args=args.kernel_args,
                        unknown_hosts=args.unknown_hosts, menu_timeout=args.menu_timeout,
                        register_prefix=args.register_prefix, register_rate=args.register_rate, tls=tls_config)


async def _serve(args: argparse.Namespace) -> None:
    from aiohttp import web

    from server_stub import tftp, tls, webapp
    from server_stub.store import Store
    from server_stub.store.validate import check_name

    # Bad settings stop the server here, not each client later.
    try:
        check_name(args.register_prefix + "525400123456", "--register-prefix + MAC")
    except Invalid as exc:
        raise SystemExit(f"imager-server: {exc}") from None
    if args.menu_timeout < 0 or args.register_rate < 1:
        raise SystemExit("imager-server: --menu-timeout must be ≥ 0 and --register-rate ≥ 1")
    ssl_context, tls_config = None, None
    if args.tls_cert or args.tls_key:
        if not (args.tls_cert and args.tls_key):
            raise SystemExit("imager-server: --tls-cert and --tls-key go together")
        try:
            ssl_context, fingerprint = tls.server_context(args.tls_cert, args.tls_key)
        except tls.TlsSetupError as exc:
            raise SystemExit(f"imager-server: {exc}") from None
        tls_config = TlsConfig(https_port=args.https_port, fingerprint=fingerprint)
    data_dir = Path(args.data_dir)
    tftp_root = data_dir / "tftp"
    tftp_root.mkdir(parents=True, exist_ok=True)
    binaries: dict[str, Path | str] = {**{name: Path("/usr/lib/ipxe") / name for name in IPXE_BINARIES},
                                       **SYSLINUX_BINARIES}
    for name, source in binaries.items():  # Debian's files, served as they are over TFTP
        if Path(source).exists() and not (tftp_root / name).exists():
            shutil.copy(source, tftp_root / name)
    store = Store(str(data_dir / "imager.sqlite3"))
    config = _server_config(args, data_dir, ensure_admin_token(data_dir / "admin.token"), tls_config)
    app = webapp.make_app(store, config)
    runner = web.AppRunner(app, access_log=logging.getLogger("http.access"))
    await runner.setup()
    await web.TCPSite(runner, args.bind, args.http_port).start()
    if tls_config:
        await web.TCPSite(runner, args.bind, args.https_port, ssl_context=ssl_context).start()
        logging.info("imager-server: HTTPS (the API) on %s:%d, certificate %s", args.bind, args.https_port,
                     tls_config.fingerprint)
    tftp_server = tftp.TftpServer(str(tftp_root), app[webapp.BOOT].tftp_file)
    await tftp_server.start(args.bind, args.tftp_port)
    logging.info("imager-server: HTTP on %s:%d, TFTP on %s:%d, data in %s", args.bind, args.http_port,
                 args.bind, args.tftp_port, data_dir)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    tftp_server.close()
    await runner.cleanup()
    store.close()


# --- admin -------------------------------------------------------------------

class AdminCallFailed(Exception):
    pass


_ADMIN_TOKEN = ""
_SSL_CONTEXT: ssl.SSLContext | None = None  # --cacert: whom to trust for an https --server


def _refusal(exc: urllib.error.HTTPError) -> str:
    """The server's message in its error shape {"error": message, "code": code}."""
    try:
        answer = json.load(exc)
    except ValueError:
        return str(exc.reason)
    if not isinstance(answer, dict) or not isinstance(answer.get("error"), str):
        return str(exc.reason)
    return answer["error"] + (" (a server bug: see the server's log)" if answer.get("code") == "internal" else "")


def _call(server: str, method: str, path: str, body: dict | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{server.rstrip('/')}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {_ADMIN_TOKEN}"})
    try:
        with urllib.request.urlopen(request, timeout=30, context=_SSL_CONTEXT) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        raise AdminCallFailed(f"HTTP {exc.code}: {_refusal(exc)}") from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ssl.SSLError):
            raise AdminCallFailed(f"the server at {server} is not trusted: {exc.reason} (give --cacert FILE)") from exc
        raise AdminCallFailed(f"cannot reach the server at {server}: {exc.reason}") from exc


def _table(rows: list[dict], columns: list[str]) -> str:
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def _task_rows(tasks: list[dict]) -> list[dict]:
    for t in tasks:
        progress = t.get("progress") or {}
        t["progress_"] = f"{progress.get('percent', 0)}% {progress.get('stage', '')}".strip() if progress else ""
        t["error_"] = (t.get("error") or {}).get("message", "")
    return tasks


def _host_text(host: dict) -> str:
    """A host record and its latest inventory, for a technician."""
    lines = [f"{k + ':':<12}{host.get(k) if host.get(k) is not None else '-'}"
             for k in ("name", "mac", "registered", "image", "group_name")]
    found = host.get("inventory")
    if not found:
        return "\n".join(lines + ["inventory:  none yet (imager-server task inventory " + host["name"] + ")"])
    inv = found["data"]
    cpu, dmi = inv.get("cpu", {}), inv.get("dmi", {})
    when = datetime.datetime.fromtimestamp(found["collected"]).isoformat(" ", "seconds")
    lines += [f"inventory:  {when}" + (f" (task {found['task_id']})" if found.get("task_id") else " (registration)"),
              f"  system:   {dmi.get('sys_vendor', '')} {dmi.get('product_name', '')}  serial "
              f"{dmi.get('product_serial', '-')}  uuid {dmi.get('product_uuid', '-')}",
              f"  bios:     {dmi.get('bios_vendor', '')} {dmi.get('bios_version', '')} {dmi.get('bios_date', '')}",
              f"  board:    {dmi.get('board_vendor', '')} {dmi.get('board_name', '')}",
              f"  cpu:      {cpu.get('model', '?')} ({cpu.get('cores', '?')} cores, {cpu.get('threads', '?')} threads)",
              f"  memory:   {inv.get('memory_bytes', 0) / 2**30:.1f} GiB"]
    for d in inv.get("disks", []):
        kind = "ssd" if d.get("rotational") is False else "hdd" if d.get("rotational") else "?"
        lines.append(f"  disk:     {d.get('path')}  {d.get('size_bytes', 0) / 1e9:.1f} GB  {d.get('model', '')}  "
                     f"serial {d.get('serial') or '-'}  wwn {d.get('wwn') or '-'}  {kind}"
                     + ("  removable" if d.get("removable") else ""))
    for n in inv.get("nics", []):
        speed = f"{n['speed_mbps']} Mb/s" if n.get("speed_mbps") is not None else "no link"
        lines.append(f"  nic:      {n.get('name')}  {n.get('mac')}  {speed}  {n.get('driver', '')}")
    return "\n".join(lines)


def _admin(args: argparse.Namespace) -> object:
    s = args.server
    from server_stub import admincli
    done = admincli.run(args, s, _call, _table)
    if done is not NotImplemented:
        return done
    if args.command in ("user", "audit"):
        from server_stub import cli_users
        try:
            return cli_users.run(args, s, _call, _table)
        except cli_users.PasswordNotGiven as exc:
            raise AdminCallFailed(str(exc)) from exc
    match args.command, getattr(args, "action", None):
        case "host", "add":
            return _call(s, "POST", "/api/hosts", {"mac": args.mac, "name": args.name})
        case "host", "show":
            return _host_text(_call(s, "GET", f"/api/hosts/{urllib.parse.quote(args.name, safe='')}"))
        case "host", "inventory":
            return _call(s, "GET", f"/api/hosts/{urllib.parse.quote(args.name, safe='')}/inventory")
        case "storage", "group":
            if args.group_action == "add":
                return _call(s, "POST", "/api/storage-groups", {"name": args.name})
            return _table(_call(s, "GET", "/api/storage-groups"), ["id", "name", "master", "nodes"])
        case "storage", "add":
            return _call(s, "POST", "/api/storage", {
                "name": args.name, "export": args.export, "options": args.options, "group": args.group,
                "master": args.master, "max_clients": args.max_clients, "rsync_target": args.rsync_target})
        case "storage", "set":
            return _call(s, "POST", f"/api/storage/{urllib.parse.quote(args.name, safe='')}",
                         {"max_clients": args.max_clients, "master": args.master, "rsync_target": args.rsync_target,
                          "name": args.rename, "export": args.export, "options": args.options})
        case "storage", "list":
            nodes = _call(s, "GET", "/api/storage")
            for n in nodes:
                n["master"] = "yes" if n.get("master") else ""
                n["clients"] = f"{n.get('running', 0)}/{n.get('max_clients')}"
            return _table(nodes, ["name", "group_name", "master", "export", "options", "clients", "rsync_target"])
        case "image", "add":
            return _call(s, "POST", "/api/images", {"name": args.name, "group": args.group, "storage": args.storage,
                                                    "description": args.description, "type": args.type})
        case "image", "list":
            images = _call(s, "GET", "/api/images")
            for i in images:
                i["replicas_"] = ",".join(i.get("replicas") or [])
            return _table(images, ["id", "name", "type", "group_name", "storage", "replicas_", "stored_bytes",
                                   "captured"])
        case "image", "replicate":
            return _call(s, "POST", f"/api/images/{urllib.parse.quote(args.name, safe='')}/replicate")
        case "replication", _:
            query = f"?image={urllib.parse.quote(args.image, safe='')}" if args.image else ""
            jobs = _call(s, "GET", f"/api/replication{query}")
            for j in jobs:
                for key in ("created", "started", "finished"):
                    if j.get(key):
                        j[key] = datetime.datetime.fromtimestamp(j[key]).isoformat(" ", "seconds")
            return _table(jobs, ["id", "image", "source", "node", "state", "version", "bytes", "started",
                                 "finished", "error"])
        case "task", ("capture" | "deploy") as kind:
            body = {"type": kind, "image": args.image, "disk": args.disk, "after": args.after,
                    "partition": getattr(args, "partition", None)}
            hosts = [h for h in args.host.split(",") if h]
            body.update({"hosts": hosts} if len(hosts) > 1 else {"host": args.host})
            return _call(s, "POST", "/api/tasks", body)
        case "task", "inventory":
            hosts = [h for h in args.host.split(",") if h]
            body = {"type": "inventory", "after": args.after}
            body.update({"hosts": hosts} if len(hosts) > 1 else {"host": args.host})
            return _call(s, "POST", "/api/tasks", body)
        case "task", ("wipe" | "disktest" | "debug") as kind:  # the service ops (issue 5)
            hosts = [h for h in args.host.split(",") if h]
            body = {"type": kind, "after": args.after, "disk": getattr(args, "disk", None)}
            if kind == "wipe":
                body["options"] = {"mode": args.mode}
            body.update({"hosts": hosts} if len(hosts) > 1 else {"host": args.host})
            return _call(s, "POST", "/api/tasks", body)
        case "technician", "password":
            if args.remove:
                return _call(s, "POST", "/api/technician-password", {"password": None})
            password = sys.stdin.readline().rstrip("\n") if not sys.stdin.isatty() else getpass.getpass(
                "technician password (typed at the imager menu): ")
            return _call(s, "POST", "/api/technician-password", {"password": password})
        case "task", "list":
            tasks = admincli.list_tasks(args, s, _call)
            return _table(_task_rows(tasks), ["id", "host", "type", "image", "storage", "state", "progress_",
                                              "error_"])
        case "task", "show":
            return _call(s, "GET", f"/api/tasks/{args.id}")
        case "task", "cancel":
            return _call(s, "POST", f"/api/tasks/{args.id}/cancel")
        case "multicast", _:
            from server_stub import multicastcli
            return multicastcli.run(args, s, _call, _table)
        case "boot-log", _:
            query = f"?mac={args.mac}" if args.mac else ""
            return _table(_call(s, "GET", f"/api/boot-log{query}"), ["time", "mac", "decision", "task_id"])
    raise AdminCallFailed(f"unknown command {args.command}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imager-server", description="imager's boot and task server",
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--server", default=os.environ.get("IMAGER_SERVER", "http://127.0.0.1:8080"),
                        help="server URL for admin commands")
    default_data = os.environ.get("IMAGER_DATA", str(REPO / "var" / "server"))
    parser.add_argument("--token-file", default=str(Path(default_data) / "admin.token"),
                        help="admin credential for admin commands (default: the server's data dir; "
                             "or set IMAGER_ADMIN_TOKEN)")
    parser.add_argument("--cacert", default=os.environ.get("IMAGER_CACERT"),
                        help="certificate(s) to trust for an https --server, e.g. the server's own "
                             "--tls-cert (default: $IMAGER_CACERT, else the system's CAs)")
    sub = parser.add_subparsers(dest="command", required=True)
    from server_stub import admincli

    p = sub.add_parser("serve", help="run HTTP + TFTP")
    p.add_argument("--bind", default="0.0.0.0")
    p.add_argument("--http-port", type=int, default=8080)
    p.add_argument("--tftp-port", type=int, default=69)
    p.add_argument("--data-dir", default=os.environ.get("IMAGER_DATA", str(REPO / "var" / "server")))
    p.add_argument("--boot-dir", default=str(REPO / "build" / "boot"), help="where vmlinuz and initrd.img are")
    p.add_argument("--public-url", default="", help="URL clients use to reach this server (default: as asked)")
    p.add_argument("--tls-cert", help="PEM certificate (chain): serve the API over HTTPS too (docs/tls.md)")
    p.add_argument("--tls-key", help="PEM private key of --tls-cert")
    p.add_argument("--https-port", type=int, default=8443, help="HTTPS port with --tls-cert (default 8443)")
    p.add_argument("--kernel-args", default=DEFAULT_KERNEL_ARGS,
                   help="extra kernel command-line arguments for the imaging environment")
    p.add_argument("--unknown-hosts", default="menu", choices=get_args(UnknownHosts),
                   help="what a MAC the server does not know boots: menu (default, like FOG: local disk after "
                        "--menu-timeout s, or registration, or the imager menu), register (quick registration "
                        "without asking), local (the local disk; registration refused); the value until "
                        "'settings set unknown-hosts' stores one")
    p.add_argument("--menu-timeout", type=int, default=3, help="seconds the unknown-host menu waits (default 3)")
    p.add_argument("--register-prefix", default="mac",
                   help="quick registration names a host PREFIX + MAC digits, e.g. mac525400123456")
    p.add_argument("--register-rate", type=int, default=60,
                   help="registrations accepted per minute, all machines together (default 60)")

    host = sub.add_parser("host").add_subparsers(dest="action", required=True)
    p = host.add_parser("add")
    p.add_argument("mac")
    p.add_argument("name")
    admincli.add_host_list_options(host.add_parser("list"))
    admincli.add_host_actions(host)
    host.add_parser("show", help="a host and its latest inventory").add_argument("name", help="name or MAC")
    host.add_parser("inventory", help="the latest inventory as JSON").add_argument("name", help="name or MAC")

    storage = sub.add_parser("storage").add_subparsers(dest="action", required=True)
    group_actions = storage.add_parser("group", help="storage groups: nodes holding the same images, one master")\
        .add_subparsers(dest="group_action", required=True)
    group_actions.add_parser("add").add_argument("name")
    group_actions.add_parser("list")
    admincli.add_group_actions(group_actions)
    rsync_help = ("where the server's rsync reaches this node's export: a directory on this server (required for "
                  "a master whose images replicate), rsync://host/module/path (rsync daemon) or user@host:/path (ssh)")
    p = storage.add_parser("add", help="an NFS node in a group (default: group 'default', created on first use); "
                                       "the group's first node is its master")
    p.add_argument("name")
    p.add_argument("export", help="HOST:/PATH of the NFS export")
    p.add_argument("--options", default="vers=4.1")
    p.add_argument("--group", default=None, help="storage group (default: 'default')")
    p.add_argument("--master", action="store_true", help="captures go to this node from now on")
    p.add_argument("--max-clients", type=int, default=None, help="simultaneous clients (default 10)")
    p.add_argument("--rsync-target", default=None, help=rsync_help)
    p = storage.add_parser("set", help="change a node's limit of simultaneous clients, make it master, set its "
                                       "rsync target")
    p.add_argument("name")
    p.add_argument("--max-clients", type=int, default=None)
    p.add_argument("--master", action="store_true")
    p.add_argument("--rsync-target", default=None, help=rsync_help)
    storage.add_parser("list")
    admincli.add_storage_actions(storage, p)

    image = sub.add_parser("image").add_subparsers(dest="action", required=True)
    p = image.add_parser("add")
    p.add_argument("name")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--group", help="the storage group holding the image")
    where.add_argument("--storage", help="older form: a storage node, meaning its group")
    p.add_argument("--description", default="")
    p.add_argument("--type", default="resizable", choices=IMAGE_TYPES,
                   help="resizable: shrink for capture, fit any disk the data fits (FOG type 1); "
                        "multipart: exact layout (FOG type 2); alldisks: every fixed disk, exact layouts (FOG type 3); "
                        "raw: every byte of the disk (FOG type 4)")
    image.add_parser("list")
    admincli.add_image_actions(image)
    image.add_parser("replicate", help="copy the image from its home node to the group's other nodes "
                                       "(also done after every capture)").add_argument("name")

    p = sub.add_parser("replication", help="replication jobs: state, bytes, error")
    p.add_argument("action", choices=("list",))
    p.add_argument("--image", default=None)

    task = sub.add_parser("task").add_subparsers(dest="action", required=True)
    for kind in ("capture", "deploy"):
        p = task.add_parser(kind)
        p.add_argument("host", help="MAC or name; several as pc1,pc2,pc3 (all tasks or none)")
        p.add_argument("image")
        p.add_argument("--disk", default=None, help="/dev/…, serial=…, wwn=…, model=… or size=… (±1%%); "
                       "default: the machine's only fixed, non-USB disk")
        p.add_argument("--after", default="reboot", choices=AFTER_VALUES)
        if kind == "deploy":
            p.add_argument("--partition", type=int, default=None,
                           help="restore only this partition, into the disk's existing table")
    p = task.add_parser("inventory", help="boot the imager, collect CPU, RAM, disks, NICs and DMI, store them")
    p.add_argument("host", help="MAC or name; several as pc1,pc2,pc3 (all tasks or none)")
    p.add_argument("--after", default="reboot", choices=AFTER_VALUES)
    for kind, text in (("wipe", "erase a disk: fast (signatures, first/last MiB), normal (one zero pass), full "
                                "(NVMe sanitize/format when the drive can, else random + zero passes)"),
                       ("disktest", "SMART health and a read-only surface scan; the result goes on the task"),
                       ("debug", "a root shell on the machine's console with the imaging tools; exit reboots")):
        p = task.add_parser(kind, help=text)
        p.add_argument("host", help="MAC or name; several as pc1,pc2,pc3 (all tasks or none)")
        if kind != "debug":
            p.add_argument("--disk", default=None, help="/dev/…, serial=…, wwn=…, model=… or size=…; "
                           "default: the machine's only fixed, non-USB disk")
        if kind == "wipe":
            p.add_argument("--mode", required=True, choices=("fast", "normal", "full"))
        p.add_argument("--after", default="reboot", choices=AFTER_VALUES)
    admincli.add_task_list_options(task.add_parser("list", help="tasks, filtered"))
    for action in ("show", "cancel"):
        task.add_parser(action).add_argument("id", type=int)

    from server_stub import multicastcli
    multicastcli.add_parser(sub)
    admincli.add_settings_parser(sub)
    from server_stub import cli_users
    cli_users.add_parsers(sub)

    tech = sub.add_parser("technician", help="the password technicians type at the imager menu")
    p = tech.add_subparsers(dest="action", required=True).add_parser(
        "password", help="set it (read from stdin, or asked on the terminal); the admin token also opens the menu")
    p.add_argument("--remove", action="store_true", help="remove it: only the admin token opens the menu")

    p = sub.add_parser("boot-log")
    p.add_argument("--mac")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        asyncio.run(_serve(args))
        return 0
    global _ADMIN_TOKEN, _SSL_CONTEXT
    try:
        _SSL_CONTEXT = ssl.create_default_context(cafile=args.cacert) if args.cacert else None
    except (OSError, ssl.SSLError) as exc:
        print(f"imager-server: cannot use --cacert {args.cacert}: {exc}", file=sys.stderr)
        return 1
    try:
        _ADMIN_TOKEN = os.environ.get("IMAGER_ADMIN_TOKEN") or Path(args.token_file).read_text().strip()
    except OSError as exc:
        print(f"imager-server: cannot read the admin token: {exc} (set --token-file or IMAGER_ADMIN_TOKEN)",
              file=sys.stderr)
        return 1
    try:
        result = _admin(args)
    except AdminCallFailed as exc:
        print(f"imager-server: {exc}", file=sys.stderr)
        return 1
    print(result if isinstance(result, str) else json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
