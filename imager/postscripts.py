"""After a deploy: the post-deploy scripts the task lists (FOG's postdownloadscripts, docs/fleet.md).

1. Every script is fetched from the server first, over the task API with the task token
   (``TaskClient.script``: a path under this task, never another host), and its SHA-256 compared with the one
   the task lists. A script that cannot be fetched or does not match is never run: its policy decides
   whether the task fails (``fail``) or goes on with a warning (``warn``).
2. The deployed filesystems are mounted read-write (ext2/3/4, xfs, btrfs with mount; NTFS with ntfs-3g; FAT
   as vfat); one that does not mount is left out of IMAGER_MOUNTS with a warning.
3. Each script runs in list order with the documented environment (``environment``) and nothing of the
   agent's (not the task token), its stdout and stderr in one file, logged line by line into the task log
   (the server gets the last lines with a failure) and its tail in the task's result. Past its timeout its
   process group is killed. A script that fails under ``fail`` stops the list and fails the task.
4. Everything is unmounted and the work directory removed on every path.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Iterator, Protocol, TypedDict

from imager import process
from imager.errors import ImagerError, PostDeployScriptFailed
from imager.partitions import probe_filesystem
from imager.ops.context import OpContext
from contract.task import Task, TaskScript

log = logging.getLogger(__name__)

MOUNT_TYPES = {"ext2": "ext2", "ext3": "ext3", "ext4": "ext4", "xfs": "xfs", "btrfs": "btrfs", "ntfs": "ntfs-3g",
               "vfat": "vfat", "fat12": "vfat", "fat16": "vfat", "fat32": "vfat"}
MOUNT_OPTIONS = {"ntfs-3g": "rw,remove_hiberfile"}  # as winhostname: a Fast Startup copy is writable then
OUTPUT_TAIL = 1500          # characters of a script's output kept in the task's result (the result is bounded)
LOGGED_LINES = 200          # lines of a script's output copied into the task log
SCRIPT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ScriptOutcome(TypedDict):
    name: str
    policy: str
    outcome: str            # ok, failed, timeout, refused (not fetched or not matching: never run)
    exit: int | None
    seconds: float
    output: str             # the tail of what it printed


@dataclass(frozen=True)
class Mounted:
    key: str                # "1" for partition 1 of the first disk, "2:1" for partition 1 of the second
    device: str
    fstype: str
    path: str | None        # None: not mounted


class Fetcher(Protocol):
    """Where scripts come from: the server, by the task's URL (imager.api.TaskClient.script)."""

    def script(self, url: str) -> bytes:
        """The bytes at ``url``; ImagerError (ServerError) when the server refuses or cannot be reached."""


def run_task_scripts(task: Task, client: Fetcher | None, disk_paths: list[str], storage: str | None = None,
                     inventory: dict[str, Any] | None = None) -> list[ScriptOutcome]:
    """The task's scripts on the deployed ``disk_paths``; their outcomes. Raises PostDeployScriptFailed when
    one under the ``fail`` policy is refused, fails or times out."""
    scripts = task.get("scripts") or []
    if not scripts:
        return []
    if client is None:
        raise PostDeployScriptFailed("the task lists post-deploy scripts but there is no server to fetch them from")
    outcomes: list[ScriptOutcome] = []
    with work_directory() as work:
        fetched: list[tuple[TaskScript, str]] = []
        for script in scripts:  # all fetched and checked first: a refused fail-policy script stops before any runs
            path, problem = fetch(client, script, work)
            if path is None:
                outcomes.append(_refused(script, problem))
                if script["policy"] == "fail":
                    raise _failure(outcomes[-1], outcomes)
            else:
                fetched.append((script, path))
        inventory_file = os.path.join(work, "inventory.json")
        with open(inventory_file, "w") as f:
            json.dump(inventory or {}, f, indent=1)
        with mounted_disks(disk_paths) as mounts:
            env = environment(task, disk_paths, mounts, inventory_file, storage)
            for script, path in fetched:
                outcome = run_one(script, path, {**env, "IMAGER_SCRIPT": script["name"]}, work)
                outcomes.append(outcome)
                if outcome["outcome"] != "ok" and script["policy"] == "fail":
                    raise _failure(outcome, outcomes)
    return outcomes


