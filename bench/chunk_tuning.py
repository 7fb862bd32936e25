"""Chunk size and chunk zstd level for chunked images (issue 17): stored size against today's stream, store growth
for v2 and chunking speed, on bench/chunking.py's v1/v2 (its helpers, its settings: CHUNKING_SOURCES, CHUNKING_FS_GB,
CHUNKING_WORKDIR).

    .venv/bin/python bench/chunk_tuning.py      (root; TUNING_GRIDS=64,128 KiB, TUNING_LEVELS=3,6,9,12)

The stream reference is today's format: the whole partclone stream at zstd -2 (imager's data path).
"""
from __future__ import annotations

import os
import random
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import chunking as bench  # noqa: E402  (bench/ is the script's directory)
import chunking_grid as grid  # noqa: E402

GRIDS_KIB = bench._numbers("TUNING_GRIDS", "64,128")
LEVELS = bench._numbers("TUNING_LEVELS", "3,6,9,12")
MB = 1e6


def main() -> int:
    if os.geteuid() != 0:
        raise SystemExit("chunk-tuning: run as root (loop devices, mount)")
    bench.private_mounts()
    s = bench.Scratch()
    try:
        source = s.loop("source.img")
        bench.run(["mkfs.ext4", "-q", "-F", source])
        point = s.mount(source)
        used = bench.fill(point)
        s.umount(point)
        v1, v2 = s.dir / "v1.pcl", s.dir / "v2.pcl"
        bench.capture_stream(source, v1)
        point = s.mount(source)
        what = bench.mutate(point, random.Random(17))
        s.umount(point)
        bench.capture_stream(source, v2)
        z1 = s.dir / "v1.pcl.zst"
        started = time.perf_counter()
        bench.run(["zstd", "-q", "-2", "-T2", str(v1), "-o", str(z1)])
        stream_s, stream_bytes = time.perf_counter() - started, z1.stat().st_size
        print(f"\n=== chunk size × zstd level: {used / MB:.0f} MB used; v2: {what} ===")
        print(f"stream zstd -2: {stream_bytes / MB:.0f} MB, {used / stream_s / MB:.0f} MB/s (2 threads)")
        print(f"{'grid':>8} {'level':>5} {'store v1 MB':>11} {'vs stream':>9} {'v2 growth':>14} {'chunk MB/s':>10}")
        for kib in GRIDS_KIB:
            for level in LEVELS:
                grid.ZSTD_LEVEL = level
                store = s.dir / f"grid-{kib}-{level}"
                _, c1 = grid.capture(v1, store, kib // 4, bench.WORKERS)
                _, c2 = grid.capture(v2, store, kib // 4, bench.WORKERS)
                print(f"{kib:>5}KiB {level:>5} {c1.new_stored_bytes / MB:11.0f} "
                      f"{100 * (c1.new_stored_bytes / stream_bytes - 1):+8.1f}% "
                      f"{c2.new_stored_bytes / MB:6.1f} ({100 * c2.new_stored_bytes / c1.new_stored_bytes:4.1f}%) "
                      f"{used / c1.seconds / MB:10.0f}", flush=True)
                shutil.rmtree(store)
        return 0
    finally:
        s.close()


if __name__ == "__main__":
    sys.exit(main())
