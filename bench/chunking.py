"""Which chunking engine chunked images should use (issue 17), chosen by measurement.

    make bench-chunking      (as root; about 8 minutes on 2 cores)

Builds an ext4 filesystem on a loop device holding a copy of part of /usr (v1), captures
its partclone used-block stream (``partclone.extfs -c -a0``, as imager does), then changes
it (2 % of the files rewritten, 50 MB added: v2) and captures it again.  Then, on the same
input, for each engine:

  stream         today's format: the whole stream, zstd -2 (the reference for a full deploy)
  casync stream  Debian's casync over the partclone stream (content-defined chunks, defaults)
  casync device  casync over the block device itself (its documented use, seeding from the target)
  grid N         our chunker (bench/chunking_grid.py): chunks = the used blocks of each N of
                 the device's address space, SHA-256, zstd -3

it measures chunking speed (MB/s of used data), store size for v1 and growth for v2,
the bytes a v1→v2 redeploy must fetch, a full restore of v2, a restore of v2 onto a
target holding v1 seeded from it, and exactness: the target's partclone stream SHA-256
against the source's.  The page cache is warm for every engine alike.

Settings (environment): CHUNKING_SOURCES (default "/usr/bin /usr/share /usr/lib/x86_64-linux-gnu"),
CHUNKING_FS_GB (3), CHUNKING_WORKDIR (/var/tmp), CHUNKING_GRIDS (KiB, default "4096,1024,256,64"),
CHUNKING_CASYNC_DEVICE=1 adds the casync-over-the-device row (about 6 minutes more).
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import chunking_grid as grid  # noqa: E402  (bench/ is the script's directory)
from imager.partclone import clone_argv, restore_argv  # noqa: E402



def _numbers(name: str, default: str) -> list[int]:
    text = os.environ.get(name, default)
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise SystemExit(f"bench-chunking: {name}={text!r}: expected whole numbers separated by commas") from None
    if any(v <= 0 for v in values):
        raise SystemExit(f"bench-chunking: {name}={text!r}: every value must be positive")
    return values


SOURCES = os.environ.get("CHUNKING_SOURCES", "/usr/bin /usr/share /usr/lib/x86_64-linux-gnu").split()
FS_GB = _numbers("CHUNKING_FS_GB", "3")[0]
WORKDIR = Path(os.environ.get("CHUNKING_WORKDIR", "/var/tmp"))
GRIDS_KIB = _numbers("CHUNKING_GRIDS", "4096,1024,256,64")
# casync over the whole device reads and writes every byte of it: ~6 of its minutes here, so asked for.
CASYNC_DEVICE = os.environ.get("CHUNKING_CASYNC_DEVICE", "0") == "1"
if any(kib % 32 for kib in GRIDS_KIB):  # whole bytes of partclone's bitmap: 8 blocks of 4 KiB
    raise SystemExit(f"bench-chunking: CHUNKING_GRIDS={GRIDS_KIB}: each size must be a multiple of 32 KiB")
WORKERS = min(2, os.cpu_count() or 1)
REWRITE_SHARE = 0.02
ADDED_BYTES = 50 * 1024 * 1024
MB = 1e6


@dataclass
class Row:
    """One engine's figures, None where the engine has no such step."""
    engine: str
    chunk_seconds: float | None = None
    store_v1: int = 0
    growth_v2: int = 0
    fetch_redeploy: int = 0
    full_seconds: float = 0.0
    seeded_seconds: float | None = None
    written_seeded: int | None = None
    exact_full: bool = False
    exact_seeded: bool | None = None
    note: str = ""


