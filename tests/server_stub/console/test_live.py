"""Live updates: a client's progress report, posted through the real client API, reaches an open console page's
event stream within 2 s; reports are coalesced; only signed-in sessions may listen, and only so many."""
from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import aiohttp

from server_stub.console.live import LIVE, QUEUE_EVENTS, Subscriber
from server_stub.store import Store
from tests.server_stub.console.conftest import ADMIN_TOKEN, Browser


def running_task(store: Store, host: str = "pc1", mac: str = "52:54:00:00:00:01") -> dict[str, Any]:
    store.add_host(mac, host)
    task = store.add_task(host, "inventory", None)
    store.start_task(task["id"])
    return dict(store.task(task["id"]))


class Stream:
    """An open ``GET /events`` read the way EventSource reads it: events separated by blank lines."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def next_event(self, timeout: float) -> tuple[str, Any] | None:
        """(event name, decoded data) of the next event (comments skipped); None at the end of the stream."""
        name, data = "message", ""
        while True:
            line = (await asyncio.wait_for(self.response.content.readline(), timeout)).decode()
            if not line:
                return None
            line = line.rstrip("\n")
            if line == "":
                if data:
                    return name, json.loads(data)
                name = "message"
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(": ")
            if field == "event":
                name = value
            elif field == "data":
                data += value

    async def updates_until_quiet(self, quiet: float) -> list[Any]:
        found: list[Any] = []
        while True:
            try:
                event = await self.next_event(quiet)
            except asyncio.TimeoutError:
                return found
            if event is None:
                return found
            if event[0] == "update":
                found.append(event[1])


async def open_stream(browser: Browser) -> Stream:
    response = await browser.session.get(browser.harness.client.make_url("/events"))
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/event-stream")
    return Stream(response)


async def refusal(browser: Browser, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """(status, text) of a ``GET /events`` expected to be refused; a stream that opens instead is closed
    at once, so a wrongly granted stream fails the test rather than hanging it."""
    async with browser.session.get(browser.harness.client.make_url("/events"), headers=headers or {}) as answer:
        if answer.status == 200:
            return 200, ""
        return answer.status, await asyncio.wait_for(answer.text(), 5)


async def report(browser: Browser, task: dict[str, Any], percent: float) -> None:
    url = browser.harness.client.make_url(f"/api/tasks/{task['id']}/progress")
    body = {"stage": "partition 1/2", "bytes_done": int(percent * 10**7), "bytes_total": 10**9,
            "percent": percent, "rate_bps": 50 * 2**20, "eta_s": 12}
    async with browser.session.post(url, json=body, headers={"Authorization": f"Bearer {task['token']}"}) as answer:
        assert answer.status == 200, await answer.text()


def test_progress_report_reaches_open_page_within_2_seconds(console: Browser) -> None:
    task = running_task(console.store)

    async def scenario() -> tuple[float, dict[str, Any]]:
        stream = await open_stream(console)
        try:
            started = time.monotonic()
            await report(console, task, 42.5)
            while True:
                event = await stream.next_event(2.0)
                assert event is not None, "the stream ended"
                if event[0] == "update" and any(t["id"] == task["id"] for t in event[1]["tasks"]):
                    update = next(t for t in event[1]["tasks"] if t["id"] == task["id"])
                    return time.monotonic() - started, update
        finally:
            stream.response.close()
    elapsed, update = console.harness.run(scenario())
    assert elapsed < 2.0
    assert update["percent"] == 42.5 and update["state"] == "running" and update["stage"] == "partition 1/2"
    assert update["text"]["percent"] == "42.5 %"
    assert update["text"]["rate"] == "50.0 MiB/s"


def test_cancel_and_multicast_changes_reach_the_page(console: Browser) -> None:
    store = console.store
    task = running_task(store)

    async def scenario() -> list[Any]:
        stream = await open_stream(console)
        try:
            url = console.harness.client.make_url(f"/api/tasks/{task['id']}/cancel")
            async with console.session.post(url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as answer:
                assert answer.status == 200, await answer.text()
            return await stream.updates_until_quiet(1.5)
        finally:
            stream.response.close()
    updates = console.harness.run(scenario())
    states = [t["state"] for u in updates for t in u["tasks"] if t["id"] == task["id"]]
    assert states == ["canceled"]


def test_reports_are_coalesced_into_at_most_one_event_a_second(console: Browser) -> None:
    task = running_task(console.store)

    async def scenario() -> list[Any]:
        stream = await open_stream(console)
        try:
            started = time.monotonic()
            for n in range(50):
                await report(console, task, float(n + 1))
                await asyncio.sleep(max(0.0, started + (n + 1) * 0.018 - time.monotonic()))
            assert time.monotonic() - started < 1.0, "the reports took too long for this test to mean anything"
            return await stream.updates_until_quiet(1.6)
        finally:
            stream.response.close()
    updates = console.harness.run(scenario())
    percents = [t["percent"] for u in updates for t in u["tasks"] if t["id"] == task["id"]]
    assert 1 <= len(percents) <= 2, percents
    assert percents[-1] == 50.0  # the newest state arrives


def test_session_changes_reach_the_page(console: Browser) -> None:
    store = console.store
    store.add_storage("main", "10.0.0.1:/images")
    store.add_image("win10", "main")
    for n in (1, 2):
        store.add_host(f"52:54:00:00:00:0{n}", f"pc{n}")
    session = store.add_session(store.image("win10"), ["pc1", "pc2"], min_receivers=2, max_wait=600, rate=None,
                                interface=None, image_dir="/images/win10", version="v1", files=["a.img"],
                                storage_id=store.storage("main")["id"])
    first = session["clients"][0]["task_id"]

    async def scenario() -> list[Any]:
        stream = await open_stream(console)
        try:
            store.multicast_checkin(store.task(first), "10.0.0.5")
            return await stream.updates_until_quiet(1.5)
        finally:
            stream.response.close()
    updates = console.harness.run(scenario())
    sessions = [s for u in updates for s in u["sessions"] if s["id"] == session["id"]]
    assert sessions, updates
    clients = {c["host"]: c["state"] for c in sessions[-1]["clients"]}
    assert clients == {"pc1": "joined", "pc2": "queued"}


def test_only_signed_in_sessions_may_listen(anonymous: Browser) -> None:
    code, text = anonymous.harness.run(refusal(anonymous))
    assert code == 401 and "sign in" in text
    # The admin token is for scripts, which poll the API; a stream is for a console page.
    code, _ = anonymous.harness.run(refusal(anonymous, {"Authorization": f"Bearer {ADMIN_TOKEN}"}))
    assert code == 401


def test_open_streams_are_limited_per_user_and_overall(console: Browser, technician: Browser) -> None:
    hub = console.app[LIVE]
    hub.max_per_user, hub.max_subscribers = 2, 3

    async def scenario() -> tuple[int, str, int, int, str]:
        streams = [await open_stream(console), await open_stream(console)]
        try:
            per_user = await refusal(console)
            streams.append(await open_stream(technician))  # another user still may
            overall = await refusal(technician)
            return per_user[0], per_user[1], len(hub.subscribers), overall[0], overall[1]
        finally:
            for stream in streams:
                stream.response.close()
    per_user_status, per_user_text, open_count, overall_status, overall_text = console.harness.run(scenario())
    assert per_user_status == 429 and "2 console pages open already" in per_user_text
    assert open_count == 3
    assert overall_status == 503 and "3 live pages open" in overall_text


def test_closed_pages_leave_and_nothing_is_built_without_listeners(console: Browser) -> None:
    hub = console.app[LIVE]
    task = running_task(console.store)

    async def scenario() -> tuple[int, list[Any]]:
        stream = await open_stream(console)
        stream.response.close()
        for _ in range(50):  # the server notices the closed connection
            if not hub.subscribers:
                break
            await asyncio.sleep(0.05)
        left = len(hub.subscribers)
        await report(console, task, 10.0)
        await asyncio.sleep(1.2)
        later = await open_stream(console)  # a page opened later is not sent what changed before it
        try:
            return left, await later.updates_until_quiet(1.5)
        finally:
            later.response.close()
    left, updates = console.harness.run(scenario())
    assert left == 0
    assert updates == []
    assert hub.events_sent == 0


def test_server_shutdown_ends_open_streams(console: Browser) -> None:
    hub = console.app[LIVE]

    async def scenario() -> Any:
        stream = await open_stream(console)
        try:
            await hub.close()
            return await stream.next_event(2.0)
        finally:
            stream.response.close()
    assert console.harness.run(scenario()) is None  # the stream ended, not timed out


def test_a_slow_reader_is_told_to_reload_instead_of_queueing_more() -> None:
    subscriber = Subscriber("admin")
    for n in range(QUEUE_EVENTS):
        subscriber.offer(b"event %d" % n)
    assert not subscriber.stale and len(subscriber.queue) == QUEUE_EVENTS
    subscriber.offer(b"one too many")
    assert subscriber.stale and len(subscriber.queue) == 0
    subscriber.offer(b"later")
    assert len(subscriber.queue) == 0


def test_a_change_made_in_a_worker_thread_reaches_the_page(console: Browser) -> None:
    """The multicast runner's threads change the store too (udp-sender's drops): their news must wake the loop."""
    task = running_task(console.store)

    async def scenario() -> tuple[float, Any]:
        stream = await open_stream(console)
        try:
            await asyncio.sleep(1.2)
            # A plain thread, not awaited: the loop sleeps until the thread's change itself wakes it.
            worker = threading.Thread(target=console.store.record_progress, args=(task["id"], {"percent": 77.0}))
            started = time.monotonic()
            worker.start()
            event = await stream.next_event(3.0)
            worker.join()
            return time.monotonic() - started, event
        finally:
            stream.response.close()
    elapsed, event = console.harness.run(scenario())
    assert event is not None and event[0] == "update"
    assert [t["percent"] for t in event[1]["tasks"]] == [77.0]
    assert elapsed < 1.0
