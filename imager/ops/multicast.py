"""Multicast deploy: the same image onto many machines at once, one udp-sender on the server.

The recipe: read the image's manifest from NFS (the version the session pinned) and check that the
session sends exactly the streams this image restores, in that order; pick the disk and plan it as a
deploy does — every check before a single write — then write the partition table; tell the server the
disk is ready and wait for the session to start; then restore the disk as a unicast deploy does
(deploy.restore_disk), with udp-receiver instead of the image's files as the source of each stream: its
stdout goes through the same SHA-256 check → zstd → partclone pipeline; grow what was captured shrunk,
set the hostname.  A machine that comes too late for its session (the server says "fallback") deploys
the same image by unicast from NFS instead of waiting for nothing.

A chunked partition arrives as one stream too (its header and bitmap, then its chunks: docs/multicast.md); its
index, read from NFS and checked against the manifest before the first write, is what each decompressed chunk
is checked against (imager/chunkstream.py) on its way to partclone.

udp-receiver's options are docs/multicast.md's: --start-timeout, --receive-timeout 30 and a 4 MiB socket
buffer (net.core.rmem_max raised for it). A receiver slower than the others slows the session, it does not
fail it (acknowledged full duplex); a failed receiver (exit ≠ 0) or a wrong checksum fails this task only.
"""
from __future__ import annotations

import logging
import os
import time
from typing import IO, Any, Callable, Mapping, cast

from contract import chunkindex
from contract.chunkindex import ChunkIndex

from imager import bootenv, datapath, manifest, postdeploy, postscripts, process
from imager.chunkpath import Transfer
from imager.chunkstream import receive_chunked
from imager.errors import CommandFailed, InvalidImage, InvalidTask, MulticastFailed
from imager.ops import deploy as unicast
from imager.ops.capture import refuse_if_mounted
from imager.ops.context import OpContext
from imager.progress import Progress, human
from contract.manifest import DiskEntry, FileEntry, Manifest, NotMulticastable, multicast_streams
from contract.task import MulticastSession
from contract.udpcast import ReceiverOptions, receiver_argv
from contract.versions import is_version

log = logging.getLogger(__name__)

RCVBUF = 4 * 1024 * 1024
START_TIMEOUT = 180       # s: the sender of the next file starts when the last one ends
RECEIVE_TIMEOUT = 30      # s of silence mid-transfer before the receiver gives up
READY_POLL = 2.0          # s between "ready" calls while the session waits

Ready = Callable[[], MulticastSession]


def multicast_deploy(ctx: OpContext) -> dict[str, Any]:
    """The session's image on this disk (or the unicast fallback), then the task's post-deploy scripts."""
    return postscripts.after_deploy(ctx, receive_and_restore(ctx))


def receive_and_restore(ctx: OpContext) -> dict[str, Any]:
    task, progress = ctx.task, ctx.progress
    session = task.get("multicast")
    if ctx.client is None or not isinstance(session, dict):
        raise InvalidTask("a multicast task needs its session and the server")
    if session.get("fallback"):
        return fall_back(ctx, session.get("reason") or "the session started without us")
    started = time.monotonic()
    if task.get("hostname"):
        postdeploy.check_hostname(task["hostname"] or "")  # before anything is written
    image_dir = pinned_version(ctx.storage_root, session)
    image = manifest.load(image_dir)
    files = [f["file"] for f in session.get("files", [])]
    if files != streams(image):
        raise InvalidTask(f"the session sends {files}, image {session.get('version')} restores {streams(image)}")
    targets = unicast.select_targets(image, task.get("disk"))
    entries = image["disks"]
    raw = entries[0].get("mode") == "raw"
    if raw:
        unicast.check_raw_target(entries[0], targets[0])
    plans = [] if raw else [unicast.plan_disk(image, e, t) for e, t in zip(entries, targets)]
    for target in targets:
        refuse_if_mounted(target.path)
    for entry in entries:  # tables and chunk indexes checked against the manifest before the first write
        manifest.verify_small_files(image_dir, image["files"], manifest.small_files(entry))
    indexes = chunk_indexes(image_dir, entries)
    # From the first write on, a failure leaves the disks blank, as a unicast deploy does: never a table
    # that looks whole over data that never came.
    with unicast.BlankOnFailure() as written:
        for entry, target, planned in zip(entries, targets, plans):   # the tables now; the data from the sender
            written.writing(target.path)
            unicast.write_disk_table(image_dir, image, entry, target, planned)
        raise_receive_buffer()
        answer = wait_for_start(ctx.client.ready, progress)
        if answer.get("fallback"):
            written.devices.clear()  # the unicast deploy takes the disks over (and blanks them itself)
            return fall_back(ctx, answer.get("reason") or "the session started without us")
        receiver = Receiver(ports={f["file"]: f["portbase"] for f in answer.get("files", [])},
                            files=image["files"], interface=bootenv.choose_interface(task["host"]["mac"]),
                            sender=answer.get("sender"), indexes=indexes)
        transfer = Transfer()  # chunked partitions: fetched = stored bytes received, wrote = chunk bytes
        if indexes:  # a chunked image: the deploy's three figures (nothing reused: a multicast writes it all)
            progress.figures = transfer.figures
        if raw:
            written.writing(targets[0].path)
            unicast.restore_raw_disk(entries[0], targets[0], receiver, progress)
        for entry, target, planned in zip(entries, targets, plans):
            unicast.restore_disk(image_dir, entry, target, planned, receiver, progress, transfer)
        renamed = unicast.set_hostname(targets, entries, task.get("hostname"))
    process.run(["sync"], check=False)
    elapsed = time.monotonic() - started
    parts = [p for entry in entries for p in entry.get("partitions", [])]
    total = entries[0]["raw_bytes"] if raw else sum(p["raw_bytes"] for p in parts)
    log.info("image %r deployed by multicast (session %s) onto %s: %s in %.1f s", image.get("name"),
             session.get("session"), ", ".join(t.path for t in targets), human(total), elapsed)
    result = {"image": image.get("name"), "disk": ", ".join(t.path for t in targets), "raw_bytes": total,
              "seconds": round(elapsed, 1), "partitions": len(parts), "disks": len(targets),
              "multicast": {"session": session.get("session"), "files": len(files)}, "hostname_set": renamed}
    if indexes:
        result.update(transfer.figures())
    return result


