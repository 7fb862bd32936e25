"""Replication: the server copies a published image from its home node (the master it was captured to)
to the other nodes of the group with rsync, one job at a time per node, inside the server's event loop.

The copy keeps imager's publication rule (imager/imagestore.py) on the target node:
 1. ``rsync -rlpt --delete --mkpath SRC/.images/<version>/ TARGET/.images/<version>/`` — the version
    directory, invisible to deploys while it fills (nothing points at it yet);
 2. ``rsync -l LINK TARGET/`` where LINK is a local symlink ``<name> → .images/<version>``: rsync creates
    it under a temporary name beside ``<name>`` and renames it over the old one, so the target switches from
    the previous complete version to the new complete one in one rename;
 3. ``rsync -r --delete`` of an empty directory into ``TARGET/.images/`` with filters that leave everything
    but the older ``<name>@*`` versions alone: the replaced version goes, as on the master.
A chunked version (its ``dNpM.cidx`` indexes name chunks of the node's shared store ``.chunks/``, issue 17) adds
one step between 1 and 2: ``rsync --ignore-existing --files-from=LIST SRC/.chunks/ TARGET/.chunks/`` of exactly
the chunks its indexes name (a chunk's name is its content: one already there is never sent again; the trash and
temporary files are never listed), each checked present on the source first. The version directory goes first so
that its indexes protect those chunks from the target's collector (server_stub/chunkgc.py marks unlinked versions
too); the link goes last, once every chunk is there. The collector and a replication never run on one node at once.
The source must be a directory on this server (the master's ``rsync_target``); targets may be local
directories, ``rsync://host/module/path`` (an rsync daemon) or ``user@host:/path`` (rsync over ssh, batch
mode: a key, no password prompt).
"""
from __future__ import annotations

import asyncio
import logging
import os
import re
import tempfile
from typing import Callable

from contract import chunkindex
from contract.versions import VERSIONS_DIR, version_of_link
from server_stub.store import Store
from server_stub.store.models import ReplicationJob

log = logging.getLogger(__name__)

RSYNC = "rsync"
_PROGRESS = re.compile(rb"^\s*([\d,]+)\s+\d+%")
_TRANSFERRED = re.compile(r"Total transferred file size: ([\d,]+)")


class ReplicationError(RuntimeError):
    pass


def _remote_options(target: str) -> list[str]:
    options = ["--timeout=300"]  # a silent peer fails the job instead of holding the node forever
    if target.startswith("rsync://"):
        options.append("--contimeout=30")
    elif not target.startswith("/"):
        options += ["-e", "ssh -o BatchMode=yes -o ConnectTimeout=30"]
    return options


def published_version(source_root: str, name: str) -> str:
    """``<name>@<stamp>`` that ``<source_root>/<name>`` points at, checked to be one of ours."""
    link = os.path.join(source_root, name)
    try:
        pointed = os.readlink(link)
    except OSError as exc:
        raise ReplicationError(f"image {name} is not published on the source ({link}: {exc.strerror})") from exc
    version = version_of_link(name, pointed)
    if not version or not os.path.isdir(os.path.join(source_root, pointed)):
        raise ReplicationError(f"{link} → {pointed} is not a version directory published by imager")
    return version


def copy_argv(source_root: str, target: str, version: str) -> list[str]:
    return [RSYNC, "-rlpt", "--delete", "--mkpath", "--stats", "--info=progress2", *_remote_options(target),
            f"{source_root.rstrip('/')}/.images/{version}/", f"{target}.images/{version}/"]


def chunks_argv(source_root: str, target: str, listing: str) -> list[str]:
    return [RSYNC, "--ignore-existing", "--mkpath", f"--files-from={listing}", "--stats", "--info=progress2",
            *_remote_options(target), f"{source_root.rstrip('/')}/{chunkindex.CHUNKS_DIR}/",
            f"{target}{chunkindex.CHUNKS_DIR}/"]


def list_needed_chunks(source_root: str, version: str, listing: str) -> int:
    """Writes the store paths (``ab/<sha>.zst``) of every chunk the version's indexes name into ``listing``, once
    each; how many (0: not a chunked version). A chunk missing from the source's store fails the job here."""
    folder = os.path.join(source_root, VERSIONS_DIR, version)
    indexes = sorted(n for n in os.listdir(folder) if n.endswith(chunkindex.INDEX_SUFFIX))
    seen: set[bytes] = set()
    with open(listing, "w") as out:
        for index in indexes:
            try:
                names = list(chunkindex.names_in(os.path.join(folder, index)))
            except (OSError, chunkindex.IndexError_) as exc:
                raise ReplicationError(f"{version}/{index} cannot be read: {exc}") from exc
            for name in names:
                digest = bytes.fromhex(name)
                if digest in seen:
                    continue
                seen.add(digest)
                relative = chunkindex.chunk_relpath(name)
                if not os.path.isfile(os.path.join(source_root, relative)):
                    raise ReplicationError(f"{version} needs chunk {name}, which the source's store lacks "
                                           "(imager verify names every missing chunk)")
                out.write(relative.split("/", 1)[1] + "\n")
    return len(seen)


def link_argv(link: str, target: str) -> list[str]:
    return [RSYNC, "-l", *_remote_options(target), link, target]


