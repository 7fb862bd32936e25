"""serve --bind ::1 and --bind :: (both families): HTTP and TFTP answer over IPv6, and the URLs the server writes
into boot scripts carry the address in brackets."""
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from server_stub.config import http_url
from tests.server_stub.conftest import free_port

MAC = "52:54:00:00:00:61"
UNDIONLY = Path("/usr/lib/ipxe/undionly.kpxe").read_bytes()


@pytest.fixture
def serve(tmp_path):
    procs = []

    def start(bind: str, reach: str) -> dict:
        boot = tmp_path / "boot"
        boot.mkdir(exist_ok=True)
        (boot / "vmlinuz").write_bytes(os.urandom(1000))
        (boot / "initrd.img").write_bytes(os.urandom(2000))
        for _ in range(3):  # a port found free can be taken before the server binds it (busy machine): retry
            http, tftp = free_port(), free_port(socket.SOCK_DGRAM)
            proc = subprocess.Popen([sys.executable, "-m", "server_stub", "serve", "--bind", bind, "--http-port",
                                     str(http), "--tftp-port", str(tftp), "--data-dir", str(tmp_path / "data"),
                                     "--boot-dir", str(boot)],
                                    stdout=open(tmp_path / "server.log", "ab"), stderr=subprocess.STDOUT)
            procs.append(proc)
            url = http_url(reach, http)
            for _ in range(100):
                try:
                    requests.get(f"{url}/boot.ipxe", timeout=1)
                    break
                except requests.ConnectionError:
                    if proc.poll() is not None:
                        break
                    time.sleep(0.1)
            if proc.poll() is None:
                break
        admin = {"Authorization": "Bearer " + (tmp_path / "data" / "admin.token").read_text().strip()}
        return {"url": url, "http": http, "tftp": tftp, "admin": admin}

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(10)


def tftp_get(host: str, port: int, name: str) -> bytes:
    got = subprocess.run(["curl", "-s", "--max-time", "20", f"tftp://{host}:{port}/{name}"], capture_output=True)
    assert got.returncode == 0, got.stderr
    return got.stdout


def test_http_url_brackets_ipv6_only():
    assert http_url("::1", 8080) == "http://[::1]:8080"
    assert http_url("[fe80::1]", 80) == "http://[fe80::1]:80"
    assert http_url("10.0.0.1", 8080, "https") == "https://10.0.0.1:8080"


def test_bind_ipv6_loopback_serves_http_and_tftp_with_bracketed_urls(serve):
    server = serve("::1", "::1")
    admin, url = server["admin"], server["url"]
    requests.post(f"{url}/api/storage", json={"name": "main", "export": "10.0.0.1:/images"}, headers=admin)
    requests.post(f"{url}/api/hosts", json={"mac": MAC, "name": "pc61"}, headers=admin).raise_for_status()
    requests.post(f"{url}/api/images", json={"name": "win10", "storage": "main"}, headers=admin)
    requests.post(f"{url}/api/tasks", json={"host": "pc61", "type": "capture", "image": "win10"},
                  headers=admin).raise_for_status()
    script = requests.get(f"{url}/boot/{MAC}.ipxe", timeout=5).text
    assert f"kernel http://[::1]:{server['http']}/files/vmlinuz" in script
    assert f"imager.server=http://[::1]:{server['http']}" in script
    assert tftp_get("[::1]", server["tftp"], "undionly.kpxe") == UNDIONLY
    pxelinux = tftp_get("[::1]", server["tftp"], "pxelinux.cfg/01-52-54-00-00-00-61").decode()
    assert f"imager.server=http://[::1]:{server['http']}" in pxelinux


def test_bind_any_ipv6_answers_both_families(serve):
    server = serve("::", "::1")
    for host in ("127.0.0.1", "[::1]"):
        assert requests.get(f"http://{host}:{server['http']}/boot.ipxe", timeout=5).text.startswith("#!ipxe")
        assert tftp_get(host, server["tftp"], "undionly.kpxe") == UNDIONLY
