"""Every route of the server (docs/openapi.yaml, and the app's own table for the console and boot pages) with
arbitrary methods, path parameters, query strings, headers and bodies, against the real app on loopback:
no answer is a 5xx, and every /api answer is strict JSON (no NaN, no Infinity)."""
from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote, urlencode

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.apphost import ADMIN_TOKEN, AppHost, Reply
from tests.fuzz.profiles import FIGURES, cases

OPENAPI = yaml.safe_load((Path(__file__).parents[2] / "docs" / "openapi.yaml").read_text())
METHODS = ("get", "post", "put", "delete", "patch")
SKIPPED = {"/events"}  # the console's live stream never ends by design (tests/server_stub/console)
MAC = "52:54:00:00:13:77"


def _resolve(node: Any, seen: frozenset[str] = frozenset()) -> Iterator[str]:
    """Every property name reachable from ``node`` (following $ref)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref not in seen:
            target: Any = OPENAPI
            for part in ref.removeprefix("#/").split("/"):
                target = target.get(part, {}) if isinstance(target, dict) else {}
            yield from _resolve(target, seen | {ref})
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                yield from value
            yield from _resolve(value, seen)
    elif isinstance(node, list):
        for item in node:
            yield from _resolve(item, seen)


def _operations() -> list[tuple[str, str, tuple[str, ...]]]:
    """(method, path template, the body's field names) of every documented operation."""
    found = []
    for path, item in OPENAPI["paths"].items():
        for method in METHODS:
            if method in item:
                fields = tuple(sorted(set(_resolve(item[method].get("requestBody", {})))))
                found.append((method.upper(), path, fields))
    return found


def _non_json_successes() -> dict[str, str]:
    """Documented /api paths whose 200 is not JSON (the CSV report, the document itself): path → its type."""
    found = {}
    for path, item in OPENAPI["paths"].items():
        content = item.get("get", {}).get("responses", {}).get("200", {}).get("content", {})
        if content and "application/json" not in content:
            found[path] = next(iter(content))
    return found


NON_JSON = _non_json_successes()


def _non_json_type(method: str, path: str) -> str | None:
    """The documented non-JSON type of a successful GET of ``path`` (a concrete path), if any."""
    for template, kind in NON_JSON.items():
        if method == "GET" and re.fullmatch(re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(template)), path):
            return kind
    return None


def _app_routes(host: AppHost) -> list[tuple[str, str, tuple[str, ...]]]:
    """Routes the document does not list (console pages, sign-in): from the app's table."""
    documented = {(m, re.sub(r"\{(\w+)[^}]*\}", r"{\1}", p)) for m, p, _ in _operations()}
    found = []
    for route in host.app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        template = info.get("formatter") or info.get("path")
        if not template or route.method in ("HEAD", "*") or template in SKIPPED:
            continue
        template = re.sub(r"\{(\w+)[^}]*\}", r"{\1}", template)
        if (route.method, template) not in documented:
            found.append((route.method, template, ("name", "password", "csrf", "mac", "type", "next")))
    return found