def prune_argv(empty_dir: str, target: str, name: str, version: str) -> list[str]:
    # First matching rule wins; the rules protect (P) or expose (R) files on the receiving side only.
    return [RSYNC, "-r", "--delete", f"--filter=P /{version}", f"--filter=R /{name}@*", "--filter=P /*",
            *_remote_options(target), empty_dir.rstrip("/") + "/", f"{target}.images/"]


async def run_rsync(argv: list[str], on_bytes: Callable[[int], None] | None = None) -> str:
    """Runs rsync without blocking the loop; returns its stdout; a failure raises with stderr's last lines.
    ``on_bytes(n)`` hears the bytes copied so far (``--info=progress2`` lines)."""
    proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = bytearray(), bytearray()

    async def read_stdout() -> None:
        assert proc.stdout is not None
        while chunk := await proc.stdout.read(65536):
            out.extend(chunk)
            if on_bytes is not None:
                for line in reversed(re.split(rb"[\r\n]", bytes(chunk))):
                    match = _PROGRESS.match(line)
                    if match:
                        on_bytes(int(match.group(1).replace(b",", b"")))
                        break

    async def read_stderr() -> None:
        assert proc.stderr is not None
        while chunk := await proc.stderr.read(65536):
            err.extend(chunk[: max(0, 65536 - len(err))])

    try:
        await asyncio.gather(read_stdout(), read_stderr())
        code = await proc.wait()
    except asyncio.CancelledError:  # the server stops: stop our rsync, by its PID, and leave
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if code != 0:
        tail = " | ".join(err.decode(errors="replace").strip().splitlines()[-4:])
        raise ReplicationError(f"rsync exited with {code}: {tail or 'no message'}")
    return out.decode(errors="replace")


def _transferred(stats: str) -> int:
    match = _TRANSFERRED.search(stats)
    return int(match.group(1).replace(",", "")) if match else 0


async def replicate(job: ReplicationJob, on_progress: Callable[[int, str], None] | None = None) -> tuple[str, int]:
    """Copies ``job``'s image to its node and publishes it there; returns (version, bytes copied)."""
    source, target = job["source_target"], job["node_target"]
    if not source or not source.startswith("/"):
        raise ReplicationError(f"node {job['source']} (the image's source) needs --rsync-target set to the "
                               "directory of its export on this server")
    if not target:
        raise ReplicationError(f"node {job['node']} has no --rsync-target")
    version = published_version(source, job["image"])
    if on_progress:
        on_progress(0, version)
    stats = await run_rsync(copy_argv(source, target, version),
                            (lambda n: on_progress(n, version)) if on_progress else None)
    copied = _transferred(stats)
    with tempfile.TemporaryDirectory(prefix="imager-replicate-") as tmp:
        listing = os.path.join(tmp, "chunks")
        if await asyncio.to_thread(list_needed_chunks, source, version, listing):
            before = copied
            stats = await run_rsync(chunks_argv(source, target, listing),
                                    (lambda n: on_progress(before + n, version)) if on_progress else None)
            copied += _transferred(stats)
        link = os.path.join(tmp, job["image"])
        os.symlink(f".images/{version}", link)
        await run_rsync(link_argv(link, target))
        empty = os.path.join(tmp, "empty")
        os.mkdir(empty)
        await run_rsync(prune_argv(empty, target, job["image"], version))
    return version, copied


class Replicator:
    """Runs queued jobs: one at a time per node, as many nodes at once as have jobs."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.running: dict[int, asyncio.Task] = {}
        self._last_report: dict[int, float] = {}
        self.paused_nodes: set[int] = set()  # nodes whose chunk store is being collected (chunkgcapi.py)

    def start(self) -> None:
        requeued = self.store.requeue_interrupted_replication()
        if requeued:
            log.info("replication: %d job(s) interrupted by a stop queued again", requeued)
        self.wake()

    def wake(self) -> None:
        """Start what can start; called after anything that queues a job and when a job ends."""
        while job := self.store.claim_replication(set(self.running) | self.paused_nodes):
            log.info("replication %d: image %s from %s to %s", job["id"], job["image"], job["source"], job["node"])
            self.running[job["node_id"]] = asyncio.get_running_loop().create_task(self._run(job))

    async def _run(self, job: ReplicationJob) -> None:
        loop = asyncio.get_running_loop()

        def progress(nbytes: int, version: str) -> None:  # at most one write a second per job
            if loop.time() - self._last_report.get(job["id"], 0) >= 1:
                self._last_report[job["id"]] = loop.time()
                self.store.replication_progress(job["id"], nbytes, version)

        try:
            version, copied = await replicate(job, progress)
            self.store.replication_progress(job["id"], copied, version)
            self.store.end_replication(job["id"], "done", copied)
            log.info("replication %d done: %s on %s, %d bytes copied", job["id"], version, job["node"], copied)
        except asyncio.CancelledError:
            raise  # the job stays running in the database and is queued again at the next start
        except Exception as exc:  # any failure ends this job, never the server
            message = str(exc) if isinstance(exc, (ReplicationError, OSError)) else f"internal error: {exc!r}"
            self.store.end_replication(job["id"], "failed", error=message)
            log.warning("replication %d failed: %s", job["id"], message)
        finally:
            self._last_report.pop(job["id"], None)
            if self.running.get(job["node_id"]) is asyncio.current_task():
                del self.running[job["node_id"]]
        self.wake()

    async def close(self) -> None:
        tasks = list(self.running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.running.clear()
