"""Hostile inputs named by issue 13, one by one, against the whole app: each is a 4xx with a JSON error,
never a 500 and never an answer a strict JSON parser refuses."""
from __future__ import annotations

import json
from typing import Iterator

import pytest

from server_stub import http
from tests.fuzz.apphost import ADMIN, ADMIN_TOKEN, AppHost

MAC = "52:54:00:00:13:01"


@pytest.fixture
def host(tmp_path) -> Iterator[AppHost]:
    served = AppHost(tmp_path)
    try:
        yield served
    finally:
        served.close()


def post_raw(host: AppHost, path: str, body: bytes, headers: dict[str, str] = ADMIN):
    return host.request("POST", path, data=body, headers={**headers, "Content-Type": "application/json"})


@pytest.mark.parametrize("body, message", [
    (b'{"mac": NaN, "name": "pc"}', "NaN is not a number"),
    (b'{"mac": Infinity, "name": "pc"}', "Infinity is not a number"),
    (b'{"mac": -Infinity, "name": "pc"}', "-Infinity is not a number"),
    (b'{"mac": 1e400, "name": "pc"}', "too large for a double"),
    (b'{"mac": 9223372036854775808, "name": "pc"}', "out of range"),
    (b'{"mac": ' + b"9" * 5000 + b', "name": "pc"}', "not JSON"),
    (b'{"mac": "\\ud800", "name": "pc"}', "half a UTF-16 surrogate"),
    (b'{"\\udfff": 1}', "half a UTF-16 surrogate"),
    (b'{"mac": "\xff\xfe", "name": "pc"}', "not JSON in UTF-8"),
    (b'{"mac": "\xed\xa0\x80", "name": "pc"}', "not JSON in UTF-8"),   # a surrogate encoded in UTF-8
    ('\ufeff{"mac": "52:54:00:00:13:01", "name": "pc"}'.encode("utf-16"), "not JSON in UTF-8"),
    (b"[" * 100_000 + b"]" * 100_000, "not JSON"),
    (b'{"mac": ["52:54:00:00:13:01"], "name": {"a": 1}}', "must be a string"),
])
def test_malformed_json_is_400_naming_the_fault(host, body, message):
    reply = post_raw(host, "/api/hosts", body)
    assert reply.status == 400, reply.body[:300]
    assert reply.json()["code"] == "invalid" and message in reply.json()["error"], reply.json()
    assert host.store.hosts() == []


def test_a_utf8_bom_before_the_object_is_accepted(host):
    """RFC 8259 §8.1: a parser may ignore a leading UTF-8 BOM; we do (docs/security.md)."""
    reply = post_raw(host, "/api/hosts", b'\xef\xbb\xbf{"mac": "52:54:00:00:13:01", "name": "pc"}')
    assert reply.status == 201 and reply.json()["name"] == "pc"


def test_nan_never_leaves_as_an_answer():
    with pytest.raises(ValueError):
        http.json_response({"rate": float("nan")})
    assert json.loads(http.json_response({"n": 1.5}).text) == {"n": 1.5}


def task_for(host: AppHost) -> int:
    assert host.request("POST", "/api/hosts", json={"mac": MAC, "name": "pc"}, headers=ADMIN).status == 201
    reply = host.request("POST", "/api/tasks", json={"host": "pc", "type": "inventory"}, headers=ADMIN)
    assert reply.status == 201
    return int(reply.json()["id"])


NON_ASCII = [b"t\xc3\xa9st", b"t\xffst", b"\xe9t\xe9", b"\xf0\x9f\x94\x91"]


@pytest.mark.parametrize("token", NON_ASCII)
def test_non_ascii_credentials_are_401_everywhere(host, token):
    task = task_for(host)
    login = host.request("POST", "/api/menu/login", json={"mac": MAC, "password": ADMIN_TOKEN})
    assert login.status == 200  # a live session exists: the comparison really runs
    for method, path in [("POST", f"/api/tasks/{task}/checkin"), ("GET", "/api/menu/lists"), ("GET", "/api/hosts"),
                         ("POST", f"/api/tasks/{task}/progress")]:
        reply = host.raw(f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n"
                         .encode() + b"Authorization: Bearer " + token + b"\r\n\r\n{}")
        assert reply.status == 401, (path, reply.body)
        assert reply.json()["code"] == "unauthorized"
    reply = host.raw(b"GET /api/hosts HTTP/1.1\r\nHost: x\r\nConnection: close\r\nCookie: imager_session=" + token +
                     b"\r\n\r\n")
    assert reply.status == 401 and reply.json()["code"] == "unauthorized"


@pytest.mark.parametrize("password", ["pässwörd", "密码密码密码密码", "🔑" * 8, "x\u0000y"])
def test_a_non_ascii_password_is_a_wrong_password(host, password):
    reply = host.request("POST", "/api/menu/login", json={"mac": MAC, "password": password})
    assert reply.status == 401 and reply.json()["code"] == "unauthorized"


def test_a_non_ascii_anti_forgery_token_is_403(host):
    signed_in = host.request("POST", "/signin", data={"name": "admin", "password": ADMIN_TOKEN, "next": "/"})
    assert signed_in.status == 303
    cookie = signed_in.headers["Set-Cookie"].split(";")[0].encode()
    reply = host.raw(b"POST /api/hosts HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n"
                     b"Cookie: " + cookie + b"\r\nX-CSRF-Token: \xff\xfe\r\n\r\n{}")
    assert reply.status == 403 and reply.json()["code"] == "forbidden"


@pytest.mark.parametrize("path", [f"/api/tasks/{2**63}", "/api/tasks/" + "9" * 400, f"/api/multicast/{2**64}"])
def test_ids_out_of_range_are_404(host, path):
    reply = host.request("GET", path, headers=ADMIN)
    assert reply.status == 404 and reply.json()["code"] == "not_found"


def test_a_client_call_on_an_id_out_of_range_is_401(host):
    reply = host.request("POST", f"/api/tasks/{2**63}/checkin", json={}, headers={"Authorization": "Bearer x"})
    assert reply.status == 401


@pytest.mark.parametrize("query", ["offset=99999999999999999999999", "limit=5&offset=-99999999999999999999999",
                                   "limit=99999999999999999999999"])
def test_query_numbers_out_of_range_are_400(host, query):
    """Found by the long fuzz profile: /api/audit?offset=10**23 reached SQLite (OverflowError, a 500)."""
    for path in ("/api/audit", "/api/pages/hosts", "/api/pages/tasks"):
        reply = host.request("GET", f"{path}?{query}", headers=ADMIN)
        assert reply.status == 400 and reply.json()["code"] == "invalid", (path, reply.body)
