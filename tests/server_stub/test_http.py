"""server_stub/http.py on a real aiohttp server (loopback): the error shape, body limits, typed fields, rate limit."""
import asyncio
import json

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from server_stub import http
from server_stub.errors import Conflict, Invalid, RateLimited

LIMIT = 100


class Inventoryish(ValueError):
    """Stands in for an error class from outside server_stub.errors (contract.inventory's)."""


async def echo(request: web.Request) -> web.Response:
    body = await http.read_json(request, LIMIT)
    return http.json_response({"name": http.require_str(body, "name"), "count": http.optional_int(body, "count"),
                               "flag": http.optional_bool(body, "flag"), "tags": body.get("tags") and
                               http.require_str_list(body, "tags"), "extra": http.optional_object(body, "extra")})


async def conflict(request: web.Request) -> web.Response:
    raise Conflict("task 3 is done; it cannot become running", task=3)


async def bug(request: web.Request) -> web.Response:
    return http.json_response({}[request.path])  # a KeyError: our bug, not the client's


async def translated(request: web.Request) -> web.Response:
    raise Inventoryish("inventory.cpu.model must be a printable string")


async def limited(request: web.Request) -> web.Response:
    raise RateLimited("too many registrations", retry_after=10)


async def deep(request: web.Request) -> web.Response:
    return http.json_response(await http.read_json(request))


async def item(request: web.Request) -> web.Response:
    return http.json_response({"id": http.path_id(request, "thing")})


def call(method: str, path: str, **kwargs) -> tuple[int, dict, dict]:
    """One request to a fresh app on loopback: (status, JSON body, headers)."""
    async def run():
        app = web.Application(middlewares=[http.error_middleware({Inventoryish: Invalid})])
        app.add_routes([web.post("/echo", echo), web.get("/conflict", conflict), web.get("/bug", bug),
                        web.get("/translated", translated), web.get("/limited", limited),
                        web.get("/items/{id:\\d+}", item), web.post("/deep", deep)])
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            response = await client.request(method, path, **kwargs)
            return response.status, json.loads(await response.read()), dict(response.headers)
    return asyncio.run(run())


def test_an_api_error_keeps_its_status_code_message_and_details():
    status, body, _ = call("GET", "/conflict")
    assert (status, body) == (409, {"error": "task 3 is done; it cannot become running", "code": "conflict",
                                    "details": {"task": 3}})


def test_an_unexpected_exception_is_a_500_not_a_client_mistake(caplog):
    status, body, _ = call("GET", "/bug")
    assert (status, body) == (500, {"error": "internal server error", "code": "internal"})
    assert any("internal server error" in r.getMessage() and r.exc_info for r in caplog.records), "traceback logged"


def test_an_error_from_outside_the_tree_is_translated():
    assert call("GET", "/translated")[:2] == (400, {"error": "inventory.cpu.model must be a printable string",
                                                    "code": "invalid"})


def test_rate_limited_says_when_to_come_back():
    status, body, headers = call("GET", "/limited")
    assert status == 429 and body["code"] == "rate_limited" and headers["Retry-After"] == "10"


def test_aiohttp_own_refusals_have_the_same_shape():
    status, body, _ = call("GET", "/nowhere")
    assert (status, body["code"]) == (404, "not_found") and body["error"]
    status, body, headers = call("GET", "/echo")
    assert (status, body["code"]) == (405, "method_not_allowed") and headers["Allow"] == "POST"


def test_an_id_past_sqlites_integers_is_not_found():
    assert call("GET", "/items/12")[:2] == (200, {"id": 12})
    status, body, _ = call("GET", f"/items/{2**63}")
    assert (status, body["code"]) == (404, "not_found")


@pytest.mark.parametrize("raw, message", [
    (b"{", "not JSON"),
    (b"\xff\xfe", "not JSON"),
    (b"[" * 40 + b"]" * 40, "must be a JSON object"),
    (b"[]", "must be a JSON object"),
    (b'"x"', "must be a JSON object"),
    (b"5", "must be a JSON object"),
    (b"{}", "name is missing"),
    (b'{"name": 5}', "name must be a string"),
    (b'{"name": "a", "count": "7"}', "count must be a whole number"),
    (b'{"name": "a", "count": true}', "count must be a whole number"),
    (b'{"name": "a", "flag": "yes"}', "flag must be true or false"),
    (b'{"name": "a", "tags": ["x", 1]}', "tags must be a list of strings"),
    (b'{"name": "a", "extra": []}', "extra must be an object"),
])
def test_malformed_bodies_are_400_with_a_message(raw, message):
    status, body, _ = call("POST", "/echo", data=raw, headers={"Content-Type": "application/json"})
    assert status == 400 and body["code"] == "invalid" and message in body["error"], body


def test_deep_nesting_is_400_not_a_recursion_crash():
    status, body, _ = call("POST", "/deep", data=b"[" * 200_000 + b"]" * 200_000)
    assert (status, body["code"]) == (400, "invalid") and "not JSON" in body["error"]


def test_typed_fields_pass():
    status, body, _ = call("POST", "/echo", json={"name": "pc1", "count": 3, "flag": True, "tags": ["a"],
                                                  "extra": {"k": 1}})
    assert (status, body) == (200, {"name": "pc1", "count": 3, "flag": True, "tags": ["a"], "extra": {"k": 1}})


def test_a_body_over_the_limit_is_413_whether_declared_or_not():
    status, body, _ = call("POST", "/echo", data=b"{" + b" " * LIMIT + b"}")
    assert (status, body["code"], body["details"]) == (413, "too_large", {"limit": LIMIT})

    async def chunks():  # no Content-Length: the limit holds while reading
        for _ in range(10):
            yield b" " * 50
    status, body, _ = call("POST", "/echo", data=chunks())
    assert (status, body["code"]) == (413, "too_large")


def test_rate_limit_window():
    limit = http.RateLimit(2)
    limit.take("x", retry_after=1)
    limit.take("x", retry_after=1)
    with pytest.raises(RateLimited) as refused:
        limit.take("slow down", retry_after=7)
    assert refused.value.retry_after == 7 and refused.value.status == 429
    limit.times[0] -= 61  # the oldest event leaves the 60 s window
    limit.take("x", retry_after=1)
    assert len(limit.times) == 2


def test_whole_numbers_beyond_sqlite_are_refused_naming_the_field():
    from server_stub.http import optional_int
    assert optional_int({"n": 2**63 - 1}, "n") == 2**63 - 1
    for value in (2**63, -(2**63) - 1, 10**30):
        with pytest.raises(Invalid, match="out of range") as refused:
            optional_int({"n": value}, "n")
        assert refused.value.details == {"field": "n"}
