"""The HTTP server's resource bounds: header and body timeouts, connections capped overall and per address.

- Headers: aiohttp (3.14) arms its keep-alive timer when a connection opens and re-arms it after each response;
  a connection with no complete request when it fires is closed. HEADER_TIMEOUT is that timer.
- Bodies: a request whose body has not fully arrived BODY_TIMEOUT after its headers is answered 408 (the
  handler's read fails) and the connection closed.
- Connections: beyond MAX_CONNECTIONS in all, or MAX_CONNECTIONS_PER_CLIENT from one address, a new one is
  answered 503 and closed at once. The process's open-file limit is raised to its hard limit, and the overall
  cap kept under it, so a flood cannot take the descriptors the database, the boot files and TFTP need.
"""
from __future__ import annotations

import asyncio
import logging
import resource
from collections import Counter
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger(__name__)

HEADER_TIMEOUT = 10.0
BODY_TIMEOUT = 10.0
MAX_CONNECTIONS = 4096
MAX_CONNECTIONS_PER_CLIENT = 256
RESERVED_FILES = 1024  # descriptors kept for everything but HTTP connections (TFTP transfers are capped at 512)
_REFUSAL = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\nRetry-After: 5\r\n\r\n"


def connection_cap(wanted: int = MAX_CONNECTIONS) -> int:
    """``wanted``, or less if the open-file limit (raised to its hard limit first) cannot hold it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        try:
            soft = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        except (ValueError, OSError):
            soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    cap = min(wanted, soft - RESERVED_FILES)
    if cap < wanted:
        log.warning("imager-server: at most %d HTTP connections (open-file limit %d)", max(cap, 64), soft)
    return max(cap, 64)


class CappedServer(web.Server):
    """aiohttp's connection manager, counting connections overall and per client address."""

    def __init__(self, *args: Any, max_connections: int, max_per_client: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_connections, self.max_per_client = max_connections, max_per_client
        self.per_client: Counter[str] = Counter()
        self._client_of: dict[RequestHandler, str] = {}
        self.refused = 0

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        peer = transport.get_extra_info("peername")
        client = str(peer[0]) if peer else ""
        self._client_of[handler] = client
        self.per_client[client] += 1
        if len(self._client_of) > self.max_connections or self.per_client[client] > self.max_per_client:
            self.refused += 1
            if self.refused % 1000 == 1:  # a flood is logged, not each of its connections
                log.warning("HTTP %s: connection refused, too many (%d refused so far)", client, self.refused)
            transport.write(_REFUSAL)
            handler.force_close()

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        super().connection_lost(handler, exc)
        client = self._client_of.pop(handler, None)
        if client is not None:
            self.per_client[client] -= 1
            if self.per_client[client] <= 0:
                del self.per_client[client]


class GuardedRunner(web.AppRunner):
    """An AppRunner whose server is a CappedServer with the header timeout."""

    def __init__(self, app: web.Application, *, max_connections: int = MAX_CONNECTIONS,
                 max_per_client: int = MAX_CONNECTIONS_PER_CLIENT, header_timeout: float = HEADER_TIMEOUT,
                 **kwargs: Any) -> None:
        super().__init__(app, keepalive_timeout=header_timeout, **kwargs)
        self.max_connections, self.max_per_client = max_connections, max_per_client

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()  # the application started and frozen, aiohttp's settings gathered
        return CappedServer(plain.request_handler, request_factory=plain.request_factory,
                            handler_cancellation=plain.handler_cancellation, max_connections=self.max_connections,
                            max_per_client=self.max_per_client, **plain._kwargs)


class BodyTimeout(web.HTTPRequestTimeout, TimeoutError):
    """408 to the handler's read (answered by the error middleware); a TimeoutError to aiohttp, whose lingering
    read of the rest of the body then closes the connection quietly instead of logging a traceback."""


def body_deadline(timeout: float = BODY_TIMEOUT) -> Any:
    """A middleware: a body still arriving ``timeout`` seconds after its headers makes the handler's read fail
    with 408, and the connection is not kept."""

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        if not request.body_exists:
            return await handler(request)
        content = request.content

        def expire() -> None:
            if not content.is_eof():
                content.set_exception(BodyTimeout(text="the request body took too long"))
                request.protocol.keep_alive(False)

        timer = asyncio.get_running_loop().call_later(timeout, expire)
        try:
            return await handler(request)
        finally:
            timer.cancel()

    return middleware
