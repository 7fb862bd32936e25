"""Fixtures for console tests: the whole app (API + console) over a real Store in tmp_path, on loopback,
driven synchronously so tests stay plain functions.

    def test_something(console):                # signed in as admin (the admin token)
        page = console.get("/hosts")            # Page: status, headers, text, doc (parsed), location
        done = console.post("/hosts", {"mac": …, "name": …})   # the csrf field is added; no redirect followed
        assert done.status == 303 and console.store.host("pc1")
        tech = console.user("tech1", "technician")   # another signed-in browser (own cookies) on the same app
"""
from __future__ import annotations

import asyncio
from typing import Any, Iterator, Mapping

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from server_stub.accounts import AUTH
from server_stub.config import ServerConfig
from server_stub.store import Store
from server_stub.webapp import make_app
from tests.server_stub.console.pagetools import Page

ADMIN_TOKEN = "console-test-admin-token-0123456789"
USER_PASSWORD = "correct horse battery staple"

FormData = Mapping[str, Any] | list[tuple[str, Any]]


class Browser:
    """One signed-in browser: its own cookie jar, the page's anti-forgery token in ``csrf``."""

    def __init__(self, harness: "ConsoleHarness", session: aiohttp.ClientSession) -> None:
        self.harness = harness
        self.session = session
        self.csrf = ""

    @property
    def store(self) -> Store:
        return self.harness.store

    @property
    def app(self) -> Any:
        return self.harness.app

    def request(self, method: str, path: str, **kwargs: Any) -> Page:
        async def run() -> Page:
            url = self.harness.client.make_url(path)
            async with self.session.request(method, url, allow_redirects=False, **kwargs) as response:
                return Page(response.status, dict(response.headers), await response.text())
        return self.harness.run(run())

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Page:
        return self.request("GET", path, params=params)

    def post(self, path: str, data: FormData | None = None, csrf: bool = True) -> Page:
        """A form POST; the current anti-forgery token goes with it unless ``csrf`` is False. ``data`` may be a
        list of pairs to send a name more than once (checkboxes)."""
        pairs = list(data.items()) if isinstance(data, Mapping) else list(data or [])
        if csrf and not any(name == "csrf" for name, _ in pairs):
            pairs.append(("csrf", self.csrf))
        expanded = [(name, str(v)) for name, value in pairs
                    for v in (value if isinstance(value, (list, tuple)) else [value])]
        return self.request("POST", path, data=expanded)

    def sign_in(self, name: str, password: str) -> Page:
        done = self.request("POST", "/signin", data={"name": name, "password": password, "next": "/"})
        assert done.status == 303, f"sign-in as {name} refused: {done.status} {done.text[:300]}"
        self.csrf = self.get("/").csrf
        return done

    def user(self, name: str, role: str) -> "Browser":
        """Another browser, signed in as a new user ``name`` with ``role`` (admin or technician)."""
        return self.harness.user(name, role)


class ConsoleHarness:
    def __init__(self, tmp_path: Any) -> None:
        boot = tmp_path / "boot"
        boot.mkdir(exist_ok=True)
        (boot / "vmlinuz").write_bytes(b"kernel")
        (boot / "initrd.img").write_bytes(b"initrd")
        data = tmp_path / "data"
        data.mkdir(exist_ok=True)
        self.loop = asyncio.new_event_loop()
        self.store = Store(str(data / "imager.sqlite3"))
        self.config = ServerConfig(admin_token=ADMIN_TOKEN, boot_dir=str(boot), data_dir=str(data))
        self.app = make_app(self.store, self.config)
        self.client: TestClient[Any, Any] = TestClient(TestServer(self.app, host="127.0.0.1"), loop=self.loop)
        self.run(self.client.start_server())
        self.browsers: list[Browser] = []

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def browser(self) -> Browser:
        async def make() -> aiohttp.ClientSession:
            return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        browser = Browser(self, self.run(make()))
        self.browsers.append(browser)
        return browser

    def user(self, name: str, role: str) -> Browser:
        password_hash = self.run(self.app[AUTH].hash_password(USER_PASSWORD))
        self.store.accounts.add_user(name, role, password_hash)
        browser = self.browser()
        browser.sign_in(name, USER_PASSWORD)
        return browser

    def close(self) -> None:
        for browser in self.browsers:
            self.run(browser.session.close())
        self.run(self.client.close())
        self.loop.close()
        self.store.close()


@pytest.fixture
def console_harness(tmp_path: Any) -> Iterator[ConsoleHarness]:
    harness = ConsoleHarness(tmp_path)
    try:
        yield harness
    finally:
        harness.close()


@pytest.fixture
def console(console_harness: ConsoleHarness) -> Browser:
    """A browser signed in as admin (user ``admin``, the admin token as password)."""
    browser = console_harness.browser()
    browser.sign_in("admin", ADMIN_TOKEN)
    return browser


@pytest.fixture
def technician(console_harness: ConsoleHarness) -> Browser:
    """A browser signed in as the technician ``tech``."""
    return console_harness.user("tech", "technician")


@pytest.fixture
def anonymous(console_harness: ConsoleHarness) -> Browser:
    """A browser that has not signed in."""
    return console_harness.browser()