def fall_back(ctx: OpContext, reason: str) -> dict[str, Any]:
    """Too late for the session: the same image, by unicast from NFS (what a deploy task does)."""
    message = f"multicast: {reason}"
    log.warning("%s", message)
    print(f"\n*** imager: {message} ***\n", flush=True)
    session = ctx.task["multicast"]
    image_dir = pinned_version(ctx.storage_root, session)
    result = unicast.deploy_image(image_dir, ctx.task.get("disk"), ctx.progress, hostname=ctx.task.get("hostname"))
    return {**result, "multicast": {"session": session.get("session"), "fallback": reason}}


def pinned_version(root: str, session: MulticastSession) -> str:
    """The version the server sends, not whatever the image's link points at by now."""
    version = str(session.get("version", ""))
    if not is_version(version):
        raise InvalidTask(f"the session names no image version ({version!r})")
    image_dir = os.path.join(root, ".images", version)
    if not os.path.isdir(image_dir):
        raise InvalidImage(f"version {version} is not on the storage node", hint="It was replaced by a newer "
                           "capture meanwhile; start a new session.")
    return image_dir


def streams(image: Manifest | dict[str, Any]) -> list[str]:
    """The files a multicast sends for this image, in the order this recipe restores them."""
    try:
        return multicast_streams(image)
    except NotMulticastable as exc:
        raise InvalidTask(str(exc)) from None


def chunk_indexes(image_dir: str, entries: list[DiskEntry]) -> dict[str, ChunkIndex]:
    """Each chunked partition's index (file name → index), read whole before the first write."""
    indexes: dict[str, ChunkIndex] = {}
    for entry in entries:
        for part in entry.get("partitions", []):
            if part.get("chunks") and part.get("file"):
                name = part["file"] or ""
                try:
                    indexes[name] = chunkindex.read(os.path.join(image_dir, name))
                except (OSError, chunkindex.IndexError_) as exc:
                    raise InvalidImage(f"{name}: {exc}") from exc
    return indexes


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


def wait_for_start(ready: Ready, progress: Progress) -> MulticastSession:
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
    """A stream source for restore_disk: udp-receiver's stdout → SHA-256 → zstd → partclone, one file at a time
    (a chunked partition's: → zstd → each chunk checked against its index → partclone)."""

    label = "multicast: "

    def __init__(self, ports: dict[str, int], files: Mapping[str, FileEntry], interface: str, sender: str | None,
                 indexes: Mapping[str, ChunkIndex] | None = None) -> None:
        self.ports = ports
        self.files = files
        self.interface = interface
        self.sender = sender
        self.indexes = indexes or {}

    def restore(self, file: str, tool: str, device: str, progress: Progress, shrunk: bool = False) -> None:
        meta = self.files[file]
        self._receive(file, lambda stream, name: datapath.restore_stream(
            stream, name, tool, device, expected_sha256=meta.get("sha256"), expected_size=meta.get("size"),
            on_progress=progress.add, on_stored=progress.add_stored, shrunk=shrunk))

    def restore_chunks(self, image_dir: str, file: str, tool: str, device: str, progress: Progress,
                       transfer: Transfer, reuse: bool = False, shrunk: bool = False) -> None:
        """A chunked partition as one stream, each chunk checked against its index (read before the first write);
        nothing is reused: a multicast writes every block."""
        index = self.indexes[file]

        def received(n: int) -> None:
            progress.add_stored(n)
            transfer.count(fetched=n)

        def restore(stream: datapath.Readable, name: str) -> None:
            def feed(sink: IO[bytes]) -> None:
                raw = receive_chunked(stream, index, name, sink, on_progress=progress.add, on_stored=received)
                transfer.count(wrote=raw - len(index.header) - len(index.bitmap))
            datapath.feed_partclone(tool, device, feed, shrunk=shrunk)

        self._receive(file, restore)

    def _receive(self, file: str, restore: Callable[[datapath.Readable, str], object]) -> None:
        """udp-receiver for ``file``'s port, its stdout handed to ``restore``; its own failure is the reason."""
        portbase = self.ports[file]
        argv = receiver_argv(ReceiverOptions(portbase=portbase, interface=self.interface,
                                             mcast_rdv_address=self.sender, start_timeout=START_TIMEOUT,
                                             receive_timeout=RECEIVE_TIMEOUT, rcvbuf=RCVBUF, progress=False))
        udp = process.spawn(argv, stdout=process.PIPE)
        datapath.widen_pipe(udp.stdout)
        try:
            restore(cast(datapath.Readable, udp.stdout), f"multicast stream {file} on port {portbase}")
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

    @staticmethod
    def _check(udp: process.Spawned, portbase: int) -> None:
        """udp-receiver's exit status is its verdict (it prints 'Transfer complete.' even when it gave up)."""
        try:
            udp.wait(check=True)
        except CommandFailed as exc:
            raise MulticastFailed(f"multicast receive on port {portbase} failed: {exc.message}") from exc
