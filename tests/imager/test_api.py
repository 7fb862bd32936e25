"""The client's one retry loop (imager.api.call_with_retries) as its three callers use it: the task calls,
registration and the technician's menu. Pure logic: the answers are scripted, the sleeps recorded."""
from __future__ import annotations

import json

import pytest
import requests

from imager import api, menuapi
from imager.errors import LoginRefused, RegistrationRefused, ServerError, ServerIdentityError, TaskCanceled


def answer(status, body=None, headers=None):
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body if body is not None else {"error": f"said {status}", "code": "x"}).encode()
    response.headers.update(headers or {})
    return response


class Script:
    """Plays the answers (or raises the exceptions) in order, whatever the call."""

    def __init__(self, *steps):
        self.steps, self.calls = list(steps), 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        step = self.steps.pop(0)
        if isinstance(step, Exception):
            raise step
        return step

    post = request = __call__


@pytest.fixture
def sleeps(monkeypatch):
    slept = []
    monkeypatch.setattr(api.time, "sleep", slept.append)
    return slept


def task_client(script, attempts=4):
    client = api.TaskClient("http://s", 3, "tok", attempts=attempts, base_delay=1.0, max_delay=30.0)
    client.session = script
    return client


def test_network_errors_and_5xx_are_retried_with_growing_jittered_delays(sleeps, monkeypatch):
    script = Script(requests.ConnectionError("refused"), answer(503), answer(200, {"id": 3}))
    assert task_client(script).checkin() == {"id": 3}
    assert script.calls == 3
    assert len(sleeps) == 2 and 0.5 <= sleeps[0] <= 1.5 and 1.0 <= sleeps[1] <= 3.0
    jitter = []
    monkeypatch.setattr(api.random, "uniform", lambda low, high: jitter.append((low, high)) or high)
    sleeps.clear()
    task_client(Script(*[answer(500)] * 6, answer(200, {"id": 3})), attempts=7).checkin()
    assert sleeps == [1.5, 3.0, 6.0, 12.0, 24.0, 45.0]   # doubling, capped at 30 s, then the jitter's ×1.5
    assert set(jitter) == {(0.5, 1.5)}


def test_a_4xx_is_final_and_409_means_canceled(sleeps):
    script = Script(answer(404))
    with pytest.raises(ServerError, match="refused done: HTTP 404 said 404"):
        task_client(script).done({})
    with pytest.raises(TaskCanceled, match="said 409"):
        task_client(Script(answer(409))).done({})
    assert script.calls == 1 and sleeps == []


def test_the_last_attempt_fails_with_the_last_reason_and_no_sleep_after_it(sleeps):
    with pytest.raises(ServerError, match="unreachable for ready after 3 attempts: HTTP 500 said 500"):
        task_client(Script(answer(502), requests.Timeout("slow"), answer(500)), attempts=3).ready()
    assert len(sleeps) == 2


def test_a_server_that_is_not_the_pinned_one_is_never_asked_again(sleeps):
    script = Script(requests.exceptions.SSLError("certificate verify failed"), answer(200))
    with pytest.raises(ServerIdentityError):
        task_client(script).checkin()
    assert script.calls == 1 and sleeps == []


def test_registration_waits_as_long_as_a_busy_server_asks_and_a_refusal_is_final(monkeypatch, sleeps):
    script = Script(answer(429, headers={"Retry-After": "7"}), answer(201, {"host": {"name": "mac52"}}))
    monkeypatch.setattr(api, "session_for", lambda server: script)
    assert api.register("http://s", {"mac": "52:54:00:00:00:01"}) == {"host": {"name": "mac52"}}
    assert len(sleeps) == 1 and sleeps[0] >= 7
    monkeypatch.setattr(api, "session_for", lambda server: Script(answer(409)))
    with pytest.raises(RegistrationRefused, match="HTTP 409 said 409"):
        api.register("http://s", {"mac": "52:54:00:00:00:01"})
    assert len(sleeps) == 1


def test_the_menu_retries_a_restarting_server_but_not_a_refusal(sleeps):
    client = menuapi.MenuClient("http://s", "52:54:00:00:00:01", attempts=3)
    client.http = Script(answer(500), answer(200, {"session": "abc", "host": None}))
    assert client.login("pw") is None and client.token == "abc"
    assert len(sleeps) == 1
    client.http = Script(answer(429))
    with pytest.raises(LoginRefused, match="too many attempts"):
        client.login("pw")
    client.http = Script(answer(400))
    with pytest.raises(menuapi.Refused, match="said 400"):
        client.lists()
    assert len(sleeps) == 1
