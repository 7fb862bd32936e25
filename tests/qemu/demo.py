"""`make demo`: the main job on embedded defaults, in the lab.

Client A (1 GiB GPT disk, two ext4 partitions with files) PXE-boots and is
captured to the NFS storage node; client B (empty 1 GiB disk) PXE-boots and
is deployed from that image; the files are then compared on the host.
The web console is reachable from this host while it runs (its URL and how
to sign in are printed first); from a terminal the lab stays up at the end
until Enter is pressed.
"""
from __future__ import annotations

import ctypes
import errno
import os
import shutil
import socket
import sys
import threading
import time

from imager.progress import human
from tests.qemu import boottime
from tests.qemu.lab import HTTP_PORT, SERVER_IP, Lab, LabError, make_source_disk, read_disk

MAC_A, MAC_B = "52:54:00:de:00:01", "52:54:00:de:00:02"


CLONE_NEWNET = 0x40000000


class ConsoleForward:
    """The lab's server lives in a private network namespace; this forwards 127.0.0.1:PORT on this host to it,
    so a browser here shows its console. Each connection's thread enters the lab's namespace (setns is per
    thread) to connect; the listener stays in the host's. Everything stops with the demo."""

    def __init__(self, namespace: str, port: int = 8080) -> None:
        self.namespace = f"/run/netns/{namespace}"
        try:
            self.listener = socket.create_server(("127.0.0.1", port))
        except OSError as exc:  # 8080 taken on this host: any free port
            if exc.errno != errno.EADDRINUSE:
                raise
            self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed: the demo is over
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client:
            try:
                fd = os.open(self.namespace, os.O_RDONLY)
                try:
                    if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
                        return
                finally:
                    os.close(fd)
                upstream = socket.create_connection((SERVER_IP, HTTP_PORT), timeout=10)
            except OSError:
                return
            with upstream:
                upstream.settimeout(None)
                back = threading.Thread(target=self._pump, args=(upstream, client), daemon=True)
                back.start()
                self._pump(client, upstream)
                back.join()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)
        except OSError:  # one side went away: end both directions
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.listener.close()


def console_hint(lab: Lab, forward: ConsoleForward) -> str:
    token_file = lab.dir / "server" / "admin.token"
    return (f"web console: {forward.url}  (sign in as user 'admin'; password: the admin token in {token_file}: "
            f"{token_file.read_text().strip()})")


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
    stages = boottime.breakdown(lab.server_log, mac, task["id"], vm.started_wall, task["result"].get("boot", {}))
    return {"task": task, "boot_s": running_at, "total_s": time.monotonic() - vm.started, "stages": stages}


def main() -> int:
    print("imager demo: starting the lab (network namespace, dnsmasq, nfs-ganesha, imager-server)")
    with Lab() as lab:
        forward = ConsoleForward(lab.ns)
        print(console_hint(lab, forward), flush=True)
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
        for name, run in (("capture client (BIOS, iPXE)", cap), ("deploy client (BIOS, iPXE)", dep)):
            print("\n".join(run["stages"].lines(f"boot of the {name}")))
        print(f"capture: {cres['seconds']:.1f} s in the imager ({human(cres['raw_bytes'] / max(cres['seconds'], 0.1))}/s), "
              f"{cap['total_s']:.0f} s power-on to power-off")
        print(f"deploy:  {dres['seconds']:.1f} s in the imager ({human(dres['raw_bytes'] / max(dres['seconds'], 0.1))}/s), "
              f"{dep['total_s']:.0f} s power-on to power-off")
        print(f"partition table identical: {'yes' if table_a == table_b else 'NO'}")
        print(f"files verified by SHA-256 on client B: {count if same_files else 'MISMATCH'} of {count}")
        print("(QEMU runs under TCG emulation here: expect real hardware to be much faster)")
        ok = same_files and table_a == table_b
        print(console_hint(lab, forward))
        if sys.stdin.isatty():
            input("the lab stays up for the console: press Enter to stop it ")
        forward.close()
    shutil.rmtree(lab.dir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except LabError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        sys.exit(1)
