"""The client's side of the server API: fetch the task, report progress and the end.

The boot script carries a one-time claim, not the task token: the first call exchanges it for the token
(docs/security.md#task-claims), which every later call carries.  Transient failures (connection
refused, 5xx) are retried with exponential backoff and jitter, so a server
restart or a busy network does not fail a task.  An https server whose
certificate is not the pinned one (imager.server_fp) is never retried.
"""
from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, TypeVar, cast
from urllib.parse import urlsplit

import requests

from imager.errors import RegistrationRefused, ServerError, TaskCanceled
from imager.pinning import identity_error, session_for
from contract.errorcodes import ErrorReport
from contract.task import MulticastSession, Task

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """How often and how patiently a call is tried: exponential delays with ±50 % jitter, so clients that
    lost the server together do not come back together."""

    attempts: int = 8
    base_delay: float = 1.0
    max_delay: float = 30.0

    def delay(self, attempt: int) -> float:
        return min(self.max_delay, self.base_delay * 2 ** attempt) * random.uniform(0.5, 1.5)


@dataclass(frozen=True)
class RetryLater:
    """A caller's verdict on an answer: not final, ask again (after at least ``at_least`` s)."""

    reason: str
    at_least: float = 0.0


def call_with_retries(what: str, server: str, send: Callable[[], requests.Response],
                      judge: Callable[[requests.Response], T | RetryLater], backoff: Backoff) -> T:
    """The client's one retry loop: network errors are tried again, and answers ``judge`` calls RetryLater
    (5xx, a 429); whatever else ``judge`` returns or raises is final. A server whose certificate is not the
    pinned one is never tried again."""
    last = ""
    for attempt in range(backoff.attempts):
        delay = backoff.delay(attempt)
        try:
            response = send()
        except requests.exceptions.SSLError as exc:
            raise identity_error(server, exc) from exc
        except requests.RequestException as exc:
            last = str(exc)
        else:
            verdict = judge(response)
            if not isinstance(verdict, RetryLater):
                return verdict
            last, delay = verdict.reason, max(delay, verdict.at_least)
        if attempt + 1 < backoff.attempts:
            log.warning("server call %s failed (%s); retrying in %.1f s", what, last, delay)
            time.sleep(delay)
    raise ServerError(f"server unreachable for {what} after {backoff.attempts} attempts: {last}")


def server_trouble(response: requests.Response) -> RetryLater | None:
    """5xx: the server is restarting or busy, worth asking again."""
    if response.status_code >= 500:
        return RetryLater(f"HTTP {response.status_code} {reason_of(response)}")
    return None


CLAIM_REFUSED_HINT = ("Another boot claimed this task first: this machine after a reset mid-task, or another "
                      "machine with this MAC. The server's task shows when and from where; cancel the task and "
                      "queue it again.")


