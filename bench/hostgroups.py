"""Host groups at a large site's scale: 20,000 hosts in 100 groups of 200 (each host in one room group, and every
tenth also in a "windows" group), 100,000 finished tasks. Times the groups list with its state at a glance, one
group's page, one task queued for a 200-host group (and the same again, every host skipped as busy), and
building and sending the magic packets of 200 hosts (to a listener on loopback), over a real Store.

    .venv/bin/python bench/hostgroups.py [--tasks N]
"""
from __future__ import annotations

import argparse
import random
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server_stub.groupqueue import host_groups  # noqa: E402
from server_stub.store import Store  # noqa: E402
from server_stub.wol import WakeTarget, send_magic  # noqa: E402

HOSTS, GROUPS = 20_000, 100


def fill(store: Store, tasks: int) -> None:
    store.add_storage("main", "10.0.0.1:/images")
    rng = random.Random(16)
    now = time.time()
    with store.db.transaction():
        for i in range(GROUPS):
            store.db.execute("INSERT INTO host_groups(name, created) VALUES (?, ?)", f"room{i}", now)
        store.db.execute("INSERT INTO host_groups(name, created) VALUES ('windows', ?)", now)
        for i in range(HOSTS):
            store.db.execute("INSERT INTO hosts(mac, name, created) VALUES (?, ?, ?)",
                             f"52:54:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}", f"pc{i}", now)
            store.db.execute("INSERT INTO host_group_members(group_id, host_id, added) VALUES (?, ?, ?)",
                             i % GROUPS + 1, i + 1, now)
            if i % 10 == 0:
                store.db.execute("INSERT INTO host_group_members(group_id, host_id, added) VALUES (?, ?, ?)",
                                 GROUPS + 1, i + 1, now)
        for i in range(tasks):
            state = "failed" if rng.random() < 0.05 else "done"
            store.db.execute("INSERT INTO tasks(host_id, type, state, token, created, finished) "
                             "VALUES (?, 'inventory', ?, 't', ?, ?)", rng.randrange(HOSTS) + 1, state, now, now)


def timed(what: str, run, repeat: int = 5):  # type: ignore[no-untyped-def]
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    print(f"{what:62s} {best * 1000:8.1f} ms")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(str(Path(tmp) / "bench.sqlite3"))
        fill(store, args.tasks)
        groups = host_groups(store)
        listed = timed(f"groups list, state at a glance ({GROUPS + 1} groups)", groups.groups)
        assert sum(g["hosts"] for g in listed) == HOSTS + HOSTS // 10
        timed("one 200-host group's page (members, active and latest task)", lambda: groups.group_detail("room7"))
        queued = timed("an inventory task for a 200-host group", lambda: groups.queue_for_group(
            "room7", "inventory", None), repeat=1)
        assert len(queued["queued"]) == 200
        again = timed("the same again: every host busy, all skipped", lambda: groups.queue_for_group(
            "room7", "inventory", None), repeat=1)
        assert not again["queued"] and len(again["skipped"]) == 200
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
            listener.bind(("127.0.0.1", 0))
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            packets = [(f"pc{i}", f"52:54:00:00:{i >> 8:02x}:{i & 255:02x}", WakeTarget("127.0.0.1", None, "bench"))
                       for i in range(200)]
            report = timed("magic packets for 200 hosts, 3 each (to loopback)",
                           lambda: send_magic(packets, port=listener.getsockname()[1]), repeat=1)
            assert len(report["sent"]) == 200
        store.close()


if __name__ == "__main__":
    main()
