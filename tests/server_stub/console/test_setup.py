"""The site's settings over the API (GET /api/setup) and the console's Setup page: the same text init prints,
for the address given or the one serve knows; refusals name their field; signed-in users only."""
import json
import os

from server_stub import sitesettings
from server_stub.config import ServerConfig
from server_stub.setupapi import default_server_ip


def test_the_api_gives_init_s_sections_for_the_address_given(technician):
    page = technician.get("/api/setup", {"server_ip": "10.0.0.1", "clients": "10.0.0.0/24"})
    assert page.status == 200, page.text
    body = json.loads(page.text)
    assert [s["name"] for s in body["sections"]] == list(sitesettings.SECTIONS)
    text = {s["name"]: s["text"] for s in body["sections"]}
    http = f"http://10.0.0.1:{body['http_port']}"  # the port serve listens on (the harness: 8080)
    assert f"dhcp-boot=tag:ipxe,{http}/boot.ipxe" in text["dnsmasq"]
    assert "dhcp-boot=tag:!efi64,tag:!efihttp,tag:!ipxe,undionly.kpxe,,10.0.0.1" in text["dnsmasq"]
    assert f"anonuid={os.getuid()},anongid={os.getgid()}" in text["exports"]  # the server process's own ids
    opened = {(p["protocol"], p["port"]) for p in body["ports"]}
    assert {("udp", "69"), ("tcp", str(body["http_port"])), ("tcp", "2049")} <= opened


def test_secure_boot_and_the_images_directory(technician):
    body = json.loads(technician.get("/api/setup", {"server_ip": "10.0.0.1", "secure_boot": "1",
                                                    "images_dir": "/data/images"}).text)
    text = {s["name"]: s["text"] for s in body["sections"]}
    assert "dhcp-boot=tag:efi64,tag:!ipxe,shimx64.efi,,10.0.0.1" in text["dnsmasq"]
    assert text["exports"].splitlines()[1].startswith("/data/images ")


def test_bad_values_are_400_naming_the_field(technician):
    for params, field in [({"server_ip": "10.0.0.999"}, "server_ip"), ({"server_ip": "fd00::1"}, "server_ip"),
                          ({"server_ip": "10.0.0.1", "clients": "10.9.0.0/16"}, "clients"),
                          ({"server_ip": "10.0.0.1", "images_dir": "relative"}, "images_dir"),
                          ({"server_ip": "10.0.0.1", "images_dir": "/x" * 200}, "images_dir"),
                          ({}, "server_ip")]:  # over loopback, without --public-url: the address must be given
        page = technician.get("/api/setup", params)
        assert page.status == 400, (params, page.text)
        body = json.loads(page.text)
        assert body["code"] == "invalid" and body["details"]["field"] == field, body


def test_the_default_address_is_the_public_url_s_or_the_connection_s():
    config = ServerConfig(admin_token="x", boot_dir="/b", public_url="http://192.168.1.5:8080")
    assert default_server_ip(config, "127.0.0.1") == "192.168.1.5"
    plain = ServerConfig(admin_token="x", boot_dir="/b")
    assert default_server_ip(plain, "10.1.2.3") == "10.1.2.3"
    assert default_server_ip(plain, "127.0.0.1") is None
    assert default_server_ip(ServerConfig(admin_token="x", boot_dir="/b", public_url="http://imager.lan"), "::1") is None


def test_strangers_get_nothing(anonymous):
    assert anonymous.get("/api/setup", {"server_ip": "10.0.0.1"}).status == 401
    assert anonymous.get("/setup").status in (302, 303)


def test_the_setup_page_shows_the_sections_and_keeps_the_form(technician):
    page = technician.get("/setup", {"server_ip": "10.0.0.1", "clients": "10.0.0.0/24"})
    assert page.status == 200
    assert "undionly.kpxe,,10.0.0.1" in page.by_id("setup-dnsmasq").text
    assert "all_squash" in page.by_id("setup-exports").text
    assert ["2049", "tcp"] == page.by_id("setup-ports").rows()[3][:2]
    assert page.by_id("setup-server_ip").get("value") == "10.0.0.1"
    assert page.by_id("setup-clients").get("value") == "10.0.0.0/24"
    assert page.doc.find("a", href="/setup").get("aria-current") == "page"


def test_the_setup_page_says_a_refusal_next_to_its_field(technician):
    page = technician.get("/setup", {"server_ip": "not-an-ip"})
    assert page.status == 400
    assert "is not an IP address" in page.by_id("setup-error").text
    assert page.by_id("setup-server_ip").get("aria-invalid") == "true"
    assert page.by_id("setup-server_ip").get("value") == "not-an-ip"
    assert not page.doc.has_id("setup-dnsmasq")


def test_the_interfaces_are_read_once_for_a_burst_of_requests(technician, monkeypatch):
    from server_stub import setupapi, siteinit
    calls = []
    monkeypatch.setattr(siteinit, "local_networks", lambda: calls.append(1) or json.dumps(
        [{"ifname": "eth0", "addr_info": [{"local": "10.7.0.1", "prefixlen": 16}]}]))
    monkeypatch.setattr(setupapi, "_networks", (float("-inf"), "[]"))
    for _ in range(5):
        body = json.loads(technician.get("/api/setup", {"server_ip": "10.7.0.1"}).text)
        assert body["clients"] == "10.7.0.0/16"  # the address's own network on its interface
    assert len(calls) == 1
