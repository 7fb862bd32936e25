"""The menu's side of the server API: log in, read the lists, create this machine's tasks.

The session token (from the technician's password, docs/task-json.md#the-technicians-menu) is only
held in memory; a task created here is then run with its own task token, like any boot with a task.
"""
from __future__ import annotations

import logging
from typing import Any

import requests

from imager.api import Backoff, RetryLater, call_with_retries, reason_of, server_trouble
from imager.errors import ImagerError, LoginRefused
from imager.pinning import session_for

log = logging.getLogger(__name__)


class Refused(ImagerError):
    """The server said no (400/404/409) and why; the menu shows it and carries on."""
    code = "server"  # the server refused (contract.errorcodes); never reported, the menu shows it
    hint = ""


class MenuClient:
    def __init__(self, server: str, mac: str, *, attempts: int = 4, timeout: float = 15.0) -> None:
        self.server, self.mac = server.rstrip("/"), mac
        self.http = session_for(self.server)
        self.backoff = Backoff(attempts, base_delay=1.0, max_delay=8.0)
        self.timeout = timeout
        self.token: str | None = None

    @property
    def logged_in(self) -> bool:
        return self.token is not None

    def login(self, password: str) -> dict[str, Any] | None:
        """Exchange the technician's password for a session; the host record of this MAC, or None."""
        answer = self._call("POST", "/api/menu/login", {"mac": self.mac, "password": password}, auth=False)
        self.token = answer["session"]
        return answer.get("host")

    def lists(self) -> dict[str, Any]:
        return self._call("GET", "/api/menu/lists")

    def add_image(self, name: str, type_: str, group: str | None = None) -> dict[str, Any]:
        return self._call("POST", "/api/menu/images", {"name": name, "type": type_, "group": group})

    def create_task(self, type_: str, **fields: Any) -> tuple[int, str]:
        """A task for this machine: (task id, its token)."""
        body = {"type": type_, **{k: v for k, v in fields.items() if v is not None}}
        answer = self._call("POST", "/api/menu/tasks", body)
        return answer["task"]["id"], answer["token"]

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None, auth: bool = True) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.token}"} if auth and self.token else {}

        def judge(response: requests.Response) -> dict[str, Any] | RetryLater:
            reason = reason_of(response)
            if response.status_code == 401:
                self.token = None  # expired or wrong: the menu asks for the password again
                raise LoginRefused(f"the server refused the login: {reason}")
            if response.status_code == 429:  # the technician waits, not the menu
                raise LoginRefused(f"too many attempts: {reason}", hint="Wait a minute, then try again.")
            if 400 <= response.status_code < 500:
                raise Refused(reason or f"HTTP {response.status_code}")
            return server_trouble(response) or dict(response.json())

        return call_with_retries(f"{method} {path}", self.server, lambda: self.http.request(
            method, self.server + path, json=body, headers=headers, timeout=self.timeout), judge, self.backoff)
