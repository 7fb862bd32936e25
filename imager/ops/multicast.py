"""Multicast deploy: the same image onto many machines at once, one udp-sender on the server.

The recipe: read the image's manifest from NFS (the version the session pinned) and check that the
session sends exactly the streams this image restores, in that order; pick the disk and plan it as a
deploy does — every check before a single write — then write the partition table; tell the server the
disk is ready and wait for the session to start; then for each partition run udp-receiver, whose stdout
goes through the same SHA-256 check → zstd → partclone pipeline as a unicast deploy; grow what was captured
shrunk, set the hostname.  A machine that comes too late for its session (the server says "fallback") deploys
the same image by unicast from NFS instead of waiting for nothing.

udp-receiver's options are docs/multicast.md's: --start-timeout, --receive-timeout 30 and a 4 MiB socket
buffer (net.core.rmem_max raised for it). A receiver slower than the others slows the session, it does not
fail it (acknowledged full duplex); a failed receiver (exit ≠ 0) or a wrong checksum fails this task only.
"""
from __future__ import annotations

import logging
import os
import re
import time
from typing import Any, Callable

from imager import bootenv, datapath, disks, filesystems, manifest, postdeploy, process
from imager.errors import CommandFailed, InvalidImage, InvalidTask, MulticastFailed
from imager.ops import deploy as unicast
from imager.ops.capture import refuse_if_mounted
from imager.partitions import Layout, restore_table
from imager.progress import Progress, human
from imager.winhostname import set_windows_hostname
from contract.manifest import NotMulticastable, multicast_streams
from contract.udpcast import ReceiverOptions, receiver_argv
from contract.versions import is_version

log = logging.getLogger(__name__)

RCVBUF = 4 * 1024 * 1024
START_TIMEOUT = 180       # s: the sender of the next file starts when the last one ends
RECEIVE_TIMEOUT = 30      # s of silence mid-transfer before the receiver gives up
READY_POLL = 2.0          # s between "ready" calls while the session waits

Ready = Callable[[], dict]


def multicast_deploy(root: str, task: dict[str, Any], progress: Progress, ready: Ready) -> dict[str, Any]:
    session = task["multicast"]
    if session.get("fallback"):
        return fall_back(root, task, progress, session.get("reason") or "the session started without us")
    started = time.monotonic()
    image_dir = pinned_version(root, session)
    image = manifest.load(image_dir)
    files = [f["file"] for f in session["files"]]
    if files != streams(image):
        raise InvalidTask(f"the session sends {files}, image {session['version']} restores {streams(image)}")
    targets = unicast.select_targets(image, task.get("disk"))
    entries = image["disks"]
    raw = entries[0].get("mode") == "raw"
    plans = [None if raw else unicast.plan_disk(image, e, t) for e, t in zip(entries, targets)]
    if raw:
        check_raw_target(entries[0], targets[0])
    for target in targets:
        refuse_if_mounted(target.path)
    for entry, target, planned in zip(entries, targets, plans):   # the table now; the data from the sender
        if planned is not None:
            manifest.verify_small_files(image_dir, image["files"], unicast.small_files(entry))
            restore_table(target.path, Layout.from_dict(entry["layout"]), image_dir, entry["table_files"],
                          target.size_bytes, planned)
            disks.reread_partitions(target.path, [p.number for p in Layout.from_dict(entry["layout"]).partitions])
    raise_receive_buffer()
    answer = wait_for_start(ready, progress)
    if answer.get("fallback"):
        return fall_back(root, task, progress, answer.get("reason") or "the session started without us")
    ports = {f["file"]: f["portbase"] for f in answer["files"]}
    receiver = Receiver(interface=bootenv.choose_interface(task["host"]["mac"]), sender=answer.get("sender"))
    parts = []
    for entry, target in zip(entries, targets):
        if raw:
            progress.set_stage(f"multicast: whole disk {target.path}", total=entry["raw_bytes"])
            receiver.restore(ports[entry["file"]], image["files"][entry["file"]], "dd", target.path, progress)
            continue
        parts += [(target.path, p) for p in entry["partitions"]]
        for i, part in enumerate(entry["partitions"], 1):
            device = disks.partition_path(target.path, part["number"])
            if part["tool"] == filesystems.SWAP:
                filesystems.recreate_swap(device, part["uuid"], part["label"])
            elif part.get("file"):
                progress.set_stage(f"multicast: partition {i}/{len(entry['partitions'])}: "
                                   f"{os.path.basename(device)} ({part.get('fstype') or 'raw'})",
                                   total=part["raw_bytes"])
                shrunk = part.get("fs_bytes") is not None and part.get("fstype") in filesystems.SHRINKABLE
                receiver.restore(ports[part["file"]], image["files"][part["file"]], part["tool"], device, progress,
                                 shrunk=shrunk)
        for part in entry["partitions"]:   # captured shrunk: fill the partition again
            if part["number"] in unicast.shrunk_sizes(entry):
                filesystems.grow(disks.partition_path(target.path, part["number"]), part["fstype"])
    renamed = set_hostname(targets, parts, task.get("hostname"))
    process.run(["sync"], check=False)
    elapsed = time.monotonic() - started
    total = sum(p["raw_bytes"] for _, p in parts) if not raw else entries[0]["raw_bytes"]
    log.info("image %r deployed by multicast (session %s) onto %s: %s in %.1f s", image.get("name"),
             session["session"], ", ".join(t.path for t in targets), human(total), elapsed)
    return {"image": image.get("name"), "disk": ", ".join(t.path for t in targets), "raw_bytes": total,
            "seconds": round(elapsed, 1), "partitions": len(parts), "disks": len(targets),
            "multicast": {"session": session["session"], "files": len(files)}, "hostname_set": renamed}


