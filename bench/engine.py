"""Benchmark of the imaging data path against the pipelines sites run today.

    make bench            (as root; BENCH_SOURCE=/usr by default, BENCH_FS_GB=8)

Builds an ext4 filesystem holding a copy of BENCH_SOURCE on a loop device
(cached in build/bench), warms up once, then times in one run on the same input:

  capture  imager        partclone -a0 → imager's data path (zstd level 2, all cores, SHA-256) → file
           Clonezilla    partclone.ext4 -c -a1 -z 10485760 -s DEV -o - | zstd -T0 -3 > file
           FOS (ref.)    partclone.ext4 -c -a0 -s DEV -o - | pigz -6 > file
  deploy   imager        file → SHA-256 → zstd → partclone.restore
           reference     zstd -dc FILE | partclone.ext4 -r -s - -o DEV

and prints wall times and the ratios the issue asks for (goals: capture ≤ 0.65×
Clonezilla with an image ≤ 1.10× its size; deploy ≤ 1.05× the reference).
The page cache is warm for every contender alike: this measures the pipeline, not the disk.
"""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from imager.ops.capture import stream_device_to_file  # noqa: E402
from imager.ops.deploy import ImageFiles  # noqa: E402
from imager.progress import Progress  # noqa: E402

WORK = REPO / "build" / "bench"
SOURCE = os.environ.get("BENCH_SOURCE", "/usr")
FS_GB = int(os.environ.get("BENCH_FS_GB", "8"))
RUNS = int(os.environ.get("BENCH_RUNS", "2"))


def sh(command: str) -> None:
    subprocess.run(["bash", "-o", "pipefail", "-c", command], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def source_filesystem() -> Path:
    image = WORK / "source.ext4"
    stamp = WORK / "source.done"
    if stamp.exists() and stamp.read_text() == f"{SOURCE} {FS_GB}":
        return image
    WORK.mkdir(parents=True, exist_ok=True)
    image.unlink(missing_ok=True)
    with open(image, "wb") as f:
        f.truncate(FS_GB * 1024**3)
    sh(f"mkfs.ext4 -q -F {image}")
    mnt = WORK / "mnt"
    mnt.mkdir(exist_ok=True)
    sh(f"mount {image} {mnt}")
    try:
        print(f"bench: copying {SOURCE} into a {FS_GB} GB ext4 (once; cached in {WORK}) …", flush=True)
        subprocess.run(["cp", "-a", "--one-file-system", SOURCE, str(mnt / "data")], check=False)
    finally:
        sh(f"umount {mnt}")
    stamp.write_text(f"{SOURCE} {FS_GB}")
    return image


def losetup(path: Path) -> str:
    return subprocess.run(["losetup", "--find", "--show", str(path)], check=True, capture_output=True,
                          text=True).stdout.strip()


def main() -> int:
    if os.geteuid() != 0:
        raise SystemExit("bench: run as root (loop devices)")
    image = source_filesystem()
    target = WORK / "target.ext4"
    with open(target, "wb") as f:
        f.truncate(FS_GB * 1024**3)
    src, dst = losetup(image), losetup(target)
    out = WORK / "out"
    out.mkdir(exist_ok=True)
    ours_file, cz_file, fos_file = out / "imager.pcl.zst", out / "clonezilla.pcl.zst", out / "fos.pcl.gz"
    results: dict[str, list[float]] = {k: [] for k in ("imager", "clonezilla", "fos", "deploy", "deploy_ref")}
    try:
        meta = {}

        def ours_capture():
            result = stream_device_to_file(src, "extfs", str(ours_file), Progress())
            meta.update(size=result.stored_bytes, sha256=result.sha256, raw=result.raw_bytes)

        clonezilla = f"partclone.ext4 -c -a1 -z 10485760 -s {src} -o - | zstd -q -T0 -3 > {cz_file}"
        fos = f"partclone.ext4 -c -a0 -s {src} -o - | pigz -6 > {fos_file}"
        print("bench: warm-up …", flush=True)
        ours_capture()
        sh(clonezilla)
        for run in range(RUNS):
            results["imager"].append(timed(ours_capture))
            results["clonezilla"].append(timed(lambda: sh(clonezilla)))
            results["fos"].append(timed(lambda: sh(fos)))
            results["deploy"].append(timed(lambda: ImageFiles(str(ours_file.parent), {ours_file.name: {
                "size": meta["size"], "sha256": meta["sha256"]}}).restore(ours_file.name, "extfs", dst, Progress())))
            # The same -a0 stream for both, so only the pipelines differ.
            results["deploy_ref"].append(timed(lambda: sh(
                f"zstd -q -dc {ours_file} | partclone.ext4 -r -s - -o {dst}")))
            print(f"bench: run {run + 1}/{RUNS} done", flush=True)
        sh(f"e2fsck -f -n {dst}")  # what we deployed is a sound filesystem
    finally:
        subprocess.run(["losetup", "-d", src, dst], check=False)
    best = {k: min(v) for k, v in results.items()}
    raw = meta["raw"]
    sizes = {"imager": ours_file.stat().st_size, "clonezilla": cz_file.stat().st_size, "fos": fos_file.stat().st_size}
    print(f"\n=== imaging engine benchmark: ext4 with a copy of {SOURCE}, {raw / 1e9:.2f} GB of used blocks, "
          f"{os.cpu_count()} cores, best of {RUNS} ===")
    print(f"{'pipeline':44} {'wall s':>8} {'GB/s':>6} {'image MB':>9}")
    for key, label in (("imager", "capture: imager"), ("clonezilla", "capture: Clonezilla (-a1 | zstd -T0 -3)"),
                       ("fos", "capture: FOS (-a0 | pigz -6), reference"),
                       ("deploy", "deploy:  imager"), ("deploy_ref", "deploy:  zstd -dc | partclone -r")):
        size = f"{sizes[key] / 1e6:9.0f}" if key in sizes else " " * 9
        print(f"{label:44} {best[key]:8.2f} {raw / best[key] / 1e9:6.2f} {size}")
    capture_ratio = best["imager"] / best["clonezilla"]
    size_ratio = sizes["imager"] / sizes["clonezilla"]
    deploy_ratio = best["deploy"] / best["deploy_ref"]
    print(f"\ncapture time  imager / Clonezilla = {capture_ratio:.2f}   (goal ≤ 0.65)")
    print(f"image size    imager / Clonezilla = {size_ratio:.2f}   (goal ≤ 1.10)")
    print(f"capture time  imager / FOS        = {best['imager'] / best['fos']:.2f}   (reference)")
    print(f"deploy time   imager / reference  = {deploy_ratio:.2f}   (goal ≤ 1.05)")
    print(f"(spread over runs: capture {statistics.pstdev(results['imager']):.2f} s, "
          f"deploy {statistics.pstdev(results['deploy']):.2f} s)")
    shutil.rmtree(out, ignore_errors=True)
    target.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
