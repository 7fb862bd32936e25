"""Many chunks in one answer (issue 17, docs/http-transport.md#chunk-batches): a full deploy of a chunked image
needs tens of thousands of chunks, and one request each costs more CPU on both ends than the chunk's bytes.

``POST /api/tasks/{id}/chunks/batch`` with ``{"chunks": ["<sha256>", …]}`` (1 to ``MAX_BATCH_CHUNKS`` names, a
name may repeat) answers 200 ``application/octet-stream``: the stored chunk files back to back, in the order
asked, sent by the kernel (sendfile), with ``Chunk-Sizes: <size>,<size>,…`` so the client splits them without
trusting its index. The rules of the one-chunk route (imageserve.py): the running deploy's own token, its node,
names strictly 64 hex digits, plain files only; a name the node lacks answers 404 before anything is sent
(details.missing). At most ``MAX_BATCH_TRANSFERS_PER_TASK`` batches at once per task (429 beyond); a batch is
at most 256 chunks of at most 64 KiB compressed plus a frame's overhead: about 16 MiB, streamed from the files.

``send_chunks`` is the sending itself, a function of a directory and names: the benchmark serves a store
with it too (bench/incremental_net.py).
"""
from __future__ import annotations

import asyncio
import logging
import os
import re
import stat
from typing import Any, Callable

from aiohttp import web

from contract.chunkindex import CHUNKS_DIR, chunk_relpath
from server_stub.appkeys import STORE
from server_stub.errors import Invalid, NotFound, RateLimited
from server_stub.http import read_json
from server_stub.imageserve import served_root
from server_stub.store.models import Task

log = logging.getLogger(__name__)
MAX_BATCH_CHUNKS = 256
# The client keeps 4 batches in flight (imager/httpchunks.py); room for a retry overlapping.
MAX_BATCH_TRANSFERS_PER_TASK = 6
CHUNK_NAME = re.compile(r"^[0-9a-f]{64}$")


def names_of(body: dict[str, Any]) -> list[str]:
    """The chunk names a batch request asks for, or Invalid saying what is wrong."""
    names = body.get("chunks")
    if not isinstance(names, list) or not 1 <= len(names) <= MAX_BATCH_CHUNKS:
        raise Invalid(f"'chunks' must be a list of 1 to {MAX_BATCH_CHUNKS} chunk names", limit=MAX_BATCH_CHUNKS)
    bad = [name for name in names if not isinstance(name, str) or not CHUNK_NAME.match(name)]
    if bad:
        raise Invalid("a chunk is named by its SHA-256 in 64 lowercase hex digits", bad=[str(b)[:80] for b in bad[:5]])
    return names


def sizes_of(root: str, names: list[str]) -> list[int]:
    """The stored size of each named chunk of the store at ``root``; NotFound naming those it lacks."""
    sizes, missing = [], []
    for name in names:
        try:
            info = os.lstat(os.path.join(root, chunk_relpath(name)))
        except OSError:
            info = None
        if info is None or not stat.S_ISREG(info.st_mode):
            missing.append(name)
        else:
            sizes.append(info.st_size)
    if missing:
        raise NotFound(f"{len(missing)} of the chunks asked are not in {CHUNKS_DIR}/ on this node",
                       missing=missing[:10])
    return sizes


async def send_chunks(request: web.Request, root: str, names: list[str]) -> web.StreamResponse:
    """The named chunks of the store at ``root``, back to back (see the module's docstring)."""
    sizes = sizes_of(root, names)
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream", "Cache-Control": "no-store",
                                           "Chunk-Sizes": ",".join(map(str, sizes))})
    response.content_length = sum(sizes)  # a length, not chunked encoding: sendfile writes the body itself
    await response.prepare(request)
    transport = request.transport
    loop = asyncio.get_running_loop()
    try:
        for name, size in zip(names, sizes):
            with open(os.path.join(root, chunk_relpath(name)), "rb") as f:
                if transport is None or transport.is_closing():
                    raise ConnectionResetError("the client closed the connection")
                # A chunk rewritten or removed since it was measured would break the framing: stop short instead,
                # the client sees a short answer and fetches what it lacks one by one.
                if os.fstat(f.fileno()).st_size != size:
                    raise ConnectionResetError(f"chunk {name} changed while being sent")
                await loop.sendfile(transport, f, 0, size)
    except (ConnectionError, OSError) as exc:
        log.info("a chunk batch stopped short: %s", exc)
        if transport is not None:
            transport.close()
        return response
    await response.write_eof()
    return response


def routes(authorized: Callable[[web.Request], Task]) -> list[web.RouteDef]:
    batches: dict[int, int] = {}  # task id → batches being sent

    async def batch(request: web.Request) -> web.StreamResponse:
        task = authorized(request)  # 401 for a wrong token or an unknown task
        _node, root = served_root(request.app[STORE], task)
        names = names_of(await read_json(request))
        if batches.get(task["id"], 0) >= MAX_BATCH_TRANSFERS_PER_TASK:
            raise RateLimited(f"task {task['id']} has {MAX_BATCH_TRANSFERS_PER_TASK} chunk batches in progress",
                              retry_after=1)
        batches[task["id"]] = batches.get(task["id"], 0) + 1
        try:
            return await send_chunks(request, root, names)
        finally:
            batches[task["id"]] -= 1
            if not batches[task["id"]]:
                del batches[task["id"]]
    return [web.post("/api/tasks/{id:\\d+}/chunks/batch", batch)]
