"""How many range requests in flight a deploy over HTTP needs (issue 17, docs/http-transport.md).

Two network namespaces of its own (unique names, removed on every path) joined by a veth pair shaped with tbf
(the rate, both ends; this kernel has no netem, so the server waits one round trip before each answer, as a
request's first byte would); aiohttp's FileResponse (what the imager server's route uses) serves a random file
in one, ``imager.httpstore.RemoteStream`` reads it in the other with 1, 2, 4 and 8 requests in flight.
Prints MB/s for each. Root only. ``python3 -m bench.http_fetch [--rate 200] [--rtt 20] [--mib 128]`` (Mbit/s, ms)
"""
from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SERVER = """
import asyncio, sys
from aiohttp import web
async def serve(request):
    await asyncio.sleep(float(sys.argv[2]) / 1000)  # one round trip before the first byte
    return web.FileResponse(sys.argv[1])
app = web.Application()
app.router.add_get("/{name}", serve)
web.run_app(app, host="10.99.0.1", port=8099, print=None)
"""

CLIENT = """
import sys, time, requests
from imager import httpstore
size, parallel = int(sys.argv[1]), int(sys.argv[2])
remote = httpstore.Remote("http://10.99.0.1:8099/", requests.Session(), parallel=parallel)
buf = bytearray(4 * 1024 * 1024)
started = time.monotonic()
with httpstore.RemoteStream(remote, "blob", size) as stream:
    got = 0
    while n := stream.readinto(buf):
        got += n
assert got == size, got
print(time.monotonic() - started)
"""


def sh(*argv: str, check: bool = True) -> None:
    subprocess.run(argv, check=check, capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=200, help="Mbit/s")
    parser.add_argument("--rtt", type=float, default=20.0, help="ms before each answer's first byte")
    parser.add_argument("--mib", type=int, default=128)
    args = parser.parse_args()
    tag = secrets.token_hex(3)
    srv, cli = f"imgh-s-{tag}", f"imgh-c-{tag}"
    repo = str(Path(__file__).resolve().parents[1])
    server = None
    with tempfile.TemporaryDirectory() as tmp:
        blob = Path(tmp) / "blob"
        blob.write_bytes(os.urandom(args.mib * 1024 * 1024))
        try:
            sh("ip", "netns", "add", srv)
            sh("ip", "netns", "add", cli)
            sh("ip", "link", "add", f"hs-{tag}", "netns", srv, "type", "veth", "peer", "name", f"hc-{tag}", "netns", cli)
            for ns, dev, addr in ((srv, f"hs-{tag}", "10.99.0.1/24"), (cli, f"hc-{tag}", "10.99.0.2/24")):
                sh("ip", "-n", ns, "addr", "add", addr, "dev", dev)
                sh("ip", "-n", ns, "link", "set", dev, "up")
                sh("ip", "-n", ns, "link", "set", "lo", "up")
                sh("tc", "-n", ns, "qdisc", "replace", "dev", dev, "root", "tbf", "rate", f"{args.rate}mbit",
                   "burst", f"{max(32, args.rate // 8)}kb", "latency", "50ms")
            server = subprocess.Popen(["ip", "netns", "exec", srv, sys.executable, "-c", SERVER, str(blob), str(args.rtt)],
                                      env={**os.environ, "PYTHONPATH": repo})
            time.sleep(1.5)
            print(f"{args.mib} MiB at {args.rate} Mbit/s, {args.rtt:g} ms before each answer")
            for parallel in (1, 2, 4, 8):
                out = subprocess.run(["ip", "netns", "exec", cli, sys.executable, "-c", CLIENT,
                                      str(blob.stat().st_size), str(parallel)], check=True, capture_output=True,
                                     text=True, env={**os.environ, "PYTHONPATH": repo}).stdout
                seconds = float(out.strip().splitlines()[-1])
                print(f"  {parallel} in flight: {seconds:6.2f} s  {args.mib * 1.048576 / seconds:7.1f} MB/s")
        finally:
            if server is not None:
                server.terminate()
                server.wait(10)
            sh("ip", "netns", "del", srv, check=False)
            sh("ip", "netns", "del", cli, check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
