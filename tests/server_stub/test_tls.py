"""serve --tls-cert/--tls-key: the API over HTTPS with a certificate made here by openssl; boot stays HTTP.

Clients: requests, the admin CLI (urllib, --cacert) and imager's own TaskClient / register(), which pin
the certificate named on the kernel command line (imager.server_fp).
"""
import re
import socket
import subprocess
import sys
import time

import pytest
import requests

from imager import api, cmdline, pinning
from imager.errors import ServerIdentityError
from server_stub import bootpolicy
from tests.server_stub.conftest import free_port


def make_cert(directory, name: str) -> dict:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    out = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-fingerprint", "-sha256"],
                         check=True, capture_output=True, text=True).stdout
    return {"cert": cert, "key": key, "fp": "sha256:" + out.split("=", 1)[1].strip().replace(":", "").lower()}


@pytest.fixture
def certs(tmp_path):
    return {"good": make_cert(tmp_path, "imager-test"), "other": make_cert(tmp_path, "impostor"),
            "https_port": free_port()}


@pytest.fixture
def server_args(certs):  # the conftest's server fixture starts `serve` with these
    return ["--tls-cert", str(certs["good"]["cert"]), "--tls-key", str(certs["good"]["key"]),
            "--https-port", str(certs["https_port"])]