class TaskClient:
    """The calls of one task. Give the token (the menu got it when it made the task) or the boot script's
    ``claim``, which ``checkin`` exchanges for the token first."""

    def __init__(self, server: str, task_id: int, token: str | None = None, *, claim: str | None = None,
                 attempts: int = 8, base_delay: float = 1.0, max_delay: float = 30.0, timeout: float = 15.0) -> None:
        if (token is None) == (claim is None):
            raise ValueError("a TaskClient needs the task token or its claim, one of them")
        self.base = f"{server.rstrip('/')}/api/tasks/{task_id}"
        self.server = server
        self.session = session_for(server)
        self.claim = claim
        if token is not None:
            self.session.headers["Authorization"] = f"Bearer {token}"
        self.backoff = Backoff(attempts, base_delay, max_delay)
        self.timeout = timeout

    def exchange_claim(self) -> None:
        """The claim → the task token, once. A claim the server saw before (409) or does not know (401) is
        final: this boot cannot act for the task (ServerError with the server's reason)."""
        if self.claim is None:
            return

        def judge(response: requests.Response) -> str | RetryLater:
            if response.status_code == 200:
                return str(response.json()["token"])
            if response.status_code == 409:
                raise ServerError(f"the server refused this boot's claim: {reason_of(response)}",
                                  hint=CLAIM_REFUSED_HINT)
            if 400 <= response.status_code < 500:
                raise ServerError(f"the server refused this boot's claim: HTTP {response.status_code} "
                                  f"{reason_of(response)}")
            return server_trouble(response) or RetryLater(f"HTTP {response.status_code}")

        claim = self.claim
        token = call_with_retries("claim", self.server, lambda: self.session.post(
            f"{self.base}/claim", json={"claim": claim}, timeout=self.timeout), judge, self.backoff)
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.claim = None

    def checkin(self) -> Task:
        """Fetch the task and tell the server it is running (after exchanging the boot's claim for the token);
        while every storage node that could serve it is full, wait our turn, saying why on the console (the
        agent's log goes there)."""
        self.exchange_claim()
        while True:
            answer = self._post("checkin", {})
            if not answer.get("wait"):
                return cast(Task, answer)  # docs/task-json.md
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

    def ready(self) -> MulticastSession:
        """Multicast: this machine's disk is ready; the answer says wait, join the sender, or fall back."""
        return cast(MulticastSession, self._post("ready", {}))  # docs/task-json.md#multicast-tasks

    def script(self, url: str) -> bytes:
        """A post-deploy script the task listed: a path under this task on this server, fetched with the task
        token (never another host: the URL is a path). 4xx are final (ServerError), network and 5xx retried."""
        prefix = f"{urlsplit(self.base).path}/scripts/"
        if not url.startswith(prefix) or not url[len(prefix):].isdigit():
            raise ServerError(f"the task names a script at {url!r}, not under {prefix}: refused")
        root = self.base[:-len(urlsplit(self.base).path)]

        def judge(response: requests.Response) -> bytes | RetryLater:
            if 400 <= response.status_code < 500:
                raise ServerError(f"server refused the script {url}: HTTP {response.status_code} "
                                  f"{reason_of(response)}")
            return server_trouble(response) or response.content

        return call_with_retries("script", self.server, lambda: self.session.get(root + url, timeout=self.timeout),
                                 judge, Backoff(3, self.backoff.base_delay, self.backoff.max_delay))

    def done(self, result: dict[str, Any]) -> None:
        self._post("done", {"result": result})

    def failed(self, error: ErrorReport, log_tail: str, attempts: int | None = None) -> None:
        self._post("failed", {"error": error, "log": log_tail}, attempts=attempts)

    def _post(self, what: str, body: dict[str, Any], attempts: int | None = None) -> dict[str, Any]:
        if self.claim is not None:  # a claim never exchanged (refused): nothing to send the server
            raise ServerError(f"no task token for {what}: this boot's claim was not exchanged")
        def judge(response: requests.Response) -> dict[str, Any] | RetryLater:
            if response.status_code == 409:
                raise TaskCanceled(reason_of(response) or "the task is no longer active on the server")
            if 400 <= response.status_code < 500:
                raise ServerError(f"server refused {what}: HTTP {response.status_code} {reason_of(response)}")
            return server_trouble(response) or (response.json() if response.content else {})

        backoff = Backoff(attempts, self.backoff.base_delay, self.backoff.max_delay) if attempts else self.backoff
        return call_with_retries(what, self.server, lambda: self.session.post(f"{self.base}/{what}", json=body,
                                                                              timeout=self.timeout), judge, backoff)


def register(server: str, body: dict[str, Any], *, attempts: int = 8, base_delay: float = 1.0,
             max_delay: float = 30.0, timeout: float = 15.0) -> dict[str, Any]:
    """POST /api/register (no token: there is no task yet). A busy server (429, 5xx, no answer) is
    asked again with backoff; a refusal (400, 403, 404, 409) is final and says why."""
    def judge(response: requests.Response) -> dict[str, Any] | RetryLater:
        if response.status_code == 201:
            return dict(response.json())
        if response.status_code == 429:
            return RetryLater(f"HTTP 429 {reason_of(response)}",
                              at_least=float(response.headers.get("Retry-After", "5") or 5))
        refused = server_trouble(response)
        if refused is None:
            raise RegistrationRefused(f"the server refused the registration: HTTP {response.status_code} "
                                      f"{reason_of(response)}")
        return refused

    url = f"{server.rstrip('/')}/api/register"
    return call_with_retries("registration", server, lambda: session_for(server).post(url, json=body, timeout=timeout),
                             judge, Backoff(attempts, base_delay, max_delay))


def reason_of(response: requests.Response) -> str:
    """The server's reason: ``error`` of its JSON answer (``{"error": message, "code": …}``), else the text."""
    try:
        return str(response.json().get("error", ""))
    except ValueError:
        return response.text[:200]
