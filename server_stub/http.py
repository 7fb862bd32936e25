"""What every HTTP route shares: errors as JSON (one middleware), JSON bodies read with a size limit and
their fields taken with their types, a rate limiter, the bearer token, JSON answers.

A request a handler cannot use is refused by an ``errors.ApiError`` (4xx) raised here or in the store;
anything else a handler raises is a server bug and answers 500, so a client never takes our bug for its
own final mistake.
"""
from __future__ import annotations

import collections
import hmac
import json
import logging
import math
import time
from typing import Any, Mapping

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from multidict import MultiDictProxy

from server_stub.errors import ApiError, Invalid, NotFound, RateLimited, TooLarge

log = logging.getLogger(__name__)


MAX_BODY = 1024 * 1024        # bytes of JSON an admin call may send (aiohttp's own default before)
MAX_ROW_ID = 2**63 - 1        # SQLite's largest integer: a bigger id in a path names nothing
# The stable code of an error aiohttp raises itself (no route, wrong method …).
_HTTP_CODES = {400: "invalid", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
               409: "conflict", 413: "too_large", 429: "rate_limited"}


def _strict_dumps(data: Any) -> str:
    # allow_nan=False: NaN or Infinity in an answer is our bug (a ValueError → 500), never JSON a client can't parse.
    return json.dumps(data, default=str, allow_nan=False)


