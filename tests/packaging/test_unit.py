"""The systemd unit and /etc/default/imager-server agree with init's defaults and hold the hardening the
install promises (docs/install.md); systemd-analyze verify of the installed unit is in test_deb.py."""
import configparser
import re
from pathlib import Path

from server_stub import siteinit

PACKAGING = Path(__file__).resolve().parents[2] / "packaging"


def unit():
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd's keys are case-sensitive
    parser.read(PACKAGING / "imager-server.service")
    return parser


def test_the_service_runs_as_its_own_user_with_only_the_port_capability():
    service = unit()["Service"]
    assert service["User"] == siteinit.SERVICE_USER and service["Group"] == siteinit.SERVICE_USER
    assert service["AmbientCapabilities"] == "CAP_NET_BIND_SERVICE"
    assert service["CapabilityBoundingSet"] == "CAP_NET_BIND_SERVICE"
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                       "PrivateTmp": "yes", "PrivateDevices": "yes", "RestrictSUIDSGID": "yes",
                       "StandardOutput": "journal", "StandardError": "journal"}.items():
        assert service[key] == value, key


def test_the_service_s_paths_are_init_s():
    service = unit()["Service"]
    assert f"--data-dir {siteinit.DATA_DIR} --boot-dir {siteinit.DATA_DIR}/boot" in service["ExecStart"]
    assert "/var/lib/" + service["StateDirectory"] == siteinit.DATA_DIR
    assert service["ReadWritePaths"] == f"-{siteinit.IMAGES_DIR}"
    assert service["ExecStart"].startswith("/usr/bin/imager-server serve ")
    assert unit()["Install"]["WantedBy"] == "multi-user.target"


def test_the_default_http_port_is_the_one_init_prints():
    default = (PACKAGING / "imager-server.default").read_text()
    args = re.search(r'^IMAGER_SERVE_ARGS="([^"]*)"', default, re.MULTILINE)
    assert args and f"--http-port {siteinit.SERVICE_HTTP_PORT}" in args.group(1)