def fetch(client: Fetcher, script: TaskScript, work: str) -> tuple[str | None, str]:
    """(the script saved under ``work``, "") or (None, why it is refused)."""
    name = script["name"]
    try:
        data = client.script(script["url"])
    except ImagerError as exc:
        return None, f"refused: it could not be fetched from the server: {exc.message}"
    digest = hashlib.sha256(data).hexdigest()
    if digest != script["sha256"]:
        return None, (f"refused: the bytes fetched (SHA-256 {digest[:16]}…) do not match the task's SHA-256 "
                      f"{script['sha256'][:16]}…; not run")
    path = os.path.join(work, "scripts", f"{len(os.listdir(os.path.join(work, 'scripts')))}-{safe(name)}")
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o700)
    return path, ""


def safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:100] or "script"


def run_one(script: TaskScript, path: str, env: dict[str, str], work: str) -> ScriptOutcome:
    with open(path, "rb") as f:
        interpreted = f.read(2) == b"#!"
    argv = [path] if interpreted else ["/bin/sh", path]  # no #!: a shell script, as FOG runs them
    log.info("post-deploy script %s: running (timeout %d s, policy %s)", script["name"], script["timeout"],
             script["policy"])
    started = time.monotonic()
    output_path = os.path.join(work, f"{safe(script['name'])}.output")
    with open(output_path, "wb") as output:
        try:
            code = process.run_bounded(argv, env=env, cwd=work, timeout=script["timeout"], output=output)
            failure = ""
        except ImagerError as exc:  # could not start: a missing interpreter
            code, failure = 127, exc.message
    seconds = round(time.monotonic() - started, 1)
    with open(output_path, "rb") as f:
        text = f.read().decode(errors="replace") + (failure and f"\n{failure}\n")
    lines = text.splitlines()
    for line in lines[-LOGGED_LINES:]:
        log.info("  %s| %s", script["name"], line)
    outcome = "ok" if code == 0 else "timeout" if code is None else "failed"
    said = {"ok": "finished", "failed": f"failed with exit status {code}",
            "timeout": f"killed after its timeout of {script['timeout']} s"}[outcome]
    (log.info if outcome == "ok" else log.warning)("post-deploy script %s %s (%.1f s)", script["name"], said, seconds)
    return {"name": script["name"], "policy": script["policy"], "outcome": outcome, "exit": code,
            "seconds": seconds, "output": text[-OUTPUT_TAIL:]}


def environment(task: Task, disk_paths: list[str], mounts: list[Mounted], inventory_file: str,
                storage: str | None) -> dict[str, str]:
    """What a script is told (docs/task-json.md#post-deploy-scripts); nothing else of the agent's environment."""
    host = task.get("host") or {"mac": "", "name": ""}
    image = task.get("image") or {"name": ""}
    return {
        "PATH": SCRIPT_PATH, "LC_ALL": "C", "HOME": os.path.dirname(inventory_file),
        "IMAGER_TASK": str(task.get("id", "")),
        "IMAGER_HOSTNAME": task.get("hostname") or host.get("name", ""),
        "IMAGER_MAC": host.get("mac", ""),
        "IMAGER_IMAGE": image.get("name", ""),
        "IMAGER_DISK": disk_paths[0] if disk_paths else "",
        "IMAGER_DISKS": " ".join(disk_paths),
        "IMAGER_PARTITIONS": " ".join(f"{m.key}={m.device}" for m in mounts),
        "IMAGER_FSTYPES": " ".join(f"{m.key}={m.fstype}" for m in mounts if m.fstype),
        "IMAGER_MOUNTS": " ".join(f"{m.key}={m.path}" for m in mounts if m.path),
        "IMAGER_INVENTORY": inventory_file,
        "IMAGER_STORAGE": storage or "",
    }