def fall_back(root: str, task: dict[str, Any], progress: Progress, reason: str) -> dict[str, Any]:
    """Too late for the session: the same image, by unicast from NFS (what a deploy task does)."""
    message = f"multicast: {reason}"
    log.warning("%s", message)
    print(f"\n*** imager: {message} ***\n", flush=True)
    image_dir = pinned_version(root, task["multicast"])
    result = unicast.deploy(image_dir, task.get("disk"), progress, hostname=task.get("hostname"))
    return {**result, "multicast": {"session": task["multicast"]["session"], "fallback": reason}}


def pinned_version(root: str, session: dict) -> str:
    """The version the server sends, not whatever the image's link points at by now."""
    version = str(session.get("version", ""))
    if not is_version(version):
        raise InvalidTask(f"the session names no image version ({version!r})")
    image_dir = os.path.join(root, ".images", version)
    if not os.path.isdir(image_dir):
        raise InvalidImage(f"version {version} is not on the storage node", hint="It was replaced by a newer "
                           "capture meanwhile; start a new session.")
    return image_dir


def streams(image: dict) -> list[str]:
    """The files a multicast sends for this image, in the order this recipe restores them."""
    try:
        return multicast_streams(image)
    except NotMulticastable as exc:
        raise InvalidTask(str(exc)) from None


def check_raw_target(entry: dict, target: disks.Disk) -> None:
    if entry["sector_size"] != target.logical_sector_size or target.size_bytes < entry["size_bytes"]:
        raise InvalidTask(f"{target.path} ({target.size_bytes} bytes, {target.logical_sector_size}-byte sectors) "
                          f"cannot take the raw image ({entry['size_bytes']} bytes, {entry['sector_size']})")


def raise_receive_buffer(size: int = RCVBUF) -> None:
    """net.core.rmem_max caps udp-receiver's --rcvbuf (208 KiB by default): bursts while the disk is busy
    would be lost and asked for again."""
    path = "/proc/sys/net/core/rmem_max"
    try:
        with open(path) as f:
            if int(f.read()) >= size:
                return
        with open(path, "w") as f:
            f.write(str(size))
    except OSError as exc:
        log.warning("could not raise net.core.rmem_max: %s", exc)


def wait_for_start(ready: Ready, progress: Progress) -> dict:
    """Tell the server the disk is ready until it says join (the sender starts) or fall back."""
    progress.set_stage("multicast: waiting for the other machines", total=0)
    shown = 0.0
    while True:
        answer = ready()
        if answer.get("join") or answer.get("fallback"):
            return answer
        if answer.get("state") != "waiting":
            raise MulticastFailed(f"multicast session {answer.get('session')} is {answer.get('state')}")
        if time.monotonic() - shown > 30:
            log.info("multicast session %s: waiting for the other machines", answer.get("session"))
            shown = time.monotonic()
        time.sleep(READY_POLL)


class Receiver:
    """udp-receiver → SHA-256 → zstd → partclone, one file at a time."""

    def __init__(self, interface: str, sender: str | None) -> None:
        self.interface = interface
        self.sender = sender

    def restore(self, portbase: int, meta: dict, tool: str, device: str, progress: Progress,
                shrunk: bool = False) -> None:
        argv = receiver_argv(ReceiverOptions(portbase=portbase, interface=self.interface,
                                             mcast_rdv_address=self.sender, start_timeout=START_TIMEOUT,
                                             receive_timeout=RECEIVE_TIMEOUT, rcvbuf=RCVBUF, progress=False))
        udp = process.spawn(argv, stdout=process.PIPE)
        datapath.widen_pipe(udp.stdout)
        try:
            unicast.feed_partclone(tool, device, lambda sink: datapath.decompress_stream(
                udp.stdout, f"multicast stream on port {portbase}", sink, expected_sha256=meta.get("sha256"),
                expected_size=meta.get("size"), on_progress=progress.add), shrunk=shrunk)
        except Exception:
            time.sleep(0.5)
            if udp.proc.poll() not in (None, 0):   # the receiver's failure is the reason, not the short stream
                self._check(udp, portbase)
            udp.kill()
            raise
        except BaseException:
            udp.kill()
            raise
        self._check(udp, portbase)
        progress.flush()

    @staticmethod
    def _check(udp: process.Spawned, portbase: int) -> None:
        """udp-receiver's exit status is its verdict (it prints 'Transfer complete.' even when it gave up)."""
        try:
            udp.wait(check=True)
        except CommandFailed as exc:
            raise MulticastFailed(f"multicast receive on port {portbase} failed: {exc.message}") from exc


def set_hostname(targets: list, parts: list, hostname: str | None) -> dict[str, list[str]]:
    if not hostname:
        return {}
    renamed: dict[str, list[str]] = {"linux": [], "windows": []}
    for target in targets:
        on_disk = [p for path, p in parts if path == target.path]
        renamed["linux"] += postdeploy.set_linux_hostname(target.path, on_disk, hostname)
        renamed["windows"] += set_windows_hostname(target.path, on_disk, hostname)
    return renamed
