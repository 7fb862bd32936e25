"""``imager-server``: run the server, or administer it over its HTTP API.

    imager-server init [--data-dir DIR] [--server-ip IP] [--only SECTION]   (docs/install.md)
    imager-server serve [--bind IP] [--http-port N] [--tftp-port N] [--data-dir DIR] [--boot-dir DIR]
                        [--tls-cert FILE --tls-key FILE [--https-port N]]
    imager-server host add MAC NAME | host list [--search Q] [--sort KEY] [--desc] | host show NAME
    imager-server host set NAME [--name N] [--mac M] [--image I] [--group G] | host rename NAME NEW
    imager-server host remove NAME | host inventory NAME
    imager-server storage group add NAME | storage group list | storage group rename NAME NEW
    imager-server storage group remove NAME | storage rename NAME NEW | storage remove NAME
    imager-server storage add NAME HOST:/EXPORT [--group G] [--master] [--max-clients N] [--rsync-target T]
    imager-server storage set NAME [--max-clients N] [--master] [--rsync-target T] [--rename N] [--export E]
                              [--options O] | storage list | storage gc NODE
    imager-server image add NAME --group G [--type resizable|multipart|alldisks|raw] | image list
    imager-server image show NAME | image versions NAME | image remove NAME | image remove-version NAME VERSION
    imager-server image replicate NAME | replication list [--image NAME]   (an image is not renamed: image rename)
    imager-server image adopt --group G   (the FOG or Clonezilla image directories on G's master become images)
    imager-server task capture|deploy HOST[,HOST…] IMAGE [--disk SEL] [--partition N] [--after reboot|poweroff]
    imager-server task inventory HOST[,HOST…] [--after reboot|poweroff]
    imager-server task list [--active|--state S] [--host H] [--type T] [--image I] [--watch [--interval S]]
    imager-server task show ID | task cancel ID | task cancel --host NAME
    imager-server multicast start IMAGE --hosts pc1,pc2,pc3 [--min-receivers N] [--max-wait S] [--rate 200m]
                            [--interface IF] | multicast list | multicast show|go|cancel ID
    imager-server boot-log [--mac MAC]
    imager-server settings show | settings set unknown-hosts menu|register|local
    imager-server user add NAME [--role admin|technician] [--password-stdin] | user list
    imager-server user passwd NAME [--password-stdin] | user role NAME ROLE | user remove NAME
    imager-server audit list [--actor A] [--limit N] [--offset N]
    imager-server script add NAME FILE [--description D] | script list | script show|delete NAME
    imager-server script attach NAME --image I|--group G [--order N] [--timeout S] [--policy fail|warn]
    imager-server script detach NAME --image I|--group G
    imager-server schedule add NAME TYPE [IMAGE] --hosts H[,H…]|--group G --cron RULE|--at TIME [--no-wake]
                           [--catch-up S] [task options] | schedule list | schedule show|pause|resume|delete ID
    imager-server schedule edit ID [--name N] [--cron R|--at T] [--hosts H|--group G] [--wake|--no-wake] …
    imager-server group add|show|remove NAME | group list | group set NAME [--name N] [--description D]
    imager-server group add-hosts|remove-hosts NAME HOST[,HOST…] | group wake NAME
    imager-server group task NAME TYPE [IMAGE] [--multicast] [--no-wake] [task options]   (busy hosts skipped)
    imager-server host wake HOST[,HOST…] | host wake --group G
    imager-server wake show | wake set [--storage-group G] [--broadcast ADDR] [--interface IF] | wake clear
    imager-server report tasks [--host H] [--image I] [--since DATE] [--until DATE] [--csv] | report storage

Unknown machines (settings set unknown-hosts; serve --unknown-hosts until set): "menu" (default, like
FOG) shows a 3-second iPXE menu whose default boots the local disk, with "Quick registration and
inventory" and "Imager menu"; "register" registers every unknown machine that PXE-boots, without asking;
"local" boots their disk and refuses registration.

Admin commands talk to --server (default $IMAGER_SERVER or http://127.0.0.1:8080) with the admin token the
server wrote at its first start in <data-dir>/admin.token: --token-file FILE, or --data-dir DIR (the
server's), or $IMAGER_ADMIN_TOKEN, or $IMAGER_DATA_DIR; else /var/lib/imager, ./admin.token, ./var/server.
An https --server (serve --tls-cert, docs/tls.md) is trusted with --cacert FILE or $IMAGER_CACERT.
Every admin command prints tables with local times and sizes in KiB/MiB/GiB, or with --json (before or after
the command) the server's answer as JSON.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any, get_args

from server_stub import admincli, cli_format, cli_storage, cli_tasks, cli_users, multicastcli, siteinit
from server_stub import cli_reports
from server_stub import cli_schedules
from server_stub import cli_groups
from server_stub import cli_scripts
from server_stub.bootpolicy import DEFAULT_KERNEL_ARGS, UefiLocalBoot, UnknownHosts
from server_stub.cli_connection import AdminCallFailed, ApiClient, Call, find_admin_token, trust

REPO = Path(__file__).resolve().parent.parent


# --- serve -------------------------------------------------------------------

async def _serve(args: argparse.Namespace) -> None:
    from server_stub.serve import serve  # aiohttp and the store are loaded for serve only, not admin commands

    await serve(args)


# --- admin -------------------------------------------------------------------
# Each subject's commands (their arguments and what they do) are in its module; cli_format prints them.
JSON_HELP = "print the server's answer as JSON (machine-readable), not a table"


def _admin(args: argparse.Namespace, call: Call) -> Any:
    for module in (admincli, cli_storage, cli_tasks, cli_reports, cli_groups, cli_scripts):
        done = module.run(args, call)
        if done is not NotImplemented:
            return done
    if args.command == "multicast":
        return multicastcli.run(args, call)
    if args.command == "schedule":
        return cli_schedules.run(args, call)
    if args.command in ("user", "audit"):
        try:
            return cli_users.run(args, call)
        except cli_users.PasswordNotGiven as exc:
            raise AdminCallFailed(str(exc)) from exc
    raise AdminCallFailed(f"unknown command {args.command}")


def _json_after_every_command(parser: argparse.ArgumentParser) -> None:
    """``--json`` after any admin command too (``host list --json``); SUPPRESS keeps one given before it."""
    commands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for action in commands:
        for name, command in action.choices.items():
            if name != "serve":
                _json_after_every_command(command)
    if not commands and "--json" not in parser._option_string_actions:
        parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=JSON_HELP)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imager-server", description="imager's boot and task server",
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--server", default=os.environ.get("IMAGER_SERVER", "http://127.0.0.1:8080"),
                        help="server URL for admin commands (default $IMAGER_SERVER, else http://127.0.0.1:8080)")
    parser.add_argument("--token-file", default=None,
                        help="the admin token for admin commands (default: <data-dir>/admin.token, see below)")
    parser.add_argument("--data-dir", dest="admin_data_dir", default=None,
                        help="the server's data directory (its serve --data-dir), where admin commands find "
                             "admin.token (default: $IMAGER_DATA_DIR, else /var/lib/imager, ., ./var/server)")
    parser.add_argument("--cacert", default=os.environ.get("IMAGER_CACERT"),
                        help="certificate(s) to trust for an https --server, e.g. the server's own "
                             "--tls-cert (default: $IMAGER_CACERT, else the system's CAs)")
    parser.add_argument("--json", action="store_true", help=JSON_HELP)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run HTTP + TFTP")
    p.add_argument("--bind", default="0.0.0.0")
    p.add_argument("--http-port", type=int, default=8080)
    p.add_argument("--tftp-port", type=int, default=69)
    p.add_argument("--data-dir", default=os.environ.get("IMAGER_DATA", str(REPO / "var" / "server")))
    p.add_argument("--boot-dir", default=os.environ.get("IMAGER_BOOT_DIR", str(REPO / "build" / "boot")),
                   help="where vmlinuz and initrd.img are (default $IMAGER_BOOT_DIR, else build/boot of the checkout)")
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
    p.add_argument("--uefi-local-boot", default="grub", choices=get_args(UefiLocalBoot),
                   help="how an iPXE client on UEFI boots its local disk: grub (default: chain Debian's signed "
                        "GRUB, which chainloads the disk's ESP loader, as FOG's rEFInd/GRUB exit types do) or exit "
                        "(back to the firmware's next boot entry; docs/secure-boot.md)")
    p.add_argument("--register-prefix", default="mac",
                   help="quick registration names a host PREFIX + MAC digits, e.g. mac525400123456")
    p.add_argument("--register-rate", type=int, default=60,
                   help="registrations accepted per minute, all machines together (default 60)")

    admincli.add_parsers(sub)
    cli_storage.add_parsers(sub)
    cli_tasks.add_parsers(sub)
    multicastcli.add_parser(sub)
    cli_users.add_parsers(sub)
    cli_reports.add_parsers(sub)
    cli_schedules.add_parsers(sub)
    cli_groups.add_parsers(sub)  # after admincli's: host wake joins host's commands
    cli_scripts.add_parsers(sub)
    siteinit.add_parser(sub)
    _json_after_every_command(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command in ("serve", "init") and args.admin_data_dir:  # the admin commands' option: these have their own
        parser.error(f"the server's data directory goes after the command: imager-server {args.command} --data-dir DIR")
    if args.command == "init":
        return siteinit.run(args)
    if args.command == "serve":
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        asyncio.run(_serve(args))
        return 0
    cli_tasks.check(args, parser)
    cli_groups.check(args, parser)
    try:
        call = ApiClient(args.server, find_admin_token(args.token_file, args.admin_data_dir), trust(args.cacert))
        result = _admin(args, call)
        if result is not None:  # None: it printed as it went (task list --watch)
            print(cli_format.output(result, args.json), flush=True)
    except AdminCallFailed as exc:
        print(f"imager-server: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader left (| head): stop quietly, and let the exit's flush go nowhere
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
