"""The client's one retry loop (imager.api.call_with_retries) as its three callers use it: the task calls,
registration and the technician's menu. Pure logic: the answers are scripted, the sleeps recorded; the claim
exchange against a real HTTP server on loopback."""
from __future__ import annotations

import asyncio
import json
import threading

import pytest
import requests
from aiohttp import web

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


# --- the boot script's claim, exchanged for the token (docs/security.md#task-claims) -------------------------

class ClaimServer:
    """A real HTTP server on loopback playing the server's side of the claim: ``good`` opens task 3 once."""

    def __init__(self):
        self.calls, self.claimed, self.busy = [], False, 0

    async def claim(self, request):
        body = await request.json()
        self.calls.append(("claim", request.headers.get("Authorization"), body))
        if self.busy:
            self.busy -= 1
            return web.json_response({"error": "restarting", "code": "internal"}, status=503)
        if body.get("claim") != "good":
            return web.json_response({"error": "unknown task or claim", "code": "unauthorized"}, status=401)
        if self.claimed:
            return web.json_response({"error": "task 3 was already claimed from 10.0.0.9", "code": "conflict"},
                                     status=409)
        self.claimed = True
        return web.json_response({"task": 3, "token": "T0KEN"})

    async def call(self, request):
        what = request.match_info["what"]
        self.calls.append((what, request.headers.get("Authorization"), await request.json()))
        if request.headers.get("Authorization") != "Bearer T0KEN":
            return web.json_response({"error": "unknown task or token", "code": "unauthorized"}, status=401)
        return web.json_response({"id": 3, "type": "inventory", "state": "running"} if what == "checkin" else {})


@pytest.fixture
def claim_server():
    """The ClaimServer's aiohttp app in its own thread and loop, on 127.0.0.1; stopped on every path."""
    played = ClaimServer()
    app = web.Application()
    app.add_routes([web.post("/api/tasks/3/claim", played.claim), web.post("/api/tasks/3/{what}", played.call)])
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield played, f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_the_client_exchanges_its_claim_once_then_sends_only_the_token(claim_server):
    played, url = claim_server
    client = api.TaskClient(url, 3, claim="good", attempts=1)
    assert client.checkin()["state"] == "running"
    client.progress({"percent": 1.0})
    client.done({})
    assert played.calls == [("claim", None, {"claim": "good"}), ("checkin", "Bearer T0KEN", {}),
                            ("progress", "Bearer T0KEN", {"percent": 1.0}), ("done", "Bearer T0KEN", {"result": {}})]


def test_a_refused_claim_is_final_says_why_and_sends_nothing_more(claim_server, sleeps):
    played, url = claim_server
    api.TaskClient(url, 3, claim="good", attempts=1).checkin()  # the real client (or a thief) came first
    played.calls.clear()
    second = api.TaskClient(url, 3, claim="good", attempts=4)
    with pytest.raises(ServerError, match="refused this boot's claim: task 3 was already claimed from 10.0.0.9") \
            as refused:
        second.checkin()
    assert refused.value.hint == api.CLAIM_REFUSED_HINT and sleeps == []
    with pytest.raises(ServerError, match="no task token for failed"):
        second.failed({"code": "server", "message": "m", "hint": "", "details": {}}, "")
    with pytest.raises(ServerError, match="HTTP 401 unknown task or claim"):
        api.TaskClient(url, 3, claim="guess", attempts=4).checkin()
    assert [c[0] for c in played.calls] == ["claim", "claim"] and sleeps == []


def test_a_claim_is_asked_again_while_the_server_restarts(claim_server, sleeps):
    played, url = claim_server
    played.busy = 2
    assert api.TaskClient(url, 3, claim="good", attempts=4).checkin()["id"] == 3
    assert [c[0] for c in played.calls] == ["claim", "claim", "claim", "checkin"] and len(sleeps) == 2


def test_a_task_client_takes_the_token_or_the_claim():
    with pytest.raises(ValueError, match="one of them"):
        api.TaskClient("http://s", 3)
    with pytest.raises(ValueError, match="one of them"):
        api.TaskClient("http://s", 3, "tok", claim="c")


def test_the_agent_shows_a_refused_claim_reports_nothing_and_reboots_later(claim_server, monkeypatch):
    """A boot whose task was claimed before (a reset mid-task, or a thief first): the failure screen says
    so, nothing is sent in the task's name, the machine waits fail_wait and reboots."""
    from imager import agent
    played, url = claim_server
    played.claimed = True
    shown, waited = [], []
    monkeypatch.setattr(agent, "show_failure", lambda error, *args, **kwargs: shown.append(error))
    monkeypatch.setattr(agent, "wait_then", lambda seconds, action: waited.append((seconds, action)))
    assert agent.execute(url, 3, None, agent.LogTail(), 7, claim="good") is None
    assert "already claimed from 10.0.0.9" in shown[0].message and shown[0].hint == api.CLAIM_REFUSED_HINT
    assert waited == [(7, "reboot")] and [c[0] for c in played.calls] == ["claim"]
