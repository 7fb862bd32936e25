import os
import socket
import subprocess
import sys
import time

import pytest
import requests


def free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server_args() -> list[str]:
    """Extra `serve` options; a test overrides them with @pytest.mark.parametrize("server_args", …)."""
    return []


@pytest.fixture
def server(tmp_path, server_args):
    """A real imager-server on loopback, with small stand-in boot files."""
    boot = tmp_path / "boot"
    boot.mkdir()
    (boot / "vmlinuz").write_bytes(os.urandom(300_000))
    (boot / "initrd.img").write_bytes(os.urandom(1_000_000))
    http, tftp = free_port(), free_port(socket.SOCK_DGRAM)
    argv = [sys.executable, "-m", "server_stub", "serve", "--bind", "127.0.0.1", "--http-port", str(http),
            "--tftp-port", str(tftp), "--data-dir", str(tmp_path / "data"), "--boot-dir", str(boot), *server_args]
    url = f"http://127.0.0.1:{http}"
    state = {"url": url, "tftp_port": tftp, "boot": boot, "data": tmp_path / "data"}

    def start():
        state["proc"] = subprocess.Popen(argv, stdout=open(tmp_path / "server.log", "ab"), stderr=subprocess.STDOUT)
        for _ in range(100):
            try:
                requests.get(f"{url}/boot.ipxe", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        state["admin"] = {"Authorization": "Bearer " + (tmp_path / "data" / "admin.token").read_text().strip()}

    def stop():
        state["proc"].terminate()
        state["proc"].wait(10)

    state["restart"] = lambda: (stop(), start())
    start()
    try:
        yield state
    finally:
        stop()
