"""Post-deploy scripts end to end on this host: a real server serves the scripts to the task's token, a real
capture and deploy on loop devices (FAT ESP, NTFS Windows, ext4 Linux), both shipped examples run on the
deployed filesystems, and the refusals: a SHA-256 mismatch, a failing script, a timeout (process group
killed), each under its policy; nothing stays mounted."""
from __future__ import annotations

import hashlib
import os
import subprocess
import time
from pathlib import Path

import hivex
import pytest
import requests

from imager import postscripts
from imager.api import TaskClient
from imager.errors import PostDeployScriptFailed
from tests.disktools import attached, mounted_rw
from tests.regftools import empty_hive
from tests.server_stub.conftest import server, server_args  # noqa: F401
from tests.server_stub.test_api import token_of

pytestmark = pytest.mark.root
MiB = 1024 * 1024
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "postdeploy"
REG_SZ, REG_EXPAND_SZ = 1, 2
MAC = "52:54:00:00:00:01"
SHOW_ENV = "env | grep ^IMAGER_ | sort\n"


def admin(server, method, path, **body):
    answer = requests.request(method, server["url"] + path, json=body or None, headers=server["admin"], timeout=10)
    assert answer.status_code < 300, answer.text
    return answer.json()


def add_script(server, name: str, content: str, **attach) -> None:
    if not server.get("prepared"):  # the image and its host first: scripts attach to the image
        admin(server, "POST", "/api/storage", name="main", export="10.0.0.1:/images")
        admin(server, "POST", "/api/hosts", mac=MAC, name="pc1")
        admin(server, "POST", "/api/images", name="golden", storage="main")
        server["prepared"] = True
    admin(server, "POST", "/api/scripts", name=name, content=content)
    admin(server, "POST", f"/api/scripts/{name}/attach", image="golden", **attach)


def deploy_task(server) -> tuple[dict, TaskClient]:
    """A capture of "golden" reported done (so it may be deployed), then a deploy of it checked in, as a booted
    client does: its task (with the scripts) and its client."""
    for kind in ("capture", "deploy"):
        queued = admin(server, "POST", "/api/tasks", host="pc1", type=kind, image="golden")
        client = TaskClient(server["url"], queued["id"], token_of(server, MAC), attempts=2, base_delay=0.1)
        task = client.checkin()
        if kind == "capture":
            client.done({"image": "golden"})
    return task, client


def software_hive(path: Path) -> None:
    """SOFTWARE with Microsoft\\Windows\\CurrentVersion DevicePath as Windows ships it."""
    path.write_bytes(empty_hive(file_name="SOFTWARE"))
    h = hivex.Hivex(str(path), write=True)
    node = h.root()
    for name in ("Microsoft", "Windows", "CurrentVersion"):
        node = h.node_add_child(node, name)
    h.node_set_value(node, {"key": "DevicePath", "t": REG_EXPAND_SZ, "value": "%SystemRoot%\\inf\0".encode("utf-16-le")})
    h.commit(None)


def device_path(hive: Path) -> tuple[int, str]:
    h = hivex.Hivex(str(hive))
    node = h.root()
    for name in ("Microsoft", "Windows", "CurrentVersion"):
        node = h.node_get_child(node, name)
    value = next(v for v in h.node_values(node) if h.value_key(v) == "DevicePath")
    kind, data = h.value_value(value)
    return kind, data.decode("utf-16-le").rstrip("\0")


def make_source_disk(path: Path) -> None:
    """GPT: p1 FAT (an ESP), p2 NTFS with Windows' SOFTWARE hive, p3 ext4 with a cloned machine-id."""
    with open(path, "wb") as f:
        f.truncate(128 * MiB)
    subprocess.run(["sgdisk", "-n1:2048:+32M", "-t1:ef00", "-n2:0:+48M", "-t2:0700", "-n3:0:0", "-t3:8300",
                    str(path)], check=True, capture_output=True)
    with attached(path) as dev:
        subprocess.run(["partprobe", dev], check=False)
        subprocess.run(["mkfs.vfat", "-F", "16", f"{dev}p1"], check=True, capture_output=True)
        subprocess.run(["mmd", "-i", f"{dev}p1", "::/EFI"], check=True, capture_output=True)
        subprocess.run(["mkntfs", "-Q", "-F", f"{dev}p2"], check=True, capture_output=True)
        subprocess.run(["mkfs.ext4", "-q", "-F", f"{dev}p3"], check=True, capture_output=True)
        with mounted_rw(f"{dev}p2", "ntfs") as root:
            config = root / "Windows" / "System32" / "config"
            config.mkdir(parents=True)
            software_hive(config / "SOFTWARE")
        with mounted_rw(f"{dev}p3", "ext4") as root:
            (root / "etc").mkdir()
            (root / "etc" / "machine-id").write_text("0123456789abcdef0123456789abcdef\n")
            (root / "etc" / "hostname").write_text("golden\n")
            (root / "var" / "lib" / "dbus").mkdir(parents=True)
            (root / "var" / "lib" / "dbus" / "machine-id").write_text("0123456789abcdef0123456789abcdef\n")