def json_response(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response(data, status=status, headers=headers, dumps=_strict_dumps)


def error_response(error: ApiError) -> web.Response:
    headers = {"Retry-After": str(error.retry_after)} if isinstance(error, RateLimited) else None
    return json_response(error.to_json(), error.status, headers)


def _aiohttp_error(exc: web.HTTPException) -> web.Response:
    headers = {k: v for k, v in exc.headers.items() if k.lower() not in ("content-type", "content-length")}
    code = _HTTP_CODES.get(exc.status, "internal" if exc.status >= 500 else "bad_request")
    return json_response({"error": exc.reason, "code": code}, exc.status, headers)


def error_middleware(translate: Mapping[type[Exception], type[ApiError]] | None = None) -> Middleware:
    """Every error as ``{"error": message, "code": code, "details"?: {…}}``. ``translate`` maps exception
    classes raised outside server_stub.errors (an inventory's shape …) to the ApiError they mean."""
    translated = tuple((translate or {}).items())

    @web.middleware
    async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            if request.method == "POST" and request.content_type in FORM_TYPES and not request.path.startswith("/api/"):
                await read_form(request)  # a page's form, parsed (and cached by aiohttp) here: malformed is 400
            return await handler(request)
        except ApiError as exc:
            return error_response(exc)
        except web.HTTPException as exc:
            if exc.status < 400:  # redirects stay what they are
                raise
            return _aiohttp_error(exc)
        except Exception as exc:
            for kind, meaning in translated:
                if isinstance(exc, kind):
                    return error_response(meaning(str(exc)))
            log.exception("%s %s: internal server error", request.method, request.path)
            return json_response({"error": "internal server error", "code": "internal"}, 500)
    return errors_as_json


# --- request bodies ---------------------------------------------------------

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def read_form(request: web.Request) -> MultiDictProxy[str | bytes | bytearray | web.FileField]:
    """A form body (aiohttp caches it: later ``request.post()`` calls get the same); a malformed one is 400."""
    try:
        return await request.post()
    except ValueError as exc:  # a multipart body without its boundary, undecodable bytes …
        raise Invalid(f"the form is malformed: {exc}") from None


_UTF8_BOM = b"\xef\xbb\xbf"
_MAX_JSON_INT = MAX_ROW_ID  # JSON numbers beyond SQLite's integers fit nowhere in the store


def _refuse_constant(name: str) -> Any:
    raise Invalid(f"the request body is not strict JSON: {name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 parses as inf
        raise Invalid(f"the request body holds a number too large for a double: {text[:40]}")
    return value


def _shown(path: str) -> str:
    """A place in the body for a message (a key may hold the very surrogate refused)."""
    return path.encode("utf-8", "backslashreplace").decode("utf-8")[:100] or "the body"


def _fault(data: Any) -> str | None:
    """What makes a parsed body unstorable, naming where: a whole number beyond SQLite's 64 bits, or a string (or
    key) holding half a UTF-16 pair (``"\\ud800"``: not text). None when there is nothing."""
    pending: list[tuple[str, Any]] = [("", data)]
    while pending:
        path, item = pending.pop()
        if isinstance(item, dict):
            pending.extend((f"{path}.{key}" if path else str(key), key) for key in item)
            pending.extend((f"{path}.{key}" if path else str(key), value) for key, value in item.items())
        elif isinstance(item, list):
            pending.extend((f"{path}[{i}]", value) for i, value in enumerate(item))
        elif isinstance(item, bool):
            continue
        elif isinstance(item, int) and not -_MAX_JSON_INT - 1 <= item <= _MAX_JSON_INT:
            return f"{_shown(path)} {str(item)[:40]} is out of range (whole numbers fit in 64 bits)"
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return f"{_shown(path)} is not valid Unicode: it holds half a UTF-16 surrogate pair"
    return None


async def read_json(request: web.Request, limit: int = MAX_BODY) -> dict[str, Any]:
    """The body as a JSON object (an empty body is ``{}``); never more than ``limit`` bytes are read.

    Strict JSON in UTF-8 (RFC 8259): a leading UTF-8 byte order mark is ignored (RFC 8259 §8.1 allows it);
    bytes that are not UTF-8 (UTF-16 included), NaN/Infinity, numbers beyond a double or SQLite's integers,
    lone surrogates and nesting past the parser's depth are refused with 400.
    """
    if (request.content_length or 0) > limit:
        raise TooLarge(f"request body larger than {limit} bytes", limit=limit)
    raw = bytearray()
    while chunk := await request.content.read(limit + 1 - len(raw)):
        raw += chunk
        if len(raw) > limit:  # chunked, or a Content-Length that lied
            raise TooLarge(f"request body larger than {limit} bytes", limit=limit)
    try:
        text = bytes(raw).removeprefix(_UTF8_BOM).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Invalid(f"the request body is not JSON in UTF-8: {exc.reason} at byte {exc.start}") from None
    if not text.strip():
        return {}
    try:
        data = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except (ValueError, RecursionError) as exc:  # ValueError: bad JSON, or an integer of more than 4300 digits
        raise Invalid(f"the request body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise Invalid("the request body must be a JSON object")
    if (fault := _fault(data)) is not None:
        raise Invalid(fault)
    return data


def require_str(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    if value is None:
        raise Invalid(f"{key} is missing")
    if not isinstance(value, str):
        raise Invalid(f"{key} must be a string")
    return value


def optional_str(body: Mapping[str, Any], key: str, default: str | None = None) -> str | None:
    """The string at ``key``, ``default`` when the key is absent, None when it is null."""
    value = body.get(key, default)
    if value is not None and not isinstance(value, str):
        raise Invalid(f"{key} must be a string")
    return value


def optional_int(body: Mapping[str, Any], key: str, default: int | None = None) -> int | None:
    value = body.get(key, default)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise Invalid(f"{key} must be a whole number", field=key)
    if value is not None and not -MAX_ROW_ID - 1 <= value <= MAX_ROW_ID:  # SQLite's integers: the store's limit
        raise Invalid(f"{key} {value} is out of range", field=key)
    return value


def optional_bool(body: Mapping[str, Any], key: str) -> bool:
    """true or false; absent or null is false."""
    value = body.get(key)
    if value is not None and not isinstance(value, bool):
        raise Invalid(f"{key} must be true or false")
    return value is True


def optional_object(body: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    value = body.get(key)
    if value is not None and not isinstance(value, dict):
        raise Invalid(f"{key} must be an object")
    return value


def require_str_list(body: Mapping[str, Any], key: str) -> list[str]:
    value = body.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Invalid(f"{key} must be a list of strings")
    return value


def path_id(request: web.Request, what: str, name: str = "id") -> int:
    """A numeric path part (the route's pattern is \\d+); one past SQLite's integers names nothing."""
    value = int(request.match_info[name])
    if value > MAX_ROW_ID:
        raise NotFound(f"no {what} {value}")
    return value


def bearer_token(request: web.Request) -> str:
    return request.headers.get("Authorization", "").removeprefix("Bearer ").strip()


def secret_bytes(value: str) -> bytes:
    """A credential as bytes for comparison, whatever it holds: headers arrive as UTF-8 with surrogateescape and
    JSON may carry any code point, and ``hmac.compare_digest`` refuses non-ASCII str (a TypeError, a 500)."""
    return value.encode("utf-8", "surrogatepass")


def same_secret(given: str, expected: str) -> bool:
    """Constant-time equality of two credentials; any text compares (a non-ASCII guess is just wrong: 401)."""
    return hmac.compare_digest(secret_bytes(given), secret_bytes(expected))


class RateLimit:
    """At most ``per_minute`` events in any 60 s window (a sliding log: the events limited are rare)."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self.times: collections.deque[float] = collections.deque()

    def full(self) -> bool:
        now = time.monotonic()
        while self.times and now - self.times[0] >= 60:
            self.times.popleft()
        return len(self.times) >= self.per_minute

    def record(self) -> None:
        self.times.append(time.monotonic())

    def take(self, message: str, retry_after: int) -> None:
        """Count one event, or refuse it (429 with Retry-After) when the window is full."""
        if self.full():
            raise RateLimited(message, retry_after=retry_after)
        self.record()
