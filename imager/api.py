"""The client's side of the server API: fetch the task, report progress and the end.

Every call carries the per-task token.  Transient failures (connection
refused, 5xx) are retried with exponential backoff and jitter, so a server
restart or a busy network does not fail a task.  An https server whose
certificate is not the pinned one (imager.server_fp) is never retried.
"""
from __future__ import annotations

import logging
import random
import time
from typing import Any

import requests

from imager.errors import RegistrationRefused, ServerError, TaskCanceled
from imager.pinning import identity_error, session_for

log = logging.getLogger(__name__)


class TaskClient:
    def __init__(self, server: str, task_id: int, token: str, *, attempts: int = 8,
                 base_delay: float = 1.0, max_delay: float = 30.0, timeout: float = 15.0) -> None:
        self.base = f"{server.rstrip('/')}/api/tasks/{task_id}"
        self.server = server
        self.session = session_for(server)
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.timeout = timeout

    def checkin(self) -> dict[str, Any]:
        """Fetch the task and tell the server it is running; while every storage node that could serve it
        is full, wait our turn, saying why on the console (the agent's log goes there)."""
        while True:
            answer = self._post("checkin", {})
            if not answer.get("wait"):
                return answer
            retry = min(60.0, max(1.0, float(answer.get("retry_after", 5))))
            log.warning("%s; asking again in %.0f s", answer.get("reason") or answer.get("message")
                        or "the server asks this machine to wait", retry)
            time.sleep(retry)

    def progress(self, snapshot: dict[str, Any]) -> None:
        """Best effort: a lost progress report must not fail the task; a cancel must stop it."""
        try:
            self._post("progress", snapshot, attempts=1)
        except ServerError as exc:
            log.warning("progress not reported: %s", exc.message)

    def ready(self) -> dict[str, Any]:
        """Multicast: this machine's disk is ready; the answer says wait, join the sender, or fall back."""
        return self._post("ready", {})

    def done(self, result: dict[str, Any]) -> None:
        self._post("done", {"result": result})

    def failed(self, error: dict[str, Any], log_tail: str, attempts: int | None = None) -> None:
        self._post("failed", {"error": error, "log": log_tail}, attempts=attempts)

    def _post(self, what: str, body: dict, attempts: int | None = None) -> dict[str, Any]:
        url = f"{self.base}/{what}"
        attempts = attempts or self.attempts
        last = ""
        for attempt in range(attempts):
            try:
                response = self.session.post(url, json=body, timeout=self.timeout)
            except requests.exceptions.SSLError as exc:
                raise identity_error(self.server, exc) from exc
            except requests.RequestException as exc:
                last = str(exc)
            else:
                if response.status_code == 409:
                    raise TaskCanceled(reason_of(response) or "the task is no longer active on the server")
                if response.status_code < 500:
                    if response.status_code >= 400:
                        raise ServerError(f"server refused {what}: HTTP {response.status_code} {reason_of(response)}")
                    return response.json() if response.content else {}
                last = f"HTTP {response.status_code} {reason_of(response)}"
            if attempt + 1 < attempts:
                delay = min(self.max_delay, self.base_delay * 2 ** attempt) * random.uniform(0.5, 1.5)
                log.warning("server call %s failed (%s); retrying in %.1f s", what, last, delay)
                time.sleep(delay)
        raise ServerError(f"server unreachable for {what} after {attempts} attempts: {last}")


def register(server: str, body: dict[str, Any], *, attempts: int = 8, base_delay: float = 1.0,
             max_delay: float = 30.0, timeout: float = 15.0) -> dict[str, Any]:
    """POST /api/register (no token: there is no task yet). A busy server (429, 5xx, no answer) is
    asked again with backoff; a refusal (400, 403, 404, 409) is final and says why."""
    url = f"{server.rstrip('/')}/api/register"
    last = ""
    for attempt in range(attempts):
        delay = min(max_delay, base_delay * 2 ** attempt) * random.uniform(0.5, 1.5)
        try:
            response = session_for(server).post(url, json=body, timeout=timeout)
        except requests.exceptions.SSLError as exc:
            raise identity_error(server, exc) from exc
        except requests.RequestException as exc:
            last = str(exc)
        else:
            if response.status_code == 201:
                return response.json()
            last = f"HTTP {response.status_code} {reason_of(response)}"
            if response.status_code == 429:
                delay = max(delay, float(response.headers.get("Retry-After", "5") or 5))
            elif response.status_code < 500:
                raise RegistrationRefused(f"the server refused the registration: {last}")
        if attempt + 1 < attempts:
            log.warning("registration failed (%s); retrying in %.1f s", last, delay)
            time.sleep(delay)
    raise ServerError(f"server unreachable for registration after {attempts} attempts: {last}")


def reason_of(response: requests.Response) -> str:
    try:
        return str(response.json().get("error", ""))
    except ValueError:
        return response.text[:200]
