"""Incremental redeploy over a shaped link, by HTTP and by NFS (issue 17): `make bench-incremental`.

    make bench-incremental      (as root; ~8 minutes on 2 cores; INCREMENTAL_SMALL=1: /usr/bin on 1 GiB, ~2 min)

1. A disk (a loop device with a partition table) holds one ext4 partition with a copy of part of /usr
   (bench/chunking.py's fill); captured with imager's own capture as v1, once in today's stream format and once
   chunked, each into its own store (``store/stream``, ``store/chunked``); v1 is deployed onto a target disk.
2. The source changes as bench/chunking.py changes it (2 % of the files rewritten dpkg-style, 50 MB added) and is
   captured again as v2 in both formats, beside v1: the store growth is what v2 adds.
3. Two network namespaces of the benchmark's own, joined by a veth shaped with tbf at 200 Mbit/s, then 1 Gbit/s.
   The server's holds the store, served over HTTP by aiohttp's static files (Range and HEAD) with the imager
   server's chunk batch answer beside them (server_stub/chunkbatch.py), and by nfs-ganesha (NFSv4); the client's
   runs imager's deploy (bench/incremental_deploy.py): ``http`` as from the imager server (chunks in batches),
   ``web`` from nginx, a plain web server (chunks by GETs, back to back on a connection; its stream row would be
   http's, so it is not repeated),
   ``nfs`` from the store mounted by NFS (bench/nfsfuse.c: this kernel has no NFS client).
4. For each rate and transport: a full v2 deploy onto a blank target in each format, and the v1 → v2 redeploy of
   the chunked image onto a target holding v1. Figures: wall seconds, bytes over the link (the client veth's
   rx+tx counters), reused/fetched/wrote from the deploy's result, and exactness: the SHA-256 of the target
   partition's partclone stream against the source's at v2.
Then the issue's goals, PASS or FAIL. Everything made (namespaces, servers, mounts, loop devices) goes on every path.

Settings (environment): INCREMENTAL_SMALL=1, INCREMENTAL_DISK_GB (3), INCREMENTAL_RATES (Mbit/s, "200,1000"),
INCREMENTAL_TRANSPORTS ("http,web,nfs"); CHUNKING_SOURCES and CHUNKING_WORKDIR as bench/chunking.py.
"""
from __future__ import annotations

import inspect
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
SMALL = os.environ.get("INCREMENTAL_SMALL", "0") == "1"
if SMALL:
    os.environ.setdefault("CHUNKING_SOURCES", "/usr/bin")
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO))

import chunking as shared  # noqa: E402  (bench/chunking.py: fill, mutate, settle, stream_sha256, run, Scratch)
from incremental_net import Link, Servers  # noqa: E402
from imager.ops.capture import capture_image  # noqa: E402
from imager.progress import Progress  # noqa: E402

DISK_GB = shared._numbers("INCREMENTAL_DISK_GB", "1" if SMALL else "3")[0]
RATES = shared._numbers("INCREMENTAL_RATES", "200,1000")
TRANSPORTS = os.environ.get("INCREMENTAL_TRANSPORTS", "http,web,nfs").split(",")
if not set(TRANSPORTS) <= {"http", "web", "nfs"} or not TRANSPORTS:
    raise SystemExit(f"bench-incremental: INCREMENTAL_TRANSPORTS={TRANSPORTS}: some of http, web, nfs")
CHUNKED = "image_format" in inspect.signature(capture_image).parameters  # the client can capture chunked images
FORMATS = ("stream", "chunked") if CHUNKED else ("stream",)
MB = 1e6
PYTHON = str(REPO / ".venv" / "bin" / "python")


def say(text: str) -> None:
    print(f"bench-incremental: {text}", flush=True)


@dataclass
class Deploy:
    """One deploy's figures."""
    transport: str
    rate: int
    kind: str              # "full stream", "full chunked", "redeploy chunked"
    seconds: float
    link_bytes: int
    reused: int | None
    fetched: int | None
    wrote: int | None
    exact: bool


class Disks:
    """Loop disks with a partition table, attached with partition nodes (no udev: partprobe)."""

    def __init__(self, scratch: shared.Scratch) -> None:
        self.s = scratch

    def make(self, name: str, partitioned: bool) -> str:
        image = self.s.dir / name
        with open(image, "wb") as f:
            f.truncate(DISK_GB * 1024**3)
        if partitioned:
            shared.run(["sfdisk", "--quiet", str(image)], input="label: gpt\n,,L\n")
        dev = shared.run(["losetup", "--find", "--show", "--partscan", str(image)]).strip()
        self.s.loops.append(dev)
        subprocess.run(["partprobe", dev], check=False, capture_output=True)
        return dev

    @staticmethod
    def blank(dev: str) -> None:
        """As a new disk: every byte discarded (the loop file's holes punched, its cache dropped), no table."""
        shared.run(["blkdiscard", "-f", dev])
        subprocess.run(["partprobe", dev], check=False, capture_output=True)