@pytest.fixture(scope="module")
def host(tmp_path_factory) -> Iterator[AppHost]:
    served = AppHost(tmp_path_factory.mktemp("fuzz"))
    # Something to find: a host with a task, a storage node and an image, a menu session.
    served.request("POST", "/api/storage", json={"name": "main", "export": "10.0.0.1:/images"},
                   headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    served.request("POST", "/api/images", json={"name": "win10", "storage": "main"},
                   headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    served.request("POST", "/api/hosts", json={"mac": MAC, "name": "pc"},
                   headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    served.request("POST", "/api/tasks", json={"host": "pc", "type": "inventory"},
                   headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    served.request("POST", "/api/menu/login", json={"mac": MAC, "password": ADMIN_TOKEN})  # a session to compare
    try:
        yield served
    finally:
        served.close()


# --- strategies ------------------------------------------------------------------------------------------

KNOWN = ["pc", "main", "win10", "default", "1", "0", MAC, "10.0.0.1:/images", "inventory", "deploy", "capture",
         "wipe", "admin", "technician", "menu", "fast", "/dev/vda", ADMIN_TOKEN]
scalars = (st.none() | st.booleans() | st.integers() | st.integers(-2**70, 2**70) | st.floats() |
           st.text(max_size=30) | st.sampled_from(KNOWN))


def json_values(names: tuple[str, ...]) -> st.SearchStrategy[Any]:
    keys = st.sampled_from(names) | st.text(max_size=12) if names else st.text(max_size=12)
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
                        max_leaves=12)


def bodies(names: tuple[str, ...]) -> st.SearchStrategy[bytes]:
    objects = st.dictionaries(st.sampled_from(names), json_values(names), max_size=len(names)) if names \
        else st.dictionaries(st.text(max_size=12), json_values(names), max_size=4)
    as_json = (objects | json_values(names)).map(lambda v: json.dumps(v, allow_nan=True).encode("utf-8",
                                                                                                "surrogatepass"))
    deep = st.integers(1, 5000).map(lambda n: b"[" * n + b"]" * n)
    bom = objects.map(lambda v: b"\xef\xbb\xbf" + json.dumps(v).encode("utf-8", "surrogatepass"))
    utf16 = objects.map(lambda v: json.dumps(v, ensure_ascii=False).encode("utf-16", "surrogatepass"))
    return st.one_of(as_json, st.binary(max_size=300), st.just(b""), deep, bom, utf16,
                     st.text(max_size=100).map(lambda t: t.encode("utf-8", "surrogatepass")))


any_param = st.one_of(st.sampled_from(KNOWN), st.text(max_size=40), st.integers(-1, 2**70).map(str),
                      st.binary(max_size=20).map(lambda b: b.decode("latin-1")))
# Half the time a value that names something (the fixture's task 1, host pc, node main …): the handlers run.
PARAMS = {"id": st.integers(0, 3).map(str), "key": st.sampled_from(["pc", MAC]), "mac": st.just(MAC),
          "name": st.sampled_from(["main", "win10", "default", "pc", "admin", "vmlinuz"])}
header_text = st.binary(max_size=60).map(lambda b: bytes(c for c in b if c >= 0x20 and c != 0x7f))
header_text = header_text | header_text.map(lambda b: b + "é".encode())  # non-ASCII credentials, often
authorizations = st.one_of(st.none(), st.just(f"Bearer {ADMIN_TOKEN}".encode()), header_text,
                           header_text.map(lambda b: b"Bearer " + b))
content_types = st.sampled_from([None, b"application/json", b"text/plain", b"application/x-www-form-urlencoded",
                                 b"multipart/form-data; boundary=x", b"application/json; charset=utf-16"])
queries = st.dictionaries(st.sampled_from(["offset", "limit", "q", "sort", "state", "mac", "image", "all", "next",
                                           "page", "host", "type"]) | st.text(max_size=8),
                          st.sampled_from(["-1", "0", "1", "99999999999999999999999", "nan", ""]) | st.text(max_size=20),
                          max_size=3)


@st.composite
def requests_(draw: st.DrawFn, operations: list[tuple[str, str, tuple[str, ...]]]) -> tuple[str, str, bytes]:
    method, template, names = draw(st.sampled_from(operations))
    if draw(st.integers(0, 9)) == 0:  # now and then, a method the route does not take
        method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]))
    path = re.sub(r"\{(\w+)\}", lambda m: quote(draw(PARAMS.get(m[1], any_param) | any_param), safe=""), template)
    query = draw(queries)
    target = path + ("?" + urlencode(query) if query else "")
    body = draw(bodies(names)) if method != "GET" or draw(st.booleans()) else b""
    lines = [f"{method} {target} HTTP/1.1".encode(), b"Host: fuzz", b"Connection: close",
             f"Content-Length: {len(body)}".encode()]
    if (auth := draw(authorizations)) is not None:
        lines.append(b"Authorization: " + auth)
    if (kind := draw(content_types)) is not None:
        lines.append(b"Content-Type: " + kind)
    if draw(st.booleans()):
        lines.append(b"Cookie: imager_session=" + draw(header_text).replace(b";", b""))
    if draw(st.booleans()):
        lines.append(b"X-CSRF-Token: " + draw(header_text))
    return method, path, b"\r\n".join(lines) + b"\r\n\r\n" + body


def _check(reply: Reply, method: str, path: str, request: bytes) -> None:
    FIGURES["route cases"] += 1
    FIGURES[f"status {reply.status}"] += 1
    if reply.status >= 500:
        FIGURES["route 5xx"] += 1
    assert reply.status < 500, (request[:500], reply.status, reply.body[:500])
    if reply.status == 200 and path.startswith("/api/") and (documented := _non_json_type(method, path)):
        # A documented non-JSON success (the CSV report, a file) says so; its errors are still JSON below.
        content_type = next((v for k, v in reply.headers.items() if k.lower() == "content-type"), "")
        assert content_type.startswith(documented), (path, content_type)
    elif path.startswith("/api/") and method != "HEAD" and reply.status != 204:
        try:
            answer = reply.json()
        except ValueError as exc:
            raise AssertionError(f"not strict JSON ({exc}): {reply.body[:300]!r} for {request[:300]!r}") from None
        if reply.status >= 400:
            assert isinstance(answer, dict) and isinstance(answer.get("code"), str), answer


def test_every_route_answers_below_500_with_json(host):
    operations = _operations() + _app_routes(host)
    assert len(operations) > 40

    @cases("routes")
    @given(st.data())
    def fuzz(data: st.DataObject) -> None:
        method, path, request = data.draw(requests_(operations))
        reply = host.run(asyncio.wait_for(_raw(host, request), 30))
        _check(reply, method, path, request)

    fuzz()


async def _raw(host: AppHost, request: bytes) -> Reply:
    """host.raw, inside the running loop (a chunked answer decoded)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", host.port)
    writer.write(request)
    await writer.drain()
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:] if ": " in line)}
    if headers.get("transfer-encoding") == "chunked":
        body = _dechunk(body)
    return Reply(int(lines[0].split()[1]), headers, body)


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2:]
    return bytes(out)
