"""``imager-server serve``: check the settings, write what start-up writes (server_stub/startup.py), then run
HTTP (bounded by server_stub/httpguard.py) and TFTP until SIGTERM or SIGINT."""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path
from typing import Awaitable

from aiohttp import web

from server_stub import httpguard, startup, tftp, tls, webapp
from server_stub.config import ServerConfig, TlsConfig, http_url
from server_stub.errors import Invalid
from server_stub.store import Store
from server_stub.store.validate import check_name

WILDCARDS = ("0.0.0.0", "::")


def server_config(args: argparse.Namespace, data_dir: Path, admin_token: str,
                  tls_config: TlsConfig | None) -> ServerConfig:
    public_url = args.public_url or (http_url(args.bind, args.http_port) if args.bind not in WILDCARDS else "")
    return ServerConfig(admin_token=admin_token, boot_dir=args.boot_dir, data_dir=str(data_dir), bind=args.bind,
                        http_port=args.http_port, public_url=public_url, kernel_args=args.kernel_args,
                        unknown_hosts=args.unknown_hosts, menu_timeout=args.menu_timeout,
                        register_prefix=args.register_prefix, register_rate=args.register_rate, tls=tls_config,
                        uefi_local_boot=getattr(args, "uefi_local_boot", "grub"))


BOOT_FILES = ("vmlinuz", "initrd.img")


def warn_missing_boot_files(boot_dir: Path) -> None:
    """Said once at start, not discovered by the first machine that has a task."""
    missing = [name for name in BOOT_FILES if not (boot_dir / name).is_file()]
    if missing:
        logging.warning("imager-server: %s has no %s: machines with a task cannot boot the imager until it does "
                        "(make initramfs, or --boot-dir)", boot_dir, " or ".join(missing))


async def listen(what: str, bind: str, port: int, starting: Awaitable[None]) -> None:
    """A port that cannot be had (in use, privileged) stops the server with one line, not a traceback."""
    try:
        await starting
    except OSError as exc:
        raise SystemExit(f"imager-server: cannot listen for {what} on {bind} port {port}: "
                         f"{exc.strerror or exc} (another server running? a port below 1024 needs root)") from None


async def serve(args: argparse.Namespace) -> None:
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
    startup.install_boot_binaries(tftp_root)
    store = Store(str(data_dir / "imager.sqlite3"))
    config = server_config(args, data_dir, startup.ensure_admin_token(data_dir / "admin.token"), tls_config)
    app = webapp.make_app(store, config)
    app.middlewares.append(httpguard.body_deadline())
    runner = httpguard.GuardedRunner(app, max_connections=httpguard.connection_cap(),
                                     access_log=logging.getLogger("http.access"))
    warn_missing_boot_files(Path(args.boot_dir))
    await runner.setup()
    # "::" listens on both families (asyncio would make a "::" socket IPv6-only); any other address as given.
    http_host = None if args.bind == "::" else args.bind
    tftp_server = tftp.TftpServer(str(tftp_root), app[webapp.BOOT].tftp_file)
    try:
        await listen("HTTP", args.bind, args.http_port,
                     web.TCPSite(runner, http_host, args.http_port, backlog=1024).start())
        if tls_config:
            await listen("HTTPS", args.bind, args.https_port,
                         web.TCPSite(runner, http_host, args.https_port, ssl_context=ssl_context, backlog=1024).start())
            logging.info("imager-server: HTTPS (the API) on %s port %d, certificate %s", args.bind, args.https_port,
                         tls_config.fingerprint)
        await listen("TFTP", args.bind, args.tftp_port, tftp_server.start(args.bind, args.tftp_port))
    except SystemExit:
        tftp_server.close()
        await runner.cleanup()
        store.close()
        raise
    logging.info("imager-server: HTTP on %s port %d, TFTP on %s port %d, data in %s", args.bind, args.http_port,
                 args.bind, args.tftp_port, data_dir)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    tftp_server.close()
    await runner.cleanup()
    store.close()
