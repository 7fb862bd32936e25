"""The whole server app (make_app over a real Store in a directory) on loopback, driven synchronously: one
event loop per host, requests from any 127.0.0.0/8 source address, raw bytes when a client library would
refuse them (non-ASCII headers)."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from server_stub.config import ServerConfig
from server_stub.store import Store
from server_stub.webapp import make_app

ADMIN_TOKEN = "fuzz-admin-token-0123456789abcdef"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        """The body as strict JSON: NaN/Infinity in an answer fail here."""
        def refuse(name: str) -> Any:
            raise ValueError(f"{name} in a JSON answer")
        return json.loads(self.body, parse_constant=refuse)


class AppHost:
    def __init__(self, directory: Path, **config: Any) -> None:
        self.directory = directory
        (directory / "boot").mkdir(parents=True, exist_ok=True)
        self.loop = asyncio.new_event_loop()
        self.config = ServerConfig(admin_token=ADMIN_TOKEN, boot_dir=str(directory / "boot"),
                                   data_dir=str(directory), **config)
        self.store = Store(str(directory / "imager.sqlite3"))
        self.app = make_app(self.store, self.config)
        self.server = TestServer(self.app, host="127.0.0.1")
        self.run(self.server.start_server())
        self.sessions: dict[str, aiohttp.ClientSession] = {}

    @property
    def port(self) -> int:
        assert self.server.port is not None
        return self.server.port

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def _session(self, source: str) -> aiohttp.ClientSession:
        """A client from ``source`` (called inside the loop); no cookie jar: tests send cookies themselves."""
        if source not in self.sessions:
            self.sessions[source] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(source, 0), limit=0),
                                                          cookie_jar=aiohttp.DummyCookieJar())
        return self.sessions[source]

    async def arequest(self, method: str, path: str, source: str = "127.0.0.1", **kwargs: Any) -> Reply:
        session = self._session(source)
        async with session.request(method, f"http://127.0.0.1:{self.port}{path}", allow_redirects=False,
                                   **kwargs) as response:
            return Reply(response.status, dict(response.headers), await response.read())

    def request(self, method: str, path: str, source: str = "127.0.0.1", **kwargs: Any) -> Reply:
        return self.run(self.arequest(method, path, source, **kwargs))

    def raw(self, request: bytes) -> Reply:
        """One request written byte for byte (Connection: close is the caller's)."""
        async def send() -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            writer.write(request)
            await writer.drain()
            data = await reader.read()
            writer.close()
            await writer.wait_closed()
            return data
        data = self.run(send())
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        return Reply(int(lines[0].split()[1]), headers, body)

    def restart(self) -> None:
        """A new app on the same directory and database, as after a server restart."""
        self.close()
        self.__init__(self.directory)  # type: ignore[misc]

    def close(self) -> None:
        for session in self.sessions.values():
            self.run(session.close())
        self.run(self.server.close())
        self.loop.close()
        self.store.close()