@contextlib.contextmanager
def work_directory() -> Iterator[str]:
    work = tempfile.mkdtemp(prefix="imager-postdeploy-")
    os.mkdir(os.path.join(work, "scripts"), 0o700)
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def mounted_disks(disk_paths: list[str]) -> Iterator[list[Mounted]]:
    """Every partition of the deployed disks, the filesystems we can mount mounted; all unmounted on exit."""
    base = tempfile.mkdtemp(prefix="imager-mnt-")
    done: list[Mounted] = []
    try:
        for index, disk in enumerate(disk_paths, start=1):
            for number, device in partitions_of(disk):
                key = str(number) if index == 1 else f"{index}:{number}"
                fstype = probe_filesystem(device)["fstype"]
                point = os.path.join(base, f"p{number}" if index == 1 else f"d{index}p{number}")
                done.append(Mounted(key, device, fstype, mount(device, fstype, point)))
        yield done
    finally:
        for found in reversed(done):
            if found.path:
                unmount(found.path)
        if _still_mounted(base):  # never rmtree into a mounted filesystem
            log.error("post-deploy: %s still has mounts: left in place", base)
        else:
            shutil.rmtree(base, ignore_errors=True)


def partitions_of(disk: str) -> list[tuple[int, str]]:
    """(number, device node) of each partition of ``disk``, from sysfs."""
    name = os.path.basename(os.path.realpath(disk))
    sys_dir = f"/sys/class/block/{name}"
    found = []
    for entry in sorted(os.listdir(sys_dir)):
        try:
            with open(os.path.join(sys_dir, entry, "partition")) as f:
                found.append((int(f.read().strip()), f"/dev/{entry}"))
        except (OSError, ValueError):
            continue
    return sorted(found)


def mount(device: str, fstype: str, point: str) -> str | None:
    kind = MOUNT_TYPES.get(fstype)
    if kind is None:
        log.info("post-deploy: %s (%s) is not mounted for the scripts", device, fstype or "no filesystem")
        return None
    if kind == "ntfs-3g" and not os.path.exists("/dev/fuse"):  # the boot image has fuse as a module
        process.run(["modprobe", "fuse"], check=False)
    os.mkdir(point)
    result = process.run(["mount", "-t", kind, "-o", MOUNT_OPTIONS.get(kind, "rw"), device, point], check=False)
    if result.returncode != 0:
        log.warning("post-deploy: %s (%s) could not be mounted, the scripts will not see it: %s", device, fstype,
                    result.stderr.decode(errors="replace").strip()[-300:])
        os.rmdir(point)
        return None
    return point


def unmount(point: str) -> None:
    for attempt in range(5):
        # fuseblk (ntfs-3g): umount returns once everything is written back.
        if process.run(["umount", point], check=False).returncode == 0:
            os.rmdir(point)
            return
        time.sleep(0.2 * (attempt + 1))
    log.error("post-deploy: %s stays busy; detached lazily", point)
    process.run(["umount", "-l", point], check=False)


def _still_mounted(base: str) -> bool:
    with open("/proc/self/mounts") as f:
        return any(line.split()[1].startswith(base + "/") for line in f if len(line.split()) > 1)


def _refused(script: TaskScript, why: str) -> ScriptOutcome:
    (log.error if script["policy"] == "fail" else log.warning)("post-deploy script %s %s", script["name"], why)
    return {"name": script["name"], "policy": script["policy"], "outcome": "refused", "exit": None, "seconds": 0.0,
            "output": why}


def _failure(outcome: ScriptOutcome, outcomes: list[ScriptOutcome]) -> PostDeployScriptFailed:
    what = {"refused": outcome["output"], "failed": f"failed with exit status {outcome['exit']}",
            "timeout": "was killed after its timeout"}.get(outcome["outcome"], outcome["outcome"])
    return PostDeployScriptFailed(f"post-deploy script {outcome['name']} {what}", scripts=outcomes)


def after_deploy(ctx: OpContext, result: dict[str, Any]) -> dict[str, Any]:
    """The deploy op's last step: the task's scripts on the disks ``result`` names; their outcomes in it."""
    if not ctx.task.get("scripts"):
        return result
    disk_paths = [d for d in str(result.get("disk", "")).split(", ") if d]
    outcomes = run_task_scripts(ctx.task, ctx.client, disk_paths, ctx.storage, machine_inventory())
    return {**result, "scripts": outcomes}


def machine_inventory() -> dict[str, Any]:
    """IMAGER_INVENTORY's contents: this machine's inventory (docs/task-json.md), or {} if it cannot be read."""
    from imager.ops.inventory import collect  # the op's reader; imported here, as ops import this module
    try:
        return collect()
    except (OSError, ImagerError, ValueError) as exc:
        log.warning("post-deploy: the inventory for the scripts could not be read: %s", exc)
        return {}
