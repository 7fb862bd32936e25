"""Limits that hold under concurrency and across a restart (issue 13): menu logins and registrations are counted
per MAC and per source address before the work they guard; a menu session acts only for its own machine."""
from __future__ import annotations

import asyncio
import time
from typing import Iterator

import pytest

from server_stub import menuapi
from server_stub.store.limits import AttemptLimits, Limit
from server_stub.store.menu import password_matches
from tests.fuzz.apphost import ADMIN, ADMIN_TOKEN, AppHost

MAC = "52:54:00:00:13:01"
OTHER = "52:54:00:00:13:02"
PASSWORD = "technician-secret"
INVENTORY = {"dmi": {}, "cpu": {"model": "x", "sockets": 1, "cores": 1, "threads": 1}, "memory_bytes": 2**30,
             "disks": [], "nics": []}


@pytest.fixture
def host(tmp_path) -> Iterator[AppHost]:
    served = AppHost(tmp_path)
    try:
        yield served
    finally:
        served.close()


def login(host: AppHost, password: str, mac: str = MAC, source: str = "127.0.0.1"):
    return host.request("POST", "/api/menu/login", json={"mac": mac, "password": password}, source=source)


def test_concurrent_guesses_are_counted_before_the_password_check(host, monkeypatch):
    """100 wrong guesses at once, then the right one while they are being checked: only LOGINS_PER_MAC are
    checked at all, the rest and the right one are refused unchecked."""
    host.store.set_technician_password(PASSWORD)
    checked: list[str] = []

    def counted(stored: str, password: str) -> bool:
        checked.append(password)
        return password_matches(stored, password)
    monkeypatch.setattr(menuapi, "password_matches", counted)

    async def attack() -> tuple[list[int], int]:
        body = {"mac": MAC, "password": "wrong-guess"}
        guesses = [asyncio.ensure_future(host.arequest("POST", "/api/menu/login", json=body)) for _ in range(100)]
        await asyncio.sleep(0.5)  # every guess has reached the server; PBKDF2 checks are still running
        right = await host.arequest("POST", "/api/menu/login", json={"mac": MAC, "password": PASSWORD})
        return [r.status for r in await asyncio.gather(*guesses)], right.status

    statuses, right = host.run(attack())
    assert right == 429
    assert statuses.count(401) == menuapi.LOGINS_PER_MAC and statuses.count(429) == 100 - menuapi.LOGINS_PER_MAC
    assert len(checked) == menuapi.LOGINS_PER_MAC and PASSWORD not in checked


def test_login_limits_survive_a_restart(host):
    for _ in range(menuapi.LOGINS_PER_MAC):
        assert login(host, "wrong").status == 401
    host.restart()  # a new app on the same database
    refused = login(host, ADMIN_TOKEN)
    assert refused.status == 429 and 50 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.json()["code"] == "rate_limited"
    assert login(host, ADMIN_TOKEN, mac=OTHER, source="127.0.0.2").status == 200  # another machine, elsewhere


def test_logins_are_limited_per_source_address(host):
    macs = [f"52:54:00:00:14:{i:02x}" for i in range(menuapi.LOGINS_PER_ADDRESS)]
    for mac in macs:  # a new MAC each time: the address is what counts
        assert login(host, "wrong", mac=mac).status == 401
    assert login(host, ADMIN_TOKEN, mac="52:54:00:00:15:01").status == 429
    assert login(host, ADMIN_TOKEN, mac="52:54:00:00:15:01", source="127.0.0.2").status == 200


def test_a_right_login_does_not_count_against_its_machine(host):
    for _ in range(menuapi.LOGINS_PER_MAC * 2):
        assert login(host, ADMIN_TOKEN).status == 200


def register(host: AppHost, mac: str, source: str = "127.0.0.1"):
    return host.request("POST", "/api/register", json={"mac": mac, "inventory": INVENTORY}, source=source)