def store_bytes(root: Path) -> int:
    """What a store holds: every file's size, each inode once."""
    seen: set[int] = set()
    total = 0
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            st = path.stat()
            if st.st_ino not in seen:
                seen.add(st.st_ino)
                total += st.st_size
    return total


def capture(disk: str, store: Path, name: str, fmt: str) -> float:
    started = time.perf_counter()
    kwargs = {"image_format": fmt} if CHUNKED else {}
    capture_image(disk, str(store / fmt), name, Progress(), image_type="multipart", **kwargs)
    return time.perf_counter() - started


def local_deploy(store: Path, fmt: str, name: str, target: str) -> None:
    """The target as a deploy of ``name`` leaves it (no link involved: the benchmark's setup, not a figure)."""
    Disks.blank(target)
    shared.run([PYTHON, str(BENCH / "incremental_deploy.py"), target, "--dir", str(store / fmt / name)])


def client_deploy(link: Link, servers: Servers, transport: str, fmt: str, name: str, target: str) -> dict[str, float]:
    if transport in ("http", "web"):
        base = servers.http_base if transport == "http" else servers.web_base
        args = ["--http", f"{base}{fmt}/{name}/"]
        if fmt == "chunked":
            args += ["--chunks-url", f"{base}{fmt}/.chunks/"]
            if transport == "http":  # the imager server's way: many chunks an answer
                args += ["--chunks-batch-url", f"{servers.http_base}batch/{fmt}"]
    else:
        args = ["--dir", str(servers.nfs_mount / fmt / name)]
    done = subprocess.run(link.in_client([PYTHON, str(BENCH / "incremental_deploy.py"), target, *args]),
                          capture_output=True, text=True, check=False)
    if done.returncode:
        why = done.stderr.strip()[-800:]
        if transport == "nfs":
            why += f"\nnfsfuse's log: {servers.fuse_log_tail()}"
        raise RuntimeError(f"{transport} {fmt} deploy of {name} failed: {why}")
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def measured(link: Link, servers: Servers, transport: str, rate: int, kind: str, fmt: str, target: str,
             v2_sha: str) -> Deploy:
    before = link.client_bytes()
    figures = client_deploy(link, servers, transport, fmt, "lab-v2", target)
    moved = link.client_bytes() - before
    exact = shared.stream_sha256(target + "p1") == v2_sha

    def mb(key: str) -> int | None:
        value = figures.get(key)
        return None if value is None else int(value)
    row = Deploy(transport, rate, kind, figures["seconds"], moved, mb("reused_bytes"), mb("fetched_bytes"),
                 mb("wrote_bytes"), exact)
    say(f"{transport} {rate} Mbit/s {kind}: {row.seconds:.1f} s, {moved / MB:.1f} MB over the link, "
        f"exact: {'yes' if exact else 'NO'}")
    return row


def _mb(value: int | None) -> str:
    return "-" if value is None else f"{value / MB:.1f}"


def report(rows: list[Deploy], sizes: dict[str, tuple[int, int]], captures: dict[str, float], used: int,
           what: str, nfs_note: str) -> bool:
    print(f"\n=== incremental redeploy: ext4 on a {DISK_GB} GiB disk, {used / MB:.0f} MB used "
          f"({' '.join(shared.SOURCES)}); v2: {what}; {os.cpu_count()} cores ===")
    print(f"{'format':8} {'store v1 MB':>11} {'v2 growth MB':>16} {'capture v1 s':>12}")
    for fmt, (v1, growth) in sizes.items():
        print(f"{fmt:8} {v1 / MB:11.1f} {growth / MB:9.1f} ({100 * growth / v1:4.1f}%) {captures[fmt]:12.1f}")
    print(f"\n{'transport':9} {'Mbit/s':>6} {'deploy':18} {'wall s':>7} {'link MB':>8} {'reused MB':>9} "
          f"{'fetched MB':>10} {'wrote MB':>8} {'exact':>5}")
    for r in rows:
        print(f"{r.transport:9} {r.rate:6} {r.kind:18} {r.seconds:7.1f} {r.link_bytes / MB:8.1f} {_mb(r.reused):>9} "
              f"{_mb(r.fetched):>10} {_mb(r.wrote):>8} {'yes' if r.exact else 'NO':>5}")
    if nfs_note:
        print(f"NFS: {nfs_note}")
    goals: list[tuple[str, bool | None]] = []
    if "chunked" in sizes:
        v1, growth = sizes["chunked"]
        goals.append((f"store growth v2 ≤ 10 % of v1 stored (chunked: {100 * growth / v1:.1f} %)", growth <= 0.10 * v1))
        stream_v1 = sizes["stream"][0]
        goals.append((f"chunked store v1 ≤ 1.05 × stream's ({v1 / stream_v1:.3f}×)", v1 <= 1.05 * stream_v1))
    else:
        goals.append(("chunked goals: the client cannot capture chunked images yet (imager.ops.capture)", None))
    by = {(r.transport, r.rate, r.kind): r for r in rows}
    for transport in TRANSPORTS:
        for rate in RATES:
            # a plain web server serves the stream file as the imager's route does: http's row is the yardstick
            full = by.get((transport, rate, "full stream")) or by.get(("http", rate, "full stream"))
            chunked = by.get((transport, rate, "full chunked"))
            redeploy = by.get((transport, rate, "redeploy chunked"))
            if full is None or chunked is None or redeploy is None:
                continue
            at = f"{transport} {rate} Mbit/s"
            share = redeploy.link_bytes / full.link_bytes
            goals.append((f"{at}: redeploy link bytes ≤ 10 % of full v2's ({100 * share:.1f} %)", share <= 0.10))
            if rate == 200:
                ratio = redeploy.seconds / full.seconds
                goals.append((f"{at}: redeploy wall ≤ 0.35 × full v2's ({ratio:.2f}×)", ratio <= 0.35))
            ratio = chunked.seconds / full.seconds
            goals.append((f"{at}: chunked full deploy ≤ 1.05 × stream's time ({ratio:.2f}×)", ratio <= 1.05))
    goals.append(("every deploy exact", all(r.exact for r in rows)))
    print("\ngoals:")
    for text, ok in goals:
        print(f"  {'PASS' if ok else 'FAIL' if ok is False else 'N/A '}  {text}")
    return all(ok is not False for _, ok in goals)


