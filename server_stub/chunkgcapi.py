"""Running the chunk store's collector (server_stub/chunkgc.py) inside the server: on an admin's request
(``POST /api/storage/nodes/{name}/gc``, ``imager-server storage gc NODE``, the console's button), after an old
version or an image is removed, and every 6 hours per node.

A run reads and renames files for as long as the store is big: it runs in a thread, never in the event loop.
One run per node at a time (an admin's second request while one runs is refused with 409; an automatic one is
run again once the current one ends), and never while a replication copies to that node, nor a replication
starting during a run: a replica's chunks arrive before its version's link, and a run that marked before the
version's indexes arrived must not take a chunk the copy found already there (server_stub/replication.py).
Only nodes whose ``rsync_target`` is a directory on this server are collected; a remote node's store is
collected by a server that holds it as a directory.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from typing import Any, AsyncIterator, Callable

from aiohttp import web

from server_stub import chunkgc
from server_stub.accounts import AUDIT_TARGET
from server_stub.errors import Conflict
from server_stub.http import Handler, json_response
from server_stub.replication import Replicator
from server_stub.store import Store
from server_stub.store.models import StorageNode

log = logging.getLogger(__name__)

INTERVAL = 6 * 3600.0      # seconds between two automatic runs on a node
CHECK_EVERY = 600.0        # seconds between two looks at which node is due
LAST_RUN_FILE = ".gc-last.json"  # in the node's .chunks/: the last run's report, its time (survives restarts)

Clock = Callable[[], float]


def local_root(node: StorageNode) -> str:
    """The node's directory on this server, or a 409 saying why there is none."""
    target = node["rsync_target"] or ""
    if not target.startswith("/"):
        where = f"its rsync target is {target}" if target else "it has no --rsync-target"
        raise Conflict(f"node {node['name']}'s chunks are not collected by this server: {where}, not a directory "
                       "on this server (collect them where that directory is local)", node=node["name"])
    return target


def last_run(root: str) -> dict[str, Any] | None:
    """The last run's report on this node (with ``finished``), or None."""
    try:
        with open(os.path.join(chunkgc.store_dir(root), LAST_RUN_FILE)) as f:
            found = json.load(f)
        return found if isinstance(found, dict) else None
    except (OSError, ValueError):
        return None


def _remember(root: str, report: dict[str, Any]) -> None:
    path = os.path.join(chunkgc.store_dir(root), LAST_RUN_FILE)
    try:
        with open(path + ".tmp", "w") as f:
            json.dump(report, f)
        os.replace(path + ".tmp", path)
    except OSError as exc:
        log.warning("chunk collection: cannot write %s: %s", path, exc.strerror)


AUDIT_ACTOR = "chunk collector"


