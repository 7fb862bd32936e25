"""Web servers for the HTTP transport's tests, on loopback: Python's own ``http.server`` (an ordinary web server
without byte ranges) and nginx, each as a process, and a small ranged file server in a thread that can drop a connection
mid-file, recording every request's Range header."""
from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def python_http_server(root: Path) -> Iterator[str]:
    """``python3 -m http.server`` serving ``root``; its base URL. Stopped by its PID."""
    port = free_port()
    with serving([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(root),
                  str(port)], port) as url:
        yield url


@contextlib.contextmanager
def serving(argv: list[str], port: int, scheme: str = "http") -> Iterator[str]:
    """A web server process on loopback ``port``; its base URL once it answers. Stopped by its PID."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"{scheme}://127.0.0.1:{port}/"
    try:
        for _ in range(100):
            try:
                requests.head(url, timeout=1, verify=False)
                break
            except requests.ConnectionError:
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@contextlib.contextmanager
def nginx_server(root: Path, state: Path, tls: tuple[Path, Path] | None = None) -> Iterator[str]:
    """nginx (the plain web server an admin puts in front of a node) serving ``root`` on loopback, its files as
    they lie (dot directories included), over https with ``tls`` (certificate, key); access logged to
    ``state``/access.log, and each request's connection number to connections.log. Its base URL; stopped by PID."""
    state.mkdir(parents=True, exist_ok=True)
    port = free_port()
    temp = " ".join(f"{kind}_temp_path {state}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    listen = f"listen 127.0.0.1:{port} ssl; ssl_certificate {tls[0]}; ssl_certificate_key {tls[1]};" if tls else \
        f"listen 127.0.0.1:{port};"
    (state / "nginx.conf").write_text(f"""
user root root; worker_processes 1; daemon off; pid {state}/nginx.pid; error_log {state}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log {state}/access.log; sendfile on; types {{ }} default_type application/octet-stream; {temp}
    log_format connection '$connection $status $request_uri';
    access_log {state}/connections.log connection;
    server {{ {listen} root {root}; }}
}}
""")
    with serving(["nginx", "-c", str(state / "nginx.conf")], port, "https" if tls else "http") as url:
        yield url


@dataclass
class RangedServer:
    """What the ranged server saw and what it does: ``cut`` drops the first GET of a file after that many bytes
    of its body; ``ranges`` is every GET as (file, Range header or None)."""

    root: Path
    cut: dict[str, int] = field(default_factory=dict)
    ranges: list[tuple[str, str | None]] = field(default_factory=list)
    url: str = ""


@contextlib.contextmanager
def ranged_server(root: Path) -> Iterator[RangedServer]:
    state = RangedServer(root)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _file(self) -> Path | None:
            path = (state.root / self.path.lstrip("/")).resolve()
            return path if path.is_file() and state.root.resolve() in path.parents else None

        def do_HEAD(self) -> None:
            path = self._file()
            if path is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(path.stat().st_size))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()

        def do_GET(self) -> None:
            path = self._file()
            if path is None:
                self.send_error(404)
                return
            name = path.name
            wanted = self.headers.get("Range")
            state.ranges.append((name, wanted))
            size = path.stat().st_size
            start, end = 0, size - 1
            found = re.match(r"bytes=(\d+)-(\d*)$", wanted or "")
            if found:
                start = int(found.group(1))
                end = min(end, int(found.group(2))) if found.group(2) else end
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(end - start + 1))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            with open(path, "rb") as f:
                f.seek(start)
                data = f.read(end - start + 1)
            cut = state.cut.pop(name, None)
            if cut is not None:  # the connection dies after ``cut`` bytes: the client must resume
                self.wfile.write(data[:cut])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def flip_byte(path: Path, offset: int) -> None:
    """One byte of ``path`` changed in place: same size, another SHA-256."""
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))
        os.fsync(f.fileno())