def _stop(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(f"bench-incremental: signal {signum}: cleaning up")


def main() -> int:
    if os.geteuid() != 0:
        raise SystemExit("bench-incremental: run as root (loop devices, namespaces, mounts)")
    for tool in ("partclone.extfs", "sfdisk", "partprobe", "blkdiscard", "ganesha.nfsd", "nsenter", "tc"):
        if not any((Path(d) / tool).exists() for d in os.environ.get("PATH", "").split(":") + ["/usr/sbin", "/sbin"]):
            raise SystemExit(f"bench-incremental: {tool} is missing (make setup installs it)")
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGHUP, _stop)
    shared.private_mounts()
    began = time.perf_counter()
    s = shared.Scratch()
    link = servers = None
    say(f"working in {s.dir}; formats: {', '.join(FORMATS)}")
    try:
        disks = Disks(s)
        source, target = disks.make("source.img", partitioned=True), disks.make("target.img", partitioned=False)
        part = source + "p1"
        shared.run(["mkfs.ext4", "-q", "-F", part])
        point = s.mount(part)
        say(f"copying {' '.join(shared.SOURCES)} …")
        used = shared.fill(point)
        s.umount(point)
        store = s.dir / "store"
        shared.settle(part)  # once per version: e2fsck -f writes the superblock (its last check time) each run
        captures, v1_sizes = {}, {}
        for fmt in FORMATS:
            captures[fmt] = capture(source, store, "lab-v1", fmt)
            v1_sizes[fmt] = store_bytes(store / fmt)
            say(f"v1 {fmt}: {v1_sizes[fmt] / MB:.1f} MB stored, captured in {captures[fmt]:.1f} s")
        local_deploy(store, FORMATS[-1], "lab-v1", target)
        point = s.mount(part)
        what = shared.mutate(point, random.Random(17))
        s.umount(point)
        shared.settle(part)
        v2_sha = shared.stream_sha256(part)
        sizes = {}
        for fmt in FORMATS:
            capture(source, store, "lab-v2", fmt)
            sizes[fmt] = (v1_sizes[fmt], store_bytes(store / fmt) - v1_sizes[fmt])
            if shared.stream_sha256(part) != v2_sha:  # the yardstick must be what both formats captured
                raise RuntimeError(f"the source changed during the {fmt} capture of v2")
        say(f"v2: {what}; " + ", ".join(f"{f} grew {g / MB:.1f} MB" for f, (_, g) in sizes.items()))
        link = Link()
        servers = Servers(link, store, s.dir / "nfs")
        servers.start_http()
        nfs_note = ""
        transports = list(TRANSPORTS)
        if "web" in transports and (web_note := servers.start_web()):
            say(web_note)
        if "nfs" in transports:
            nfs_note = servers.start_nfs()
            if nfs_note:
                transports.remove("nfs")
        rows: list[Deploy] = []
        for rate in RATES:
            link.shape(rate)
            for transport in transports:
                for fmt in FORMATS if transport != "web" or "http" not in transports else FORMATS[1:]:
                    Disks.blank(target)
                    rows.append(measured(link, servers, transport, rate, f"full {fmt}", fmt, target, v2_sha))
                if CHUNKED:
                    local_deploy(store, "chunked", "lab-v1", target)
                    rows.append(measured(link, servers, transport, rate, "redeploy chunked", "chunked", target, v2_sha))
        ok = report(rows, sizes, captures, used, what, nfs_note)
        print(f"\n(whole benchmark: {time.perf_counter() - began:.0f} s)")
        return 0 if ok else 1
    except RuntimeError as exc:  # a step failed: its command and message, not a traceback
        say(f"failed: {exc}")
        return 1
    finally:
        if servers is not None:
            servers.close()
        if link is not None:
            link.close()
        s.close()


if __name__ == "__main__":
    sys.exit(main())
