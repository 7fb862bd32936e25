"""`make screenshots`: the README's pictures of the console, taken by headless Chromium.

A real `imager-server serve` on loopback with demo data: an image captured by a simulated client, deploys
mid-way (their progress reported through the client's real API, imager/api.py), one queued, one failed,
and a host with an inventory. Then docs/img/console-dashboard.png and docs/img/console-host.png.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from imager.api import TaskClient
from tests.browser.chrome import missing_browser, new_browser, sign_in_with, wait_for
from tests.browser.serverproc import ConsoleServer, start_server, stop_server

IMAGE = "win11-classroom"
HOST_SHOWN = "lab-pc-02"
INVENTORY = {
    "dmi": {"sys_vendor": "LENOVO", "product_name": "ThinkCentre M720q", "bios_version": "M1UKT4BA"},
    "cpu": {"model": "Intel(R) Core(TM) i5-8500T CPU @ 2.10GHz", "sockets": 1, "cores": 6, "threads": 6},
    "memory_bytes": 16 * 2**30,
    "disks": [{"path": "/dev/nvme0n1", "size_bytes": 256060514304, "model": "SAMSUNG MZVLB256HAHQ",
               "serial": "S4ELNX0M812345", "wwn": "eui.0025388b81234567", "rotational": False,
               "removable": False, "bus": "nvme", "logical_sector_size": 512}],
    "nics": [{"name": "eno1", "mac": "52:54:00:aa:00:02", "speed_mbps": 1000, "driver": "e1000e"}],
}
GiB = 2**30
MAX_HEIGHT = 2400  # pixels: a whole page, within reason


def mac(n: int) -> str:
    return f"52:54:00:aa:00:{n:02x}"


def client_for(server: ConsoleServer, host_mac: str, task_id: int) -> TaskClient:
    client = TaskClient(server.url, task_id, server.task_token(host_mac), attempts=1)
    client.checkin()
    return client


def progress(percent: float, total: int, rate: int, stage: str = "d1p3") -> dict[str, object]:
    done = int(total * percent / 100)
    return {"stage": stage, "percent": percent, "bytes_done": done, "bytes_total": total,
            "rate_bps": rate, "eta_s": int((total - done) / rate), "ratio": 2.4}


def demo_data(server: ConsoleServer) -> None:
    server.api("POST", "/api/storage", expect=201, name="nas-1", export="10.0.0.5:/srv/images")
    server.api("POST", "/api/images", expect=201, name=IMAGE, storage="nas-1")
    server.api("POST", "/api/hosts", expect=201, mac=mac(0x10), name="lab-master")
    for n in range(1, 7):
        server.api("POST", "/api/hosts", expect=201, mac=mac(n), name=f"lab-pc-{n:02d}")
    capture = server.api("POST", "/api/tasks", expect=201, host="lab-master", type="capture", image=IMAGE)
    client_for(server, mac(0x10), capture["id"]).done({"stored_bytes": 19 * GiB, "raw_bytes": 46 * GiB,
                                                       "partitions": 4, "seconds": 1260})
    inventory = server.api("POST", "/api/tasks", expect=201, host=HOST_SHOWN, type="inventory")
    client_for(server, mac(2), inventory["id"]).done({"inventory": INVENTORY})
    failed = server.api("POST", "/api/tasks", expect=201, host="lab-pc-05", type="deploy", image=IMAGE)
    client_for(server, mac(5), failed["id"]).failed(
        {"code": "disk_too_small", "message": "the image needs 61.2 GiB; /dev/sda has 32.0 GiB",
         "hint": "deploy onto a larger disk, or capture a smaller image", "details": {}}, "")
    running = {1: 37.5, 2: 64.2, 3: 88.0}
    for n, percent in running.items():
        task = server.api("POST", "/api/tasks", expect=201, host=f"lab-pc-{n:02d}", type="deploy", image=IMAGE)
        client_for(server, mac(n), task["id"]).progress(progress(percent, 46 * GiB, (95 - 10 * n) * 2**20))
    server.api("POST", "/api/tasks", expect=201, host="lab-pc-04", type="deploy", image=IMAGE)


def take(server: ConsoleServer, out: Path) -> list[Path]:
    driver = new_browser(1280, 800)
    try:
        sign_in_with(driver, server.url, "admin", server.admin_token, "/")
        wait_for(driver, lambda d: d.find_elements("css selector", "[data-task]"), message="dashboard tasks")
        shots = []
        # The dashboard as a 1280×800 screen shows it; the host's page whole (inventory, history, boot log).
        for path, name, whole in (("/", "console-dashboard.png", False),
                                  (f"/hosts/{HOST_SHOWN}", "console-host.png", True)):
            driver.set_window_size(1280, 800)
            driver.get(server.url + path)
            wait_for(driver, lambda d: d.execute_script("return document.readyState") == "complete")
            if whole:
                height = driver.execute_script("return document.documentElement.scrollHeight")
                chrome = 800 - driver.execute_script("return window.innerHeight")
                driver.set_window_size(1280, min(int(height) + chrome, MAX_HEIGHT))
            target = out / name
            if not driver.save_screenshot(str(target)):
                raise RuntimeError(f"Chromium could not save {target}")
            shots.append(target)
        return shots
    finally:
        driver.quit()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Take the README's screenshots of the web console.")
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    args = parser.parse_args(argv)
    missing = missing_browser()
    if missing:
        print(f"screenshots need Chromium, its driver and selenium (make setup); missing: {missing}",
              file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="imager-screenshots-"))
    server = start_server(work)
    try:
        demo_data(server)
        for shot in take(server, args.out):
            print(f"wrote {shot}")
    finally:
        stop_server(server)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
