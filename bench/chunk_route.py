"""How fast the imager server's chunk route serves a deploy (issue 17, docs/http-transport.md#chunks).

A real ``imager-server serve`` on loopback (its own data directory, removed afterwards), a node with
``http_url server`` over a chunk store of random chunks (incompressible: the size a chunked capture stores
for 64 KiB of used data at worst), a running deploy task whose token comes from its boot script's claim, and a
client fetching every chunk once with 16 requests in flight (as imager/httpstore.py does), checking each one's
SHA-256. Prints chunks/s, MB/s and the server process's CPU seconds per 1000 chunks.

``python3 -m bench.chunk_route [--chunks 3000] [--kib 48] [--parallel 16]``
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import requests

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def chunk_store(root: Path, count: int, size: int) -> list[str]:
    names = []
    for _ in range(count):
        data = os.urandom(size)
        sha = hashlib.sha256(data).hexdigest()
        folder = root / ".chunks" / sha[:2]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{sha}.zst").write_bytes(data)
        names.append(sha)
    return names


def claimed(url: str, mac: str) -> tuple[int, dict[str, str]]:
    """What a booting machine does: its boot script's claim exchanged for the task token."""
    script = requests.get(f"{url}/boot/{mac}.ipxe", timeout=10).text
    words = dict(w.split("=", 1) for w in script.split() if w.startswith(("imager.task=", "imager.claim=")))
    task_id = int(words["imager.task"])
    answer = requests.post(f"{url}/api/tasks/{task_id}/claim", json={"claim": words["imager.claim"]}, timeout=10)
    assert answer.ok, answer.text
    return task_id, {"Authorization": f"Bearer {answer.json()['token']}"}


def running_deploy(url: str, admin: dict[str, str], root: Path) -> tuple[str, dict[str, str]]:
    """A node served by this server, an image (captured once), a host and its deploy checked in:
    (the checkin's chunks_url, the deploy's token header)."""
    def api(method: str, path: str, body: dict[str, Any], header: dict[str, str] = admin) -> dict[str, Any]:
        answer = requests.request(method, url + path, json=body, headers=header, timeout=10)
        assert answer.ok, answer.text
        return dict(answer.json())
    mac = "52:54:00:00:00:01"
    api("POST", "/api/storage", {"name": "node", "export": "127.0.0.1:/images", "rsync_target": str(root),
                                 "http_url": "server"})
    api("POST", "/api/images", {"name": "inc", "storage": "node", "format": "chunked"})
    api("POST", "/api/hosts", {"mac": mac, "name": "pc1"})
    for task_type in ("capture", "deploy"):
        api("POST", "/api/tasks", {"host": "pc1", "type": task_type, "image": "inc"})
        task_id, token = claimed(url, mac)
        checkin = api("POST", f"/api/tasks/{task_id}/checkin", {}, token)
        if task_type == "capture":
            api("POST", f"/api/tasks/{task_id}/done", {"result": {"stored_bytes": 1}}, token)
    return url + checkin["storage"]["chunks_url"], token


async def fetch_all(base: str, header: dict[str, str], names: list[str], parallel: int) -> int:
    queue = list(reversed(names))
    moved = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal moved
        while queue:
            sha = queue.pop()
            async with session.get(f"{base}{sha[:2]}/{sha}.zst", headers=header) as answer:
                assert answer.status == 200, (answer.status, await answer.text())
                data = await answer.read()
            assert hashlib.sha256(data).hexdigest() == sha
            moved += len(data)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=parallel)) as session:
        await asyncio.gather(*(worker(session) for _ in range(parallel)))
    return moved


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=3000)
    parser.add_argument("--kib", type=int, default=48, help="each chunk's stored size")
    parser.add_argument("--parallel", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="chunk-route-") as tmp:
        root, data = Path(tmp, "node"), Path(tmp, "data")
        root.mkdir()
        names = chunk_store(root, args.chunks, args.kib * 1024)
        port = free_port()
        profile = ["-m", "cProfile", "-o", os.environ["CHUNK_ROUTE_PROFILE"]] if os.environ.get("CHUNK_ROUTE_PROFILE") else []
        argv = [sys.executable, *profile, "-m", "server_stub", "serve", "--bind", "127.0.0.1", "--http-port", str(port),
                "--tftp-port", str(free_port()), "--data-dir", str(data), "--boot-dir", tmp]
        server = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=open(os.environ.get("CHUNK_ROUTE_LOG", os.devnull), "wb"))
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    requests.get(f"{url}/boot.ipxe", timeout=1)
                    break
                except requests.ConnectionError:
                    time.sleep(0.1)
            admin = {"Authorization": "Bearer " + (data / "admin.token").read_text().strip()}
            base, header = running_deploy(url, admin, root)
            cpu_before, started = cpu_seconds(server.pid), time.monotonic()
            moved = asyncio.run(fetch_all(base, header, names, args.parallel))
            seconds, cpu = time.monotonic() - started, cpu_seconds(server.pid) - cpu_before
        finally:
            server.terminate()
            server.wait(10)
    print(f"{args.chunks} chunks of {args.kib} KiB, {args.parallel} in flight over loopback: {seconds:.2f} s, "
          f"{args.chunks / seconds:.0f} chunks/s, {moved / seconds / 1e6:.1f} MB/s "
          f"({moved * 8 / seconds / 1e6:.0f} Mbit/s); server CPU {cpu / args.chunks * 1000:.2f} s per 1000 chunks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
