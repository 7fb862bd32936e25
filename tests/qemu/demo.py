"""`make demo`: the main job on embedded defaults, in the lab.

Client A (1 GiB GPT disk, two ext4 partitions with files) PXE-boots and is
captured to the NFS storage node; client B (empty 1 GiB disk) PXE-boots and
is deployed from that image; the files are then compared on the host.
"""
from __future__ import annotations

import shutil
import sys
import time

from imager.progress import human
from tests.qemu.lab import Lab, LabError, make_source_disk, read_disk

MAC_A, MAC_B = "52:54:00:de:00:01", "52:54:00:de:00:02"


def run_task(lab: Lab, name: str, mac: str, disk, task_args: list[str]) -> dict:
    task = lab.cli_json("task", *task_args)
    vm = lab.boot(name, mac, disk)
    print(f"  {name}: powered on, PXE-booting …", flush=True)
    running_at = vm.wait_console(f"[imager] task {task['id']}:", 600)
    print(f"  {name}: imager running its task {running_at:.0f} s after power-on", flush=True)
    vm.wait_exit(900)
    task = lab.task(task["id"])
    if task["state"] != "done":
        raise LabError(f"task {task['id']} {task['state']}: {task.get('error')}")
    return {"task": task, "boot_s": running_at, "total_s": time.monotonic() - vm.started}


def main() -> int:
    print("imager demo: starting the lab (network namespace, dnsmasq, nfs-ganesha, imager-server)")
    with Lab() as lab:
        source, target = lab.dir / "a.img", lab.dir / "b.img"
        written = make_source_disk(source)
        with open(target, "wb") as f:
            f.truncate(1024 * 1024 * 1024)
        lab.cli("host", "add", MAC_A, "pc-a")
        lab.cli("host", "add", MAC_B, "pc-b")
        lab.cli("image", "add", "demo", "--storage", "lab")

        print("capture: client A → image 'demo'")
        cap = run_task(lab, "client-a", MAC_A, source, ["capture", "pc-a", "demo"])
        print("deploy: image 'demo' → client B")
        dep = run_task(lab, "client-b", MAC_B, target, ["deploy", "pc-b", "demo"])

        table_a, _ = read_disk(source)
        table_b, files_b = read_disk(target)
        same_files = files_b == written
        count = sum(len(v) for v in written.values())
        cres, dres = cap["task"]["result"], dep["task"]["result"]
        print("\n=== imager demo summary ===")
        print(f"image 'demo': {human(cres['raw_bytes'])} of used blocks stored as {human(cres['stored_bytes'])} "
              f"(ratio {cres['raw_bytes'] / max(cres['stored_bytes'], 1):.2f})")
        print(f"boot (power-on → task running): capture {cap['boot_s']:.0f} s, deploy {dep['boot_s']:.0f} s")
        print(f"capture: {cres['seconds']:.1f} s in the imager ({human(cres['raw_bytes'] / max(cres['seconds'], 0.1))}/s), "
              f"{cap['total_s']:.0f} s power-on to power-off")
        print(f"deploy:  {dres['seconds']:.1f} s in the imager ({human(dres['raw_bytes'] / max(dres['seconds'], 0.1))}/s), "
              f"{dep['total_s']:.0f} s power-on to power-off")
        print(f"partition table identical: {'yes' if table_a == table_b else 'NO'}")
        print(f"files verified by SHA-256 on client B: {count if same_files else 'MISMATCH'} of {count}")
        print("(QEMU runs under TCG emulation here: expect real hardware to be much faster)")
        ok = same_files and table_a == table_b
    shutil.rmtree(lab.dir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except LabError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        sys.exit(1)