def imager_mounts() -> list[str]:
    return [line for line in Path("/proc/mounts").read_text().splitlines() if "imager-mnt-" in line]


def test_both_examples_run_on_a_really_deployed_disk(server, tmp_path):
    from imager.ops.capture import capture_image
    from imager.ops.context import OpContext
    from imager.ops.deploy import deploy
    from imager.progress import Progress

    add_script(server, "show-env", SHOW_ENV, order=1, policy="warn")
    add_script(server, "machine-id-reset", (EXAMPLES / "linux-machine-id-reset.sh").read_text(), order=2)
    add_script(server, "windows-drivers", (EXAMPLES / "windows-drivers.py").read_text(), order=3, timeout=60)
    task, client = deploy_task(server)
    assert [s["name"] for s in task["scripts"]] == ["show-env", "machine-id-reset", "windows-drivers"]
    store = tmp_path / "store"
    common = store / "drivers" / "common" / "net"
    common.mkdir(parents=True)
    (common / "e1000.inf").write_text("[Version]\nSignature=\"$WINDOWS NT$\"\n")
    make_source_disk(tmp_path / "a.img")
    with open(tmp_path / "b.img", "wb") as f:
        f.truncate(160 * MiB)
    with attached(tmp_path / "a.img") as a, attached(tmp_path / "b.img") as b:
        capture_image(a, str(store), "golden", Progress())
        started = time.monotonic()
        result = deploy(OpContext({**task, "disk": b}, Progress(), client, str(store)))
        seconds = time.monotonic() - started
        assert not imager_mounts()
        outcomes = {o["name"]: o for o in result["scripts"]}
        assert [o["outcome"] for o in result["scripts"]] == ["ok", "ok", "ok"], result["scripts"]
        env = dict(line.split("=", 1) for line in outcomes["show-env"]["output"].splitlines())
        assert env["IMAGER_HOSTNAME"] == "pc1" and env["IMAGER_MAC"] == MAC and env["IMAGER_IMAGE"] == "golden"
        assert env["IMAGER_DISK"] == b and env["IMAGER_STORAGE"] == str(store)
        assert env["IMAGER_PARTITIONS"] == f"1={b}p1 2={b}p2 3={b}p3"
        assert env["IMAGER_FSTYPES"] == "1=vfat 2=ntfs 3=ext4"  # blkid: vfat for FAT16
        mounted_keys = [pair.split("=")[0] for pair in env["IMAGER_MOUNTS"].split()]
        fat_mounts = "vfat" in Path("/proc/filesystems").read_text()  # this host has no vfat driver: left out
        assert mounted_keys == (["1", "2", "3"] if fat_mounts else ["2", "3"])
        assert "IMAGER_TOKEN" not in outcomes["show-env"]["output"] and task["id"] == int(env["IMAGER_TASK"])
        assert "machine-id reset on partition 3" in outcomes["machine-id-reset"]["output"]
        assert "copied to C:\\Drivers" in outcomes["windows-drivers"]["output"]
        with mounted_rw(f"{b}p3", "ext4", readonly=True) as root:
            assert (root / "etc" / "machine-id").read_bytes() == b""
            assert not (root / "var" / "lib" / "dbus" / "machine-id").exists()
            assert (root / "etc" / "hostname").read_text() == "pc1\n"  # the deploy's own step ran before
        with mounted_rw(f"{b}p2", "ntfs", readonly=True) as root:
            assert (root / "Drivers" / "net" / "e1000.inf").read_text().startswith("[Version]")
            hive = tmp_path / "SOFTWARE"
            hive.write_bytes((root / "Windows" / "System32" / "config" / "SOFTWARE").read_bytes())
        assert device_path(hive) == (REG_EXPAND_SZ, "%SystemRoot%\\inf;%SystemDrive%\\Drivers")
        listed = subprocess.run(["mdir", "-i", f"{b}p1", "::/"], capture_output=True, text=True, check=True).stdout
        assert "EFI" in listed  # the ESP came through, mounted or not
    print(f"\ndeploy of 3 partitions + 3 post-deploy scripts: {seconds:.1f} s")