@pytest.fixture
def https(server, certs):
    for _ in range(50):  # the conftest waited for plain HTTP; HTTPS starts right after it
        try:
            socket.create_connection(("127.0.0.1", certs["https_port"]), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    return f"https://127.0.0.1:{certs['https_port']}"


@pytest.fixture(autouse=True)
def no_pins_left():
    yield
    pinning._PINS.clear()


def boot_line(server, https, certs, mac="52:54:00:00:01:01") -> str:
    """Queue a capture for a new host; the kernel line of its iPXE boot script (fetched over plain HTTP)."""
    admin, verify = server["admin"], str(certs["good"]["cert"])
    for path, body in (("/api/storage", {"name": "main", "export": "10.0.0.1:/images"}),
                       ("/api/images", {"name": "win10", "storage": "main"}),
                       ("/api/hosts", {"mac": mac, "name": "pc1"}),
                       ("/api/tasks", {"host": "pc1", "type": "capture", "image": "win10"})):
        answer = requests.post(https + path, json=body, headers=admin, verify=verify, timeout=10)
        assert answer.status_code == 201, answer.text
    script = requests.get(f"{server['url']}/boot/{mac}.ipxe", timeout=10).text
    return next(line for line in script.splitlines() if line.startswith("kernel "))


def test_the_api_is_https_only_and_boot_stays_plain_http(server, https, certs):
    hosts = requests.get(https + "/api/hosts", headers=server["admin"], verify=str(certs["good"]["cert"]), timeout=10)
    assert hosts.status_code == 200 and hosts.json() == []
    plain = requests.get(server["url"] + "/api/hosts", headers=server["admin"], timeout=10)
    assert plain.status_code == 403 and "https only" in plain.json()["error"]
    assert requests.post(server["url"] + "/api/register", json={"mac": "52:54:00:00:09:09"}, timeout=10).status_code == 403
    assert requests.get(server["url"] + "/boot.ipxe", timeout=10).text.startswith("#!ipxe")
    assert requests.get(server["url"] + "/files/vmlinuz", timeout=10).content == (server["boot"] / "vmlinuz").read_bytes()
    assert requests.get(server["url"] + "/api/openapi.yaml", timeout=10).status_code == 200
    with pytest.raises(requests.exceptions.SSLError):  # a client that checks CAs does not trust it by chance
        requests.get(https + "/api/hosts", timeout=10)


def test_boot_entries_name_the_https_api_and_pin_the_certificate(server, https, certs):
    line = boot_line(server, https, certs)
    # Kernel and initrd over plain HTTP (iPXE); the API over https with openssl's fingerprint of the cert.
    assert line.startswith(f"kernel {server['url']}/files/vmlinuz ")
    params = cmdline.parse(line)
    assert params.server == https and params.server_fp == certs["good"]["fp"] and params.claim
    config = subprocess.run(["curl", "-s", f"tftp://127.0.0.1:{server['tftp_port']}/pxelinux.cfg/01-52-54-00-00-01-01"],
                            capture_output=True, text=True).stdout
    assert f"imager.server={https} imager.server_fp={certs['good']['fp']}" in config


def test_the_task_client_trusts_the_pinned_certificate_only(server, https, certs):
    params = cmdline.parse(boot_line(server, https, certs))
    pinning.pin_server(params.server, params.server_fp)
    client = api.TaskClient(params.server, params.task, claim=params.claim, attempts=8, base_delay=1)
    task = client.checkin()
    assert task["type"] == "capture" and task["state"] == "running" and task["image"]["name"] == "win10"
    client.progress({"stage": "capture", "percent": 10})
    shown = requests.get(f"{https}/api/tasks/{params.task}", headers=server["admin"],
                         verify=str(certs["good"]["cert"]), timeout=10).json()
    assert shown["progress"]["percent"] == 10

    for pin in (certs["other"]["fp"], None):  # another certificate's pin; no pin (the CA store)
        pinning.pin_server(params.server, pin)
        started = time.monotonic()
        with pytest.raises(ServerIdentityError) as refused:
            api.TaskClient(params.server, params.task, claim=params.claim, attempts=8, base_delay=1).checkin()
        assert time.monotonic() - started < 3, "a certificate mismatch is final, not retried"
        assert refused.value.code == "server_identity" and "TLS check" in refused.value.message
        if pin:
            assert pin in refused.value.message
    pinning.pin_server(params.server, certs["other"]["fp"])
    with pytest.raises(ServerIdentityError):
        api.register(params.server, {"mac": "52:54:00:00:09:09"}, attempts=8, base_delay=1)


def admin_cli(server, *argv):
    return subprocess.run([sys.executable, "-m", "server_stub", "--token-file", str(server["data"] / "admin.token"),
                           *argv], capture_output=True, text=True, timeout=60)


def test_the_admin_cli_talks_https(server, https, certs):
    added = admin_cli(server, "--server", https, "--cacert", str(certs["good"]["cert"]),
                      "host", "add", "52:54:00:00:02:02", "pc2")
    assert added.returncode == 0, added.stderr
    listed = admin_cli(server, "--server", https, "--cacert", str(certs["good"]["cert"]), "host", "list")
    assert re.search(r"52:54:00:00:02:02\s+pc2", listed.stdout)
    for trust in ([], ["--cacert", str(certs["other"]["cert"])]):
        refused = admin_cli(server, "--server", https, *trust, "host", "list")
        assert refused.returncode == 1 and "is not trusted" in refused.stderr and "--cacert" in refused.stderr
    plain = admin_cli(server, "--server", server["url"], "host", "list")
    assert plain.returncode == 1 and "https only" in plain.stderr


@pytest.mark.parametrize("which", ["half", "mismatch"])
def test_serve_refuses_bad_tls_settings(tmp_path, certs, which):
    good, other = certs["good"], certs["other"]
    tls = (["--tls-cert", str(good["cert"])] if which == "half"
           else ["--tls-cert", str(good["cert"]), "--tls-key", str(other["key"])])
    run = subprocess.run([sys.executable, "-m", "server_stub", "serve", "--bind", "127.0.0.1", "--http-port",
                          str(free_port()), "--tftp-port", "0", "--data-dir", str(tmp_path / "d"), *tls],
                         capture_output=True, text=True, timeout=30)
    assert run.returncode != 0
    assert ("go together" if which == "half" else "cannot use --tls-cert") in run.stderr


def test_kernel_parameters_of_the_pin():
    fp = "sha256:" + "AB:" * 31 + "CD"
    params = cmdline.parse(f"imager.server=https://10.0.0.1:8443 imager.server_fp={fp} imager.task=1 imager.claim=t")
    assert params.server_fp == "sha256:" + "ab" * 31 + "cd"
    for bad in (f"imager.server=http://10.0.0.1:8080 imager.server_fp={fp}",  # a pin needs https
                "imager.server=https://10.0.0.1:8443 imager.server_fp=sha256:abcd",
                "imager.server=https://10.0.0.1:8443 imager.server_fp=md5:" + "ab" * 16):
        with pytest.raises(Exception) as refused:
            cmdline.parse(bad + " imager.mode=register")
        assert refused.value.code == "boot_parameter"
    ctx = bootpolicy.BootContext(base_url="http://${next-server}:8080", api_url="https://${next-server}:8443",
                                 server_fp=params.server_fp)
    spec = bootpolicy.decide("52:54:00:00:00:01", {"name": "pc"}, {"id": 4, "token": "s", "state": "queued"}, ctx)
    assert spec.kernel_url == "http://${next-server}:8080/files/vmlinuz"
    assert cmdline.parse(spec.cmdline.replace("${next-server}", "10.0.0.1")).server_fp == params.server_fp


def test_under_tls_the_console_is_sent_to_https_and_refuses_plain_forms(server, https, certs):
    page = requests.get(server["url"] + "/hosts?page=2", allow_redirects=False, timeout=10)
    assert page.status_code == 302
    assert page.headers["Location"] == https + "/hosts?page=2"
    signin = requests.post(server["url"] + "/signin", data={"name": "admin", "password": "x" * 20},
                           allow_redirects=False, timeout=10)
    assert signin.status_code == 403 and "https only" in signin.json()["error"]
    served = requests.get(https + "/signin", verify=str(certs["good"]["cert"]), timeout=10)
    assert served.status_code == 200 and 'action="/signin"' in served.text
