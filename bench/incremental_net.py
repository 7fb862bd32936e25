"""The network of bench/incremental.py: two namespaces of its own joined by a shaped veth, and the store's servers.

Link: namespaces ``imgi-s-<tag>`` (server, 10.98.0.1) and ``imgi-c-<tag>`` (client, 10.98.0.2), unique per run,
a veth pair shaped with tbf at both ends (this kernel has no netem), the client end's byte counters.
Servers, in the server's namespace: aiohttp's static files over the store (what any web server does: Range, HEAD,
symlinks followed) with the imager server's chunk batch answer, nginx (the plain web server) and nfs-ganesha exporting it (NFSv4, userspace: no nfsd here); in the client's namespace, the
export mounted by bench/nfsfuse.c (FUSE over libnfs: no NFS client in this kernel). Processes are stopped by
their PID, the mount unmounted and the namespaces removed by ``close``, on every path.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

SERVER_IP, CLIENT_IP = "10.98.0.1", "10.98.0.2"
HTTP_PORT = 8098
WEB_PORT = 8099   # nginx: the plain web server an admin would put in front of a node
BENCH = Path(__file__).resolve().parent
NFSFUSE = BENCH.parent / "build" / "nfsfuse"   # bench/nfsfuse.c, built by make (test, bench-incremental)

# Static files (Range, HEAD) as any web server serves them, and the imager server's chunk batch answer
# (server_stub/chunkbatch.py's send_chunks, without the task lookup): POST /batch/<format> {"chunks": [...]}.
STATIC_SERVER = """
import os, sys
sys.path.insert(0, sys.argv[4])
from aiohttp import web
from server_stub.chunkbatch import names_of, send_chunks
from server_stub.http import read_json

async def batch(request):
    root = os.path.join(sys.argv[1], request.match_info["fmt"])
    return await send_chunks(request, root, names_of(await read_json(request)))

app = web.Application()
app.router.add_post("/batch/{fmt}", batch)
app.router.add_static("/", sys.argv[1], follow_symlinks=True)
web.run_app(app, host=sys.argv[2], port=int(sys.argv[3]), print=None, access_log=None)
"""


def _sh(*argv: str, check: bool = True) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and done.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()[-400:]}")
    return done.stdout


class Link:
    """Two network namespaces joined by one veth pair; ``shape`` sets its rate at both ends."""

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.server_ns, self.client_ns = f"imgi-s-{tag}", f"imgi-c-{tag}"
        self.server_dev, self.client_dev = f"is-{tag}", f"ic-{tag}"
        self.made: list[str] = []
        for ns in (self.server_ns, self.client_ns):
            _sh("ip", "netns", "add", ns)
            self.made.append(ns)
        _sh("ip", "link", "add", self.server_dev, "netns", self.server_ns, "type", "veth",
            "peer", "name", self.client_dev, "netns", self.client_ns)
        for ns, dev, addr in ((self.server_ns, self.server_dev, SERVER_IP), (self.client_ns, self.client_dev, CLIENT_IP)):
            _sh("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            _sh("ip", "-n", ns, "link", "set", dev, "up")
            _sh("ip", "-n", ns, "link", "set", "lo", "up")

    def shape(self, mbit: int) -> None:
        # burst: ~1 ms at the rate and at least 32 KiB, as bench/http_fetch.py
        for ns, dev in ((self.server_ns, self.server_dev), (self.client_ns, self.client_dev)):
            _sh("tc", "-n", ns, "qdisc", "replace", "dev", dev, "root", "tbf", "rate", f"{mbit}mbit",
                "burst", f"{max(32, mbit // 8)}kb", "latency", "50ms")

    def in_ns(self, ns: str, argv: list[str]) -> list[str]:
        """argv in the namespace's network only: it shares our mounts (the FUSE mount, the loop devices)."""
        return ["nsenter", f"--net=/run/netns/{ns}", *argv]

    def in_client(self, argv: list[str]) -> list[str]:
        return self.in_ns(self.client_ns, argv)

    def client_bytes(self) -> int:
        """Bytes the client's end received and sent so far."""
        out = _sh("ip", "-n", self.client_ns, "-j", "-s", "link", "show", "dev", self.client_dev)
        stats = json.loads(out)[0]["stats64"]
        return int(stats["rx"]["bytes"]) + int(stats["tx"]["bytes"])

    def close(self) -> None:
        for ns in self.made:
            _sh("ip", "netns", "del", ns, check=False)