class ChunkCollector:
    def __init__(self, store: Store, replicator: Replicator, *, grace: float = chunkgc.GRACE,
                 interval: float = INTERVAL, check_every: float = CHECK_EVERY, clock: Clock = time.time) -> None:
        self.store, self.replicator = store, replicator
        self.grace, self.interval, self.check_every, self.clock = grace, interval, check_every, clock
        self.running: dict[str, asyncio.Task[dict[str, Any]]] = {}  # by node name
        self.again: set[str] = set()        # automatic requests that came while the node's run went on
        self._loop_task: asyncio.Task[None] | None = None

    # --- one run ------------------------------------------------------------------------------------
    async def run(self, node_name: str) -> dict[str, Any]:
        """An admin's run: its report, or 409 (not local, a run or a replication under way, the run stopped)."""
        node = self.store.storage(node_name)
        root = local_root(node)
        if node["name"] in self.running:
            raise Conflict(f"a chunk collection is already running on node {node['name']}; try again when it ends",
                           node=node["name"])
        if node["id"] in self.replicator.running:
            raise Conflict(f"a replication is copying to node {node['name']}; collect when it ends", node=node["name"])
        task = self._start(node, root)
        try:
            return await asyncio.shield(task)
        except chunkgc.GcError as exc:
            raise Conflict(f"chunk collection on node {node['name']} stopped: {exc}", node=node["name"]) from None

    def _start(self, node: StorageNode, root: str, automatic: bool = False) -> asyncio.Task[dict[str, Any]]:
        self.replicator.paused_nodes.add(node["id"])
        task = asyncio.get_running_loop().create_task(self._collect(node, root, automatic))
        self.running[node["name"]] = task
        return task

    async def _collect(self, node: StorageNode, root: str, automatic: bool) -> dict[str, Any]:
        try:
            report = await asyncio.to_thread(chunkgc.collect, root, now=self.clock(), grace=self.grace)
        except Exception as exc:
            if automatic:  # an admin's run is audited as their request
                self._audit(node, f"stopped: {exc}")
            raise
        else:
            if automatic:
                self._audit(node, f"ok: {report.deleted} deleted ({report.freed_bytes} bytes freed), "
                                  f"{report.quarantined - report.restored} quarantined")
            answer = {"node": node["name"], **report.as_dict(), "finished": self.clock()}
            await asyncio.to_thread(_remember, root, answer)
            log.info("chunk collection on %s: %d marked, %d quarantined (%d put back), %d deleted, %d bytes freed "
                     "in %.1f s", node["name"], report.marked, report.quarantined, report.restored, report.deleted,
                     report.freed_bytes, report.seconds)
            return answer
        finally:
            del self.running[node["name"]]
            self.replicator.paused_nodes.discard(node["id"])
            self.replicator.wake()
            if node["name"] in self.again:
                self.again.discard(node["name"])
                asyncio.get_running_loop().call_soon(self.request, node["name"])

    def request(self, node_name: str) -> None:
        """An automatic run on the node when it can start; failures are logged, never raised."""
        try:
            node = self.store.storage(node_name)
            root = local_root(node)
        except Exception:  # removed or not local meanwhile: nothing to collect here
            return
        if node["name"] in self.running or node["id"] in self.replicator.running:
            self.again.add(node["name"])  # when the run ends, or at the next periodic look
            return
        self._start(node, root, automatic=True).add_done_callback(self._log_failure)

    def _audit(self, node: StorageNode, outcome: str) -> None:
        """Automatic runs delete data nobody clicked for: the audit log says when and what they did."""
        self.store.accounts.audit(AUDIT_ACTOR, "system", "automatic", "collect chunks", node["name"], outcome, None)

    @staticmethod
    def _log_failure(task: asyncio.Task[dict[str, Any]]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.warning("automatic chunk collection stopped: %s", task.exception())

    # --- automatic triggers -------------------------------------------------------------------------
    def collect_after_removals(self) -> None:
        """Every removal of an old version or of an image, whoever asks for it (API, console), is followed by a
        run on the nodes concerned (the store tells its removal listeners)."""
        def removed(nodes: set[str]) -> None:
            for node in sorted(nodes):
                self.request(node)
        self.store.on_removal(removed)

    def due_nodes(self, nodes: list[StorageNode] | None = None) -> list[str]:
        """Local nodes (of ``nodes``, default the store's) with a chunk store whose last run is ``interval`` old
        (or never ran). Reads files only when given ``nodes``: the store is not for other threads."""
        due = []
        for node in self.store.storage_nodes() if nodes is None else nodes:
            target = node["rsync_target"] or ""
            if not target.startswith("/") or not os.path.isdir(chunkgc.store_dir(target)):
                continue
            last = last_run(target)
            finished = last.get("finished") if last else None
            if not isinstance(finished, (int, float)) or self.clock() - finished >= self.interval:
                due.append(node["name"])
        return due

    async def run_forever(self) -> None:
        while True:
            try:
                waiting, self.again = self.again, set()
                nodes = self.store.storage_nodes()  # here, in the event loop's thread: SQLite is not shared
                for name in sorted(waiting | set(await asyncio.to_thread(self.due_nodes, nodes))):
                    self.request(name)
            except Exception:
                log.exception("the chunk collector's periodic look failed; trying again")
            await asyncio.sleep(self.check_every)

    def start(self) -> None:
        self._loop_task = asyncio.get_running_loop().create_task(self.run_forever())

    async def close(self) -> None:
        """Stops the periodic look and waits for the runs under way (a thread cannot be stopped halfway; a run
        stopped between its steps leaves only quarantined chunks, which the next run handles)."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        await asyncio.gather(*self.running.values(), return_exceptions=True)


COLLECTOR = web.AppKey("chunk_collector", ChunkCollector)


async def collect_node(request: web.Request) -> web.Response:
    request[AUDIT_TARGET] = request.match_info["name"][:100]
    return json_response(await request.app[COLLECTOR].run(request.match_info["name"]))


async def last_collection(request: web.Request) -> web.Response:
    node = request.app[COLLECTOR].store.storage(request.match_info["name"])
    return json_response({"node": node["name"], "last": last_run(local_root(node))})


def routes(admin_only: Callable[[Handler], Handler], staff: Callable[[Handler], Handler]) -> list[web.RouteDef]:
    return [web.post("/api/storage/nodes/{name}/gc", admin_only(collect_node)),
            web.get("/api/storage/nodes/{name}/gc", staff(last_collection))]


async def lifecycle(app: web.Application) -> AsyncIterator[None]:
    collector = app[COLLECTOR]
    collector.collect_after_removals()
    collector.start()
    yield
    await collector.close()