def test_a_script_not_matching_its_sha256_is_never_run(server, tmp_path):
    marker = tmp_path / "ran"
    add_script(server, "first", f"#!/bin/sh\ntouch {marker}-first\n", order=1)
    add_script(server, "tampered", f"#!/bin/sh\ntouch {marker}-tampered\n", order=2, policy="warn")
    task, client = deploy_task(server)
    task["scripts"][1]["sha256"] = hashlib.sha256(b"what the admin uploaded").hexdigest()
    outcomes = postscripts.run_task_scripts(task, client, [])  # warn: the others run, this one never
    assert [(o["name"], o["outcome"]) for o in outcomes] == [("tampered", "refused"), ("first", "ok")]
    assert "do not match the task's SHA-256" in outcomes[0]["output"]
    assert (tmp_path / "ran-first").exists() and not (tmp_path / "ran-tampered").exists()
    os.unlink(tmp_path / "ran-first")
    task["scripts"][1]["policy"] = "fail"  # fail: the task fails before any script runs
    with pytest.raises(PostDeployScriptFailed) as failed:
        postscripts.run_task_scripts(task, client, [])
    assert failed.value.code == "postdeploy_script" and "tampered" in failed.value.message
    assert "do not match" in failed.value.message and not (tmp_path / "ran-first").exists()


def test_a_script_from_elsewhere_or_deleted_is_refused(server, tmp_path):
    add_script(server, "gone", "#!/bin/sh\necho hi\n", policy="warn")
    task, client = deploy_task(server)
    admin(server, "DELETE", "/api/scripts/gone")
    outcomes = postscripts.run_task_scripts(task, client, [])
    assert outcomes[0]["outcome"] == "refused" and "HTTP 404" in outcomes[0]["output"]
    elsewhere = [{**task["scripts"][0], "url": "http://127.0.0.1:9/evil.sh"}]
    outcomes = postscripts.run_task_scripts({**task, "scripts": elsewhere}, client, [])
    assert outcomes[0]["outcome"] == "refused" and "not under /api/tasks/" in outcomes[0]["output"]


def test_a_failing_script_fails_the_task_under_fail_and_not_under_warn(server, tmp_path):
    add_script(server, "broken", "echo about to fail >&2\nexit 3\n", order=1, policy="warn")  # no #!: /bin/sh
    add_script(server, "strict", "#!/bin/sh\nexit 4\n", order=2, policy="fail")
    add_script(server, "never", f"#!/bin/sh\ntouch {tmp_path}/never\n", order=3)
    task, client = deploy_task(server)
    with pytest.raises(PostDeployScriptFailed) as failed:
        postscripts.run_task_scripts(task, client, [])
    outcomes = failed.value.details["scripts"]
    assert [(o["name"], o["outcome"], o["exit"]) for o in outcomes] == [("broken", "failed", 3),
                                                                       ("strict", "failed", 4)]
    assert "about to fail" in outcomes[0]["output"] and "strict failed with exit status 4" in failed.value.message
    assert not (tmp_path / "never").exists()


def test_a_script_past_its_timeout_is_killed_with_what_it_started(server, tmp_path):
    pids = tmp_path / "pids"
    add_script(server, "slow", f"#!/bin/sh\nsleep 60 &\necho $! > {pids}\necho started\nsleep 60\n", timeout=1,
               policy="warn")
    task, client = deploy_task(server)
    started = time.monotonic()
    outcomes = postscripts.run_task_scripts(task, client, [])
    assert time.monotonic() - started < 10
    assert (outcomes[0]["outcome"], outcomes[0]["exit"]) == ("timeout", None) and "started" in outcomes[0]["output"]
    child = int(pids.read_text())
    for _ in range(50):  # SIGKILLed: gone once its parent (init) reaps it
        if not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"the script's background child {child} survived its timeout")


def test_the_unmount_happens_when_a_script_fails(server, tmp_path):
    add_script(server, "fails", "#!/bin/sh\nls \"${IMAGER_MOUNTS#*=}\"\nexit 1\n")
    task, client = deploy_task(server)
    with open(tmp_path / "d.img", "wb") as f:
        f.truncate(64 * MiB)
    subprocess.run(["sgdisk", "-n1:2048:0", "-t1:8300", str(tmp_path / "d.img")], check=True, capture_output=True)
    with attached(tmp_path / "d.img") as dev:
        subprocess.run(["mkfs.ext4", "-q", "-F", f"{dev}p1"], check=True, capture_output=True)
        with pytest.raises(PostDeployScriptFailed) as failed:
            postscripts.run_task_scripts(task, client, [dev])
        assert "lost+found" in failed.value.details["scripts"][0]["output"]  # it did see the mounted ext4
        assert not imager_mounts()