class Scratch:
    """Everything the benchmark creates, undone on every path (loop devices, mounts, files)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="imager-bench-chunking-", dir=WORKDIR))
        self.loops: list[str] = []
        self.mounts: list[Path] = []

    def loop(self, name: str) -> str:
        image = self.dir / name
        with open(image, "wb") as f:
            f.truncate(FS_GB * 1024**3)
        dev = run(["losetup", "--find", "--show", str(image)]).strip()
        self.loops.append(dev)
        return dev

    def mount(self, dev: str) -> Path:
        point = self.dir / "mnt"
        point.mkdir(exist_ok=True)
        run(["mount", dev, str(point)])
        self.mounts.append(point)
        return point

    def umount(self, point: Path) -> None:
        run(["umount", str(point)])
        self.mounts.remove(point)

    def close(self) -> None:
        for point in reversed(self.mounts):
            subprocess.run(["umount", str(point)], check=False)
        for dev in self.loops:
            subprocess.run(["losetup", "-d", dev], check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


def run(argv: list[str], **kwargs: object) -> str:
    done = subprocess.run(argv, check=False, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if done.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()[-400:]}")
    return str(done.stdout)


def say(text: str) -> None:
    print(f"bench-chunking: {text}", flush=True)


def stream_sha256(dev: str) -> str:
    """SHA-256 of the device's partclone used-block stream: the exactness yardstick."""
    proc = subprocess.Popen(clone_argv("extfs", dev), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    digest = hashlib.sha256()
    while block := proc.stdout.read(4 << 20):
        digest.update(block)
    if proc.wait():
        raise RuntimeError(f"partclone could not read {dev}")
    return digest.hexdigest()


def private_mounts() -> None:
    """Our own mount namespace, private: a namespace someone else creates meanwhile (ip netns, unshare) would
    copy our mount of the source, and umount here would then leave the filesystem mounted there."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x00020000) != 0:  # CLONE_NEWNS
        raise SystemExit(f"bench-chunking: unshare(CLONE_NEWNS): {os.strerror(ctypes.get_errno())}")
    run(["mount", "--make-rprivate", "/"])


def settle(dev: str) -> None:
    """e2fsck before a capture: partclone refuses an ext4 whose superblock's free count lags its bitmaps
    (seen here now and then right after umount); a fix of anything else is an error."""
    done = subprocess.run(["e2fsck", "-f", "-y", dev], capture_output=True, text=True, check=False)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"e2fsck {dev} failed ({done.returncode}): {done.stdout[-600:]}")
    fixed = [line for line in done.stdout.splitlines() if "count wrong" not in line and "FILE SYSTEM WAS MODIFIED" not in line
             and "Fix? yes" not in line and line.strip() and not line.startswith(("Pass ", dev, "e2fsck "))]
    if done.returncode == 1:
        say(f"e2fsck fixed free counts on {dev}" + (f"; also: {fixed}" if fixed else ""))


def capture_stream(dev: str, out: Path) -> tuple[float, str]:
    settle(dev)
    start = time.perf_counter()
    with open(out, "wb") as f:
        done = subprocess.run(clone_argv("extfs", dev), stdout=f, stderr=subprocess.PIPE, check=False)
    if done.returncode:
        raise RuntimeError(f"partclone could not read {dev}: {done.stderr.decode(errors='replace')[-600:]}")
    seconds = time.perf_counter() - start
    digest = hashlib.sha256()
    with open(out, "rb") as f:
        while block := f.read(4 << 20):
            digest.update(block)
    return seconds, digest.hexdigest()


def restore_stream_file(stream: Path, dev: str) -> None:
    with open(stream, "rb") as f:
        subprocess.run(restore_argv("extfs", dev), stdin=f, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, check=True)


def sectors_written(dev: str) -> int:
    """The kernel's count of 512-byte sectors written to the device (after flushing the page cache)."""
    os.sync()
    return int(Path(f"/sys/block/{Path(dev).name}/stat").read_text().split()[6])


def measured_write(dev: str, fn: Callable[[], object]) -> tuple[float, int]:
    """Wall seconds of fn (the flush included) and the bytes the device received meanwhile."""
    before = sectors_written(dev)
    start = time.perf_counter()
    fn()
    after = sectors_written(dev)
    return time.perf_counter() - start, (after - before) * 512


def hold_v1(target: str, v1: Path) -> None:
    """The target as a fresh deploy of v1 left it: emptied (discard punches the loop file's holes
    and drops the device's cache), then v1's stream restored."""
    run(["blkdiscard", "-f", target])
    restore_stream_file(v1, target)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def store_files(store: Path) -> dict[Path, int]:
    return {p: p.stat().st_size for p in store.rglob("*") if p.is_file()}


def fill(point: Path) -> int:
    """v1: a copy of SOURCES; returns the filesystem's used bytes."""
    # Relative to /: cp --parents then recreates the same paths under the mount.
    run(["cp", "-a", "--parents", *(src.lstrip("/") for src in SOURCES), str(point)], cwd="/")
    run(["sync"])
    st = os.statvfs(point)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def mutate(point: Path, rng: random.Random) -> str:
    """v2: 2 % of the files rewritten (dpkg-style: a new file renamed over the old one, so its
    blocks move; half of them with a few bytes changed, half with wholly new content of the same
    size), and 50 MB added (half random bytes, half compressible: reversed copies of real files)."""
    files = sorted(p for p in point.rglob("*") if p.is_file() and not p.is_symlink())
    chosen = rng.sample(files, round(len(files) * REWRITE_SHARE))
    rewritten = 0
    for i, path in enumerate(chosen):
        data = path.read_bytes()
        if i % 2 == 0 and data:
            edited = bytearray(data)
            for _ in range(1 + len(data) // 65536):
                edited[rng.randrange(len(data))] ^= 0xFF
            data = bytes(edited)
        else:
            data = data[::-1]
        fresh = path.with_name(path.name + ".v2-new")
        fresh.write_bytes(data)
        shutil.copystat(path, fresh)
        st = path.stat()
        os.chown(fresh, st.st_uid, st.st_gid)
        os.replace(fresh, path)
        rewritten += len(data)
    added = point / "added-v2"
    added.mkdir()
    mib = 1 << 20
    for n in range(ADDED_BYTES // mib // 2):
        (added / f"random-{n:03}.bin").write_bytes(rng.randbytes(mib))
    pool = bytearray()
    for path in rng.sample(files, 400):
        pool += path.read_bytes()[::-1]
        if len(pool) >= ADDED_BYTES // 2:
            break
    for n in range(ADDED_BYTES // mib // 2):
        (added / f"copied-{n:03}.bin").write_bytes(bytes(pool[n * mib:(n + 1) * mib]))
    run(["sync"])
    return (f"{len(chosen)} of {len(files)} files rewritten ({rewritten / MB:.0f} MB), "
            f"{ADDED_BYTES / MB:.0f} MB added")


def bench_stream(s: Scratch, v1: Path, v2: Path, target: str, v2_sha: str) -> Row:
    """Today's format: the whole stream, zstd -2; a redeploy fetches and writes it all."""
    z1, z2 = s.dir / "v1.pcl.zst", s.dir / "v2.pcl.zst"
    chunk = timed(lambda: run(["zstd", "-q", "-2", "-T0", str(v1), "-o", str(z1)]))
    run(["zstd", "-q", "-2", "-T0", str(v2), "-o", str(z2)])
    full = timed(lambda: run(["bash", "-o", "pipefail", "-c",
                              f"zstd -q -dc {z2} | {' '.join(restore_argv('extfs', target))}"]))
    row = Row("stream zstd -2 (today)", chunk, z1.stat().st_size, z2.stat().st_size, z2.stat().st_size, full,
              note="every redeploy is a full deploy")
    row.exact_full = stream_sha256(target) == v2_sha
    z1.unlink()
    z2.unlink()
    return row


def _new_chunks_store(store: Path, before: dict[Path, int], name: Path) -> Path:
    """A store holding only the chunks v2 added: a seeded extract that succeeds from it fetched no more."""
    for path in store_files(store):
        if path not in before:
            dest = name / path.relative_to(store)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.link(path, dest)
    return name


def bench_casync_stream(s: Scratch, v1: Path, v2: Path, target: str, v2_sha: str) -> Row:
    store, out = s.dir / "casync-store", s.dir / "casync-out.pcl"
    i1, i2 = s.dir / "v1.caibx", s.dir / "v2.caibx"
    chunk = timed(lambda: run(["casync", "make", f"--store={store}", str(i1), str(v1)]))
    before = store_files(store)
    run(["casync", "make", f"--store={store}", str(i2), str(v2)])
    after = store_files(store)
    growth = sum(after.values()) - sum(before.values())
    row = Row("casync stream", chunk, sum(before.values()), growth, growth)

    def full() -> None:
        run(["casync", "extract", f"--store={store}", str(i2), str(out)])
        restore_stream_file(out, target)
    row.full_seconds = timed(full)
    row.exact_full = stream_sha256(target) == v2_sha
    out.unlink()
    hold_v1(target, v1)
    remote = _new_chunks_store(store, before, s.dir / "casync-new")
    seed = s.dir / "casync-seed.pcl"

    def seeded() -> None:
        # casync seeds from files: the target's own stream is read first, then v2 is rebuilt and restored.
        with open(seed, "wb") as f:
            subprocess.run(clone_argv("extfs", target), stdout=f, stderr=subprocess.DEVNULL, check=True)
        run(["casync", "extract", f"--store={remote}", f"--seed={seed}", str(i2), str(out)])
        restore_stream_file(out, target)
    row.seeded_seconds, row.written_seeded = measured_write(target, seeded)
    row.exact_seeded = stream_sha256(target) == v2_sha
    row.note = f"{len(after)} chunks in the store; seeded: read target's stream + extract + full partclone.restore"
    for path in (out, seed):
        path.unlink()
    shutil.rmtree(store)
    shutil.rmtree(remote)
    return row


def bench_casync_device(s: Scratch, i1: Path, i2: Path, store: Path, before: dict[Path, int], chunk_s: float,
                        v1: Path, target: str, v2_sha: str) -> Row:
    """casync over the whole block device (indexes made while the source held v1, then v2)."""
    after = store_files(store)
    growth = sum(after.values()) - sum(before.values())
    row = Row("casync device", chunk_s, sum(before.values()), growth, growth)
    row.full_seconds = timed(lambda: run(["casync", "extract", f"--store={store}", "--seed-output=no",
                                          str(i2), target]))
    row.exact_full = stream_sha256(target) == v2_sha
    hold_v1(target, v1)
    remote = _new_chunks_store(store, before, s.dir / "casync-dev-new")
    # The target as its own seed: the only seed a disk being redeployed has.
    seeded = ["casync", "extract", f"--seed={target}", str(i2), target]
    try:
        row.seeded_seconds, row.written_seeded = measured_write(target, lambda: run([*seeded, f"--store={remote}"]))
        row.note = "chunks free space too"
    except RuntimeError as err:
        # Not enough from the new chunks alone: again from the whole store, counting the chunks it opens.
        hold_v1(target, v1)
        trace = s.dir / "casync.strace"
        row.seeded_seconds, row.written_seeded = measured_write(target, lambda: run([
            "strace", "-f", "-qq", "-e", "trace=openat", "-o", str(trace), *seeded, f"--store={store}"]))
        opened = {line.split('"')[1] for line in trace.read_text().splitlines()
                  if '.cacnk"' in line and "= -1" not in line}
        row.fetch_redeploy = sum(os.stat(path).st_size for path in opened)
        row.note = (f"in place, the new chunks alone were not enough (casync: {str(err).split('): ', 1)[-1]!r}); "
                    f"again from the whole store under strace: {len(opened)} chunks opened")
    row.exact_seeded = stream_sha256(target) == v2_sha
    shutil.rmtree(store)
    shutil.rmtree(remote)
    return row


def bench_grid(s: Scratch, kib: int, v1: Path, v2: Path, target: str, v2_sha: str) -> Row:
    store = s.dir / f"grid-{kib}"
    index1, c1 = grid.capture(v1, store, kib // 4, WORKERS)  # ext4's 4 KiB blocks
    if index1.info.block_size != 4096:
        raise RuntimeError(f"expected 4 KiB blocks, the filesystem has {index1.info.block_size}")
    index2, c2 = grid.capture(v2, store, kib // 4, WORKERS)
    label = f"grid {kib // 1024} MiB" if kib >= 1024 else f"grid {kib} KiB"
    row = Row(label, c1.seconds, c1.new_stored_bytes, c2.new_stored_bytes)
    v1_names = {c.sha256 for c in index1.chunks}
    row.fetch_redeploy = sum({c.sha256: c.stored_size for c in index2.chunks if c.sha256 not in v1_names}.values())
    row.full_seconds = grid.restore_full(index2, store, target, WORKERS)
    row.exact_full = stream_sha256(target) == v2_sha
    hold_v1(target, v1)
    outcome: list[grid.SeededStats] = []
    row.seeded_seconds, row.written_seeded = measured_write(
        target, lambda: outcome.append(grid.restore_seeded(index2, store, target, WORKERS)))
    seeded = outcome[0]
    row.exact_seeded = stream_sha256(target) == v2_sha
    row.note = (f"{len(index2.chunks)} chunks; seeded fetched {seeded.fetched_bytes / MB:.1f} MB, "
                f"reused {seeded.reused_bytes / MB:.0f} MB; index {index2.index_bytes() / 1024:.0f} KiB")
    shutil.rmtree(store)
    return row


def report(rows: list[Row], used: int, full_v2: int, what: str) -> None:
    print(f"\n=== chunking engines: ext4 {FS_GB} GiB, {used / MB:.0f} MB used ({' '.join(SOURCES)}); "
          f"v2: {what}; {os.cpu_count()} cores, warm cache ===")
    head = (f"{'engine':24} {'chunk MB/s':>10} {'store v1 MB':>11} {'v2 growth MB':>13} {'redeploy fetch MB':>18} "
            f"{'full restore s':>14} {'seeded s':>9} {'seeded wrote MB':>15} {'exact full/seeded':>17}")
    print(head)
    for r in rows:
        speed = f"{used / r.chunk_seconds / MB:10.0f}" if r.chunk_seconds else f"{'-':>10}"
        growth = f"{r.growth_v2 / MB:6.1f} ({100 * r.growth_v2 / r.store_v1:4.1f}%)" if r.store_v1 else "-"
        fetch = f"{r.fetch_redeploy / MB:7.1f} ({100 * r.fetch_redeploy / full_v2:5.1f}%)"
        seeded = f"{r.seeded_seconds:9.1f}" if r.seeded_seconds is not None else f"{'-':>9}"
        wrote = f"{r.written_seeded / MB:15.0f}" if r.written_seeded is not None else f"{'-':>15}"
        exact = f"{'yes' if r.exact_full else 'NO'}/{'-' if r.exact_seeded is None else 'yes' if r.exact_seeded else 'NO'}"
        print(f"{r.engine:24} {speed} {r.store_v1 / MB:11.0f} {growth:>13} {fetch:>18} "
              f"{r.full_seconds:14.1f} {seeded} {wrote} {exact:>17}")
    print("\nredeploy fetch %: of a full v2 deploy in today's format (the stream row's v2 size).")
    for r in rows:
        if r.note:
            print(f"  {r.engine}: {r.note}")


def main() -> int:
    if os.geteuid() != 0:
        raise SystemExit("bench-chunking: run as root (loop devices, mount)")
    missing = [src for src in SOURCES if not Path(src).is_dir()]
    if missing or not WORKDIR.is_dir():
        raise SystemExit(f"bench-chunking: not a directory: {' '.join(missing) or WORKDIR}")
    for tool in ("casync", "partclone.extfs", "zstd", "mkfs.ext4", "strace", "blkdiscard"):
        if shutil.which(tool) is None:
            raise SystemExit(f"bench-chunking: {tool} is missing (make setup installs it)")
    private_mounts()
    rng = random.Random(17)
    began = time.perf_counter()
    s = Scratch()
    say(f"working in {s.dir}")
    try:
        source, target = s.loop("source.img"), s.loop("target.img")
        run(["mkfs.ext4", "-q", "-F", source])
        point = s.mount(source)
        say(f"copying {' '.join(SOURCES)} …")
        used = fill(point)
        s.umount(point)
        v1, v2 = s.dir / "v1.pcl", s.dir / "v2.pcl"
        capture_s, v1_sha = capture_stream(source, v1)
        say(f"v1: {used / MB:.0f} MB used, partclone stream captured in {capture_s:.1f} s")
        dev_store, d1, d2 = s.dir / "casync-dev-store", s.dir / "v1-dev.caibx", s.dir / "v2-dev.caibx"
        if CASYNC_DEVICE:
            dev_chunk = timed(lambda: run(["casync", "make", f"--store={dev_store}", str(d1), source]))
            dev_before = store_files(dev_store)
        point = s.mount(source)
        what = mutate(point, rng)
        s.umount(point)
        _, v2_sha = capture_stream(source, v2)
        if CASYNC_DEVICE:
            run(["casync", "make", f"--store={dev_store}", str(d2), source])
        say(f"v2: {what}")
        rows = [bench_stream(s, v1, v2, target, v2_sha)]
        say("casync over the stream …")
        rows.append(bench_casync_stream(s, v1, v2, target, v2_sha))
        if CASYNC_DEVICE:
            say("casync over the device …")
            rows.append(bench_casync_device(s, d1, d2, dev_store, dev_before, dev_chunk, v1, target, v2_sha))
        for kib in GRIDS_KIB:
            say(f"grid {kib} KiB …")
            rows.append(bench_grid(s, kib, v1, v2, target, v2_sha))
        report(rows, used, rows[0].growth_v2, what)
        print(f"\n(whole benchmark: {time.perf_counter() - began:.0f} s)")
        return 0 if all(r.exact_full and r.exact_seeded is not False for r in rows) else 1
    finally:
        s.close()


if __name__ == "__main__":
    sys.exit(main())
