"""500 clients booting at once against one imager-server process (loopback only).

    make bench-server      (or: .venv/bin/python bench/server.py [--clients 500] [--seconds 20])

Phase 1, boot storm: every client fetches its per-MAC iPXE script and checks in, all at once.
Phase 2, realistic: every client reports progress every 3 s, as the agent does, for --seconds.
Phase 3, open loop at 2000 requests/s in all (each client every clients/2000 s), for --seconds.
Phase 4, saturation: every client reports progress back to back (closed loop) for --seconds;
its latency is queueing (500 requests in flight / throughput), its rate the server's ceiling.
Prints requests/s, p50/p99 latency and errors per phase.  Goal (issue 4): ≥ 2000 req/s
sustained, p99 < 50 ms, no error.  The load generator shares the machine's 2 cores with the server.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stats:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors = 0

    async def call(self, session: aiohttp.ClientSession, method: str, url: str, **kwargs) -> str | None:
        start = time.perf_counter()
        try:
            async with session.request(method, url, **kwargs) as response:
                body = await response.text()
                ok = response.status < 400
        except aiohttp.ClientError:
            ok, body = False, None
        self.latencies.append(time.perf_counter() - start)
        if not ok:
            self.errors += 1
        return body

    def line(self, name: str, seconds: float) -> str:
        lat = sorted(self.latencies)
        p50 = statistics.median(lat) * 1000 if lat else 0
        p99 = lat[int(len(lat) * 0.99) - 1] * 1000 if lat else 0
        return (f"{name:44} {len(lat):8d} {len(lat) / seconds:9.0f} {p50:8.1f} {p99:8.1f} {self.errors:7d}")


async def run(url: str, admin: dict, clients: int, seconds: float) -> None:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        await session.post(f"{url}/api/storage", json={"name": "main", "export": "10.0.0.1:/images",
                                                            # every client gets a slot: the queue is not measured here
                                                            "max_clients": clients + 10}, headers=admin)
        await session.post(f"{url}/api/images", json={"name": "win10", "storage": "main"}, headers=admin)
        macs = [f"52:54:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}" for i in range(clients)]
        for i, mac in enumerate(macs):
            await session.post(f"{url}/api/hosts", json={"mac": mac, "name": f"pc{i}"}, headers=admin)
            await session.post(f"{url}/api/tasks", json={"host": f"pc{i}", "type": "capture", "image": "win10"},
                               headers=admin)

        print(f"{'phase':44} {'requests':>8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
        storm, tasks = Stats(), {}

        async def boot(mac: str) -> None:
            script = await storm.call(session, "GET", f"{url}/boot/{mac}.ipxe") or ""
            words = dict(w.split("=", 1) for w in script.split() if w.startswith("imager.") and "=" in w)
            task = words.get("imager.task", "0")
            claimed = await storm.call(session, "POST", f"{url}/api/tasks/{task}/claim",
                                       json={"claim": words.get("imager.claim", "")})
            auth = {"Authorization": f"Bearer {json.loads(claimed)['token'] if claimed else ''}"}
            await storm.call(session, "POST", f"{url}/api/tasks/{task}/checkin", json={}, headers=auth)
            tasks[mac] = (task, auth)

        start = time.perf_counter()
        await asyncio.gather(*(boot(mac) for mac in macs))
        print(storm.line(f"boot storm ({clients} clients)", time.perf_counter() - start))

        async def reporter(stats: Stats, task: str, auth: dict, deadline: float, interval: float) -> None:
            """Open loop: one report every ``interval`` s on a fixed schedule (the agent's jitter spreads
            clients over the interval); interval 0: closed loop, back to back."""
            n = 0
            next_at = time.perf_counter() + random.uniform(0, interval)
            while time.perf_counter() < deadline:
                if interval:
                    await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
                    next_at += interval
                n += 1
                await stats.call(session, "POST", f"{url}/api/tasks/{task}/progress",
                                 json={"percent": n % 100, "bytes_done": n, "stage": "partition 1/2"}, headers=auth)

        rate_interval = clients / 2000.0
        for name, interval in (("progress every 3 s", 3.0), ("progress at 2000 req/s in all", rate_interval),
                               ("progress back to back", 0.0)):
            stats = Stats()
            start = time.perf_counter()
            deadline = start + seconds
            await asyncio.gather(*(reporter(stats, t, a, deadline, interval) for t, a in tasks.values()))
            print(stats.line(f"{name} ({clients} clients)", time.perf_counter() - start))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="imager-bench-"))
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "server_stub", "serve", "--bind", "127.0.0.1",
                               "--http-port", str(port), "--tftp-port", str(free_port()), "--data-dir", str(data)],
                              cwd=REPO, stdout=open(data / "server.log", "wb"), stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            if (data / "admin.token").exists():
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    pass
            time.sleep(0.1)
        admin = {"Authorization": "Bearer " + (data / "admin.token").read_text().strip()}
        print(f"=== imager-server under {args.clients} clients, {os.cpu_count()} cores shared with the load ===")
        asyncio.run(run(f"http://127.0.0.1:{port}", admin, args.clients, args.seconds))
    finally:
        server.terminate()
        server.wait(10)
        subprocess.run(["rm", "-rf", str(data)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
