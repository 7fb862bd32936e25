"""A real `imager-server serve` process for the browser tests and `make screenshots`: loopback, a free port,
a fresh data dir seeded with a technician account, stand-in boot files; stopped by its PID."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import requests

TECH_NAME, TECH_PASSWORD = "tech", "technician-password-1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ConsoleServer:
    """A running `imager-server serve`: its URL, data dir and admin token, and JSON API calls as admin."""
    url: str
    data: Path
    proc: subprocess.Popen[bytes]
    log: Path
    admin_token: str = ""
    session: requests.Session = field(default_factory=requests.Session)

    def api(self, method: str, path: str, expect: int | None = None, **body: Any) -> Any:
        r = self.session.request(method, self.url + path, json=body or None, timeout=10,
                                 headers={"Authorization": f"Bearer {self.admin_token}"})
        if expect is not None:
            assert r.status_code == expect, f"{method} {path}: {r.status_code} {r.text}"
        return r.json() if r.content else None

    def task_token(self, mac: str) -> str:
        """The per-task token the boot script hands the client (how a real client gets it)."""
        script = requests.get(f"{self.url}/boot/{mac}.ipxe", timeout=10).text
        words = dict(w.split("=", 1) for w in script.split() if w.startswith(("imager.task=", "imager.claim=")))
        r = requests.post(f"{self.url}/api/tasks/{words['imager.task']}/claim", json={"claim": words["imager.claim"]},
                          timeout=10)
        assert r.status_code == 200, r.text
        return str(r.json()["token"])


def start_server(base: Path, prepare: Callable[[Any], None] | None = None) -> ConsoleServer:
    """Seed the store (a technician account, then ``prepare``), start the server, wait until it answers."""
    import argon2

    from server_stub.store import Store

    data, boot = base / "data", base / "boot"
    data.mkdir(parents=True)
    boot.mkdir()
    (boot / "vmlinuz").write_bytes(b"\0" * 4096)
    (boot / "initrd.img").write_bytes(b"\0" * 4096)
    store = Store(str(data / "imager.sqlite3"))
    try:
        store.accounts.add_user(TECH_NAME, "technician", argon2.PasswordHasher().hash(TECH_PASSWORD))
        if prepare is not None:
            prepare(store)
    finally:
        store.close()
    port = free_port()
    log = base / "server.log"
    argv = [sys.executable, "-m", "server_stub", "serve", "--bind", "127.0.0.1", "--http-port", str(port),
            "--tftp-port", str(free_port()), "--data-dir", str(data), "--boot-dir", str(boot)]
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    server = ConsoleServer(f"http://127.0.0.1:{port}", data, proc, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"imager-server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            requests.get(server.url + "/signin", timeout=1)
            break
        except requests.ConnectionError:
            time.sleep(0.1)
    else:
        stop_server(server)
        raise RuntimeError("imager-server did not answer within 30 s")
    server.admin_token = (data / "admin.token").read_text().strip()
    return server


def stop_server(server: ConsoleServer) -> None:
    if server.proc.poll() is None:
        server.proc.terminate()
        try:
            server.proc.wait(10)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(10)
    server.session.close()