class Servers:
    """The store served over HTTP and NFS from the server's namespace, and NFS-mounted in the client's."""

    def __init__(self, link: Link, store: Path, nfs_mount: Path, lease_seconds: int = 60) -> None:
        self.link, self.store, self.nfs_mount = link, store, nfs_mount
        self.lease_seconds = lease_seconds  # ganesha's NFSv4 lease (its default 60 s; tests shorten it)
        self.http_base = f"http://{SERVER_IP}:{HTTP_PORT}/"
        self.web_base = self.http_base  # nginx's when start_web finds it
        self.procs: list[subprocess.Popen[bytes]] = []
        self.mounted = False
        self.state = store.parent / "ganesha"

    def _spawn(self, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
        with open(log, "ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc

    def _wait_port(self, port: int, what: str, proc: subprocess.Popen[bytes], log: Path, seconds: float = 30) -> None:
        """Until the server's port answers, asked from the client's namespace (the path the deploys take)."""
        probe = f"import socket; socket.create_connection(('{SERVER_IP}', {port}), 1).close()"
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited ({proc.returncode}): {log.read_text(errors='replace')[-600:]}")
            if subprocess.run(self.link.in_client([sys.executable, "-c", probe]), capture_output=True).returncode == 0:
                return
            time.sleep(0.3)
        raise RuntimeError(f"{what} did not answer on {SERVER_IP}:{port} in {seconds:.0f} s")

    def start_http(self) -> None:
        log = self.store.parent / "http.log"
        proc = self._spawn(self.link.in_ns(self.link.server_ns, [sys.executable, "-c", STATIC_SERVER, str(self.store),
                                                                 SERVER_IP, str(HTTP_PORT), str(BENCH.parent)]), log)
        self._wait_port(HTTP_PORT, "the static web server", proc, log)

    def start_web(self) -> str:
        """nginx over the store (static files, sendfile), for the ``web`` rows; '' when it answers, else why not."""
        nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
        if nginx is None:
            return "nginx is missing (make setup installs nginx-light): web rows from aiohttp's static files"
        state = self.store.parent / "nginx"
        state.mkdir(exist_ok=True)
        temp = " ".join(f"{kind}_temp_path {state}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (state / "nginx.conf").write_text(f"""
user root root; worker_processes 1; daemon off; pid {state}/nginx.pid; error_log {state}/error.log;
events {{ worker_connections 256; }}
http {{
    access_log off; sendfile on; tcp_nopush on; keepalive_requests 10000;
    types {{ }} default_type application/octet-stream; {temp}
    server {{ listen {SERVER_IP}:{WEB_PORT}; root {self.store}; }}
}}
""")
        log = state / "stdout.log"
        proc = self._spawn(self.link.in_ns(self.link.server_ns, [nginx, "-c", str(state / "nginx.conf")]), log)
        self._wait_port(WEB_PORT, "nginx", proc, log)
        self.web_base = f"http://{SERVER_IP}:{WEB_PORT}/"
        return ""

    def start_nfs(self) -> str:
        """ganesha, then the FUSE mount in the client's namespace; '' when mounted, else why not."""
        (self.state / "recovery").mkdir(parents=True, exist_ok=True)
        conf = self.state / "ganesha.conf"
        conf.write_text(f"""
NFS_CORE_PARAM {{ Protocols = 4; Enable_NLM = false; Enable_RQUOTA = false; Enable_UDP = false; }}
NFSv4 {{ Graceless = true; Only_Numeric_Owners = true; RecoveryRoot = "{self.state}/recovery";
         Lease_Lifetime = {self.lease_seconds}; }}
NFS_KRB5 {{ Active_krb5 = false; CCacheDir = "{self.state}/ccache"; }}
EXPORT {{
    Export_Id = 1; Path = "{self.store}"; Pseudo = /store; Protocols = 4; Transports = TCP;
    Access_Type = RO; Squash = No_Root_Squash; SecType = sys; FSAL {{ Name = VFS; }}
}}
""")
        log = self.state / "ganesha.log"
        proc = self._spawn(self.link.in_ns(self.link.server_ns, [
            "env", f"BLKID_FILE={self.state}/blkid.tab", "ganesha.nfsd", "-F", "-f", str(conf), "-L", str(log),
            "-p", str(self.state / "ganesha.pid")]), self.state / "stdout.log")
        self._wait_port(2049, "nfs-ganesha", proc, log)
        if not NFSFUSE.exists():
            return "build/nfsfuse is missing (make bench-incremental builds it): HTTP only"
        self.nfs_mount.mkdir(exist_ok=True)
        fuse_log = self.store.parent / "nfsfuse.log"
        fuse_proc = self._spawn(self.link.in_client([str(NFSFUSE), SERVER_IP, "/store", str(self.nfs_mount)]), fuse_log)
        deadline = time.monotonic() + 30
        while not os.path.ismount(self.nfs_mount):
            if fuse_proc.poll() is not None or time.monotonic() > deadline:
                return f"the FUSE mount over libnfs failed: {fuse_log.read_text(errors='replace')[-300:]}: HTTP only"
            time.sleep(0.2)
        self.mounted = True
        return ""

    def fuse_log_tail(self) -> str:
        log = self.store.parent / "nfsfuse.log"
        return log.read_text(errors="replace")[-1500:] if log.exists() else "(none)"

    def close(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.nfs_mount)], capture_output=True, check=False)
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        shutil.rmtree(self.state, ignore_errors=True)
        shutil.rmtree(self.store.parent / "nginx", ignore_errors=True)