def test_registrations_are_limited_per_mac_and_address_across_a_restart(host):
    assert register(host, MAC).status == 201
    for _ in range(menuapi.REGISTRATIONS_PER_MAC - 1):
        assert register(host, MAC).status == 409  # known already: still an attempt
    assert register(host, MAC, source="127.0.0.2").status == 429  # the MAC's count, from anywhere
    for i in range(menuapi.REGISTRATIONS_PER_ADDRESS - menuapi.REGISTRATIONS_PER_MAC):
        assert register(host, f"52:54:00:00:16:{i:02x}").status == 201
    host.restart()
    assert register(host, "52:54:00:00:17:01").status == 429  # the address's count
    assert register(host, "52:54:00:00:17:01", source="127.0.0.3").status == 201


def test_a_menu_session_acts_only_for_its_own_machine(host):
    assert host.request("POST", "/api/storage", json={"name": "main", "export": "10.0.0.1:/images"},
                        headers=ADMIN).status == 201
    assert register(host, MAC).status == 201 and register(host, OTHER).status == 201
    session = login(host, ADMIN_TOKEN).json()["session"]
    bearer = {"Authorization": f"Bearer {session}"}
    assert host.request("GET", "/api/menu/lists", headers=bearer).status == 200
    # From another address, the session is no session (a token read off the wire opens nothing elsewhere).
    assert host.request("GET", "/api/menu/lists", headers=bearer, source="127.0.0.2").status == 401
    stolen = host.request("POST", "/api/menu/tasks", json={"type": "inventory"}, headers=bearer, source="127.0.0.2")
    assert stolen.status == 401
    # Naming another machine is refused, whatever the call.
    for method, path, body in [("POST", "/api/menu/tasks", {"type": "inventory", "mac": OTHER}),
                               ("POST", "/api/menu/images", {"name": "other-image", "mac": OTHER}),
                               ("GET", f"/api/menu/lists?mac={OTHER}", None)]:
        refused = host.request(method, path, json=body, headers=bearer)
        assert refused.status == 403 and MAC in refused.json()["error"], (path, refused.body)
    assert [i["name"] for i in host.store.images()] == [] and host.store.tasks() == []
    done = host.request("POST", "/api/menu/tasks", json={"type": "inventory", "mac": MAC.upper()}, headers=bearer)
    assert done.status == 201 and done.json()["task"]["mac"] == MAC


def test_attempts_are_taken_atomically_and_given_back(host):
    limits = AttemptLimits(host.store.db)
    rule = [Limit("k", 2, 60)]
    first, second = limits.take(rule, now=1000), limits.take(rule, now=1001)
    assert first.retry_after == 0 and second.retry_after == 0
    assert limits.take(rule, now=1002).retry_after == 59  # the oldest leaves the window at 1060
    limits.give_back(second)
    assert limits.take(rule, now=1003).retry_after == 0
    assert limits.take(rule, now=1061).retry_after == 0  # 1000 aged out; 1003 and 1061 remain
    assert limits.attempts("k", 60, now=1061) == 2


@pytest.mark.parametrize("remote, key", [("10.0.0.7", "10.0.0.7"), ("2001:db8::1", "2001:db8::/64"),
                                         ("2001:db8::ffff:1", "2001:db8::/64"), ("::ffff:10.0.0.7", "10.0.0.7"),
                                         (None, "None")])
def test_an_ipv6_address_counts_by_its_64(remote, key):
    assert menuapi.address_key(remote) == key


def test_time_is_wall_clock_so_a_restart_keeps_it(host):
    limits = AttemptLimits(host.store.db)
    limits.take([Limit("clock", 1, 60)])
    stored = host.store.db.scalar("SELECT time FROM limit_attempts WHERE key = 'clock'")
    assert abs(stored - time.time()) < 5


def test_an_attempt_that_cannot_be_counted_is_refused(host):
    """The limits fail closed: a database that refuses writes (a full disk) refuses the login, 429, not a 500."""
    host.store.db.execute("PRAGMA query_only = ON")
    try:
        refused = login(host, ADMIN_TOKEN)
        assert refused.status == 429 and refused.json()["code"] == "rate_limited"
    finally:
        host.store.db.execute("PRAGMA query_only = OFF")
    assert login(host, ADMIN_TOKEN).status == 200
