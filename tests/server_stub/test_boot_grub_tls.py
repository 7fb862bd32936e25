"""Under serve --tls-cert the API is https-only; GRUB speaks no https, so its entry, configs and loaders stay
plain HTTP (server_stub/tls.py BOOT_PATH_PREFIXES)."""
import pytest
import requests

from tests.server_stub.conftest import free_port
from tests.server_stub.test_tls import make_cert


@pytest.fixture
def server_args(tmp_path):  # the conftest's server fixture starts `serve` with these
    cert = make_cert(tmp_path, "imager-test")
    return ["--tls-cert", str(cert["cert"]), "--tls-key", str(cert["key"]), "--https-port", str(free_port())]


def test_under_tls_grub_still_gets_its_configs_and_loaders_over_plain_http(server):
    for path in ("/grub/grub.cfg", "/boot/52:54:00:00:00:01.grub", "/files/grubx64.efi", "/files/shimx64.efi"):
        r = requests.get(server["url"] + path, timeout=10, allow_redirects=False)
        assert r.status_code == 200, (path, r.status_code)
    assert requests.get(server["url"] + "/api/hosts", timeout=10).status_code == 403  # the API: https only
