"""Images over HTTP (issue 17, docs/http-transport.md): a storage node's deploys without NFS.

A node whose ``http_url`` is ``server`` is served by this route, read-only, from its local directory (the
node's ``--rsync-target``); a node with an ``http(s)://`` URL is served by an ordinary web server, which this
server only names in the checkin answer.

``GET /api/tasks/{id}/image/{version}/{file}`` answers one file of one image, with Range and Content-Length
(aiohttp's FileResponse), and nothing else:
- only for the running deploy task whose token the request carries (401 otherwise, as for any client call):
  a machine reads the image it was told to deploy, not the store. Published versions are not public here,
  because routed sites are the reason for HTTP and an image holds whole disks (password hashes, keys);
- only its task's image (``{version}`` is ``<image>@<stamp>`` or the image's own name, its published link),
  from the node the task was placed on;
- only a plain file directly in that version's directory, named as imager names image files; symlinks, dot
  files and directories are 404: there is no listing and no way out of the directory;
- at most ``MAX_TRANSFERS_PER_TASK`` transfers at once per task (429 beyond), so one machine cannot hold many
  of the server's connections.

``GET /api/tasks/{id}/chunks/{ab}/{sha256}.zst`` answers one chunk of the node's chunk store (``.chunks/`` at
its root, shared by the group's chunked images; docs/chunking.md) under the same rules: the running deploy's
own token, its node, names strictly ``<2 hex>/<64 hex>.zst`` with the same first two digits (nothing else,
neither ``.trash/`` nor a chunk being written under a temporary name), a plain file. A chunk is named by the
SHA-256 of its data, so naming one means knowing its hash: the route does not read the image's index at every
request to check the chunk belongs to it. Its own bound, ``MAX_CHUNK_TRANSFERS_PER_TASK``, as the client keeps
many small requests in flight.
"""
from __future__ import annotations

import logging
import os
import re
import stat
from typing import Any, Callable

from aiohttp import web

from contract.chunkindex import CHUNKS_DIR, chunk_relpath
from contract.versions import VERSIONS_DIR, is_version, version_of_link
from server_stub.appkeys import STORE
from server_stub.errors import Conflict, NotFound, RateLimited
from server_stub.store import Store
from server_stub.store.models import StorageNode, Task
from server_stub.store.storage import SERVER_HTTP

log = logging.getLogger(__name__)
# The client keeps at most 4 requests in flight (imager/httpstore.py); a little room for a retry overlapping.
MAX_TRANSFERS_PER_TASK = 6
# The client keeps 16 chunk requests in flight (imager/httpstore.py); room for retries overlapping.
MAX_CHUNK_TRANSFERS_PER_TASK = 24
CHUNK_DIR = re.compile(r"^[0-9a-f]{2}$")
CHUNK_FILE = re.compile(r"^[0-9a-f]{64}\.zst$")
IMAGE_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")  # manifest.json, d1p2.pcl.zst, d1.sfdisk …


def transport_of(task: Task, node: StorageNode | None) -> str:
    """``http`` for a deploy from a node with an HTTP transport; anything else (captures, multicast) uses NFS."""
    return "http" if node is not None and node.get("http_url") and task["type"] == "deploy" else "nfs"


def chunks_url(task: Task, node: StorageNode) -> str:
    """The base URL of the node's chunk store: '<base><2 hex>/<sha256>.zst' is one chunk."""
    if node["http_url"] != SERVER_HTTP:
        return f"{node['http_url']}{CHUNKS_DIR}/"
    return f"/api/tasks/{task['id']}/chunks/"


def image_url(task: Task, node: StorageNode) -> str:
    """The base URL of the task's image directory: '<base><file>' is one of its files. For this server a path
    (the client fetches it with its task token, from the server it talks to), pinned to the version published
    now when this server can see it, so a capture publishing meanwhile cannot mix two versions."""
    name = str(task["image"])
    if node["http_url"] != SERVER_HTTP:
        return f"{node['http_url']}{name}/"
    version = published_version(node, name) or name
    return f"/api/tasks/{task['id']}/image/{version}/"


def local_root(node: StorageNode) -> str | None:
    target = node.get("rsync_target") or ""
    return target if target.startswith("/") else None


def published_version(node: StorageNode, name: str) -> str | None:
    root = local_root(node)
    if root is None:
        return None
    try:
        return version_of_link(name, os.readlink(os.path.join(root, name)))
    except OSError:
        return None


def checkin_storage(task: Task, node: StorageNode) -> dict[str, Any]:
    """The checkin's ``storage`` (contract/task.py TaskStorage): NFS's export and options, and the transport."""
    answer: dict[str, Any] = {"name": node["name"], "export": node["export"], "options": node["options"],
                              "transport": transport_of(task, node)}
    if answer["transport"] == "http":
        answer["url"] = image_url(task, node)
        answer["chunks_url"] = chunks_url(task, node)
        if node["http_url"] == SERVER_HTTP:  # this server sends many chunks an answer (chunkbatch.py)
            answer["chunks_batch_url"] = f"/api/tasks/{task['id']}/chunks/batch"
    return answer


def served_root(store: Store, task: Task) -> tuple[StorageNode, str]:
    """The running deploy's node and its local directory, when this server serves that node; else an error."""
    if task["type"] != "deploy" or task["state"] != "running":
        raise Conflict(f"task {task['id']} is a {task['state']} {task['type']}: images are served to a running "
                       "deploy only")
    node = store.storage(str(task["storage"])) if task["storage"] else None
    root = local_root(node) if node and node.get("http_url") == SERVER_HTTP else None
    if node is None or root is None:
        raise NotFound(f"task {task['id']}'s storage node is not served by this server over HTTP")
    return node, root


def plain_file(path: str, missing: str) -> str:
    """``path`` if it is a regular file (never a link or a directory), else NotFound saying ``missing``."""
    try:
        info = os.lstat(path)
    except OSError:
        raise NotFound(missing) from None
    if not stat.S_ISREG(info.st_mode):
        raise NotFound(missing)
    return path


def image_file(store: Store, task: Task, version: str, file: str) -> str:
    """The path of ``file`` of ``version`` of the task's image on its node's local directory, or NotFound."""
    node, root = served_root(store, task)
    name = str(task["image"])
    if version == name:  # the version published now
        version = published_version(node, name) or ""
    if not is_version(version, name) or not IMAGE_FILE.match(file):
        raise NotFound("no such file of this task's image")
    return plain_file(os.path.join(root, VERSIONS_DIR, version, file),
                      f"{version}/{file} is not on storage node {task['storage']}")


def chunk_file(store: Store, task: Task, prefix: str, file: str) -> str:
    """The path of chunk ``<prefix>/<file>`` in the chunk store of the task's node, or NotFound."""
    _node, root = served_root(store, task)
    if not CHUNK_DIR.match(prefix) or not CHUNK_FILE.match(file) or file[:2] != prefix:
        raise NotFound("no such chunk: chunks are named <2 hex>/<sha256 in hex>.zst")
    return plain_file(os.path.join(root, chunk_relpath(file[:64])),
                      f"chunk {file[:64]} is not on storage node {task['storage']}")


FileOf = Callable[[Store, Task, web.Request], str]


class SentFile(web.FileResponse):
    """A FileResponse the handler sends itself (to count it while it goes). aiohttp prepares a handler's answer
    again once the handler returns; a FileResponse would send the file a second time (aiohttp 3.14: an
    AssertionError logged and the kept-alive connection dropped after every file)."""

    async def prepare(self, request: web.BaseRequest) -> Any:
        if self.prepared:
            return None
        return await super().prepare(request)


def client_file(authorized: Callable[[web.Request], Task], file_of: FileOf, bound: Callable[[], int],
                what: str) -> Any:
    """A handler sending ``file_of``'s file to its task's client, at most ``bound()`` at once per task."""
    transfers: dict[int, int] = {}  # task id → transfers in progress

    async def handler(request: web.Request) -> web.StreamResponse:
        task = authorized(request)  # 401 for a wrong token or an unknown task
        path = file_of(request.app[STORE], task, request)
        most = bound()
        if transfers.get(task["id"], 0) >= most:
            raise RateLimited(f"task {task['id']} has {most} {what} transfers in progress", retry_after=1)
        transfers[task["id"]] = transfers.get(task["id"], 0) + 1
        try:
            response = SentFile(path, headers={"Cache-Control": "no-store"})
            try:
                await response.prepare(request)  # sends the file (or its Range) here, while it is counted
            except ConnectionError:  # the client went away mid-file (it resumes with a Range): nothing to answer
                log.info("task %d: %s: the client closed the connection", task["id"], request.match_info["file"])
            return response
        finally:
            transfers[task["id"]] -= 1
            if not transfers[task["id"]]:
                del transfers[task["id"]]
    return handler


def _image_of(store: Store, task: Task, request: web.Request) -> str:
    return image_file(store, task, request.match_info["version"], request.match_info["file"])


def _chunk_of(store: Store, task: Task, request: web.Request) -> str:
    return chunk_file(store, task, request.match_info["prefix"], request.match_info["file"])


def routes(authorized: Callable[[web.Request], Task]) -> list[web.RouteDef]:
    # the bounds read at each request (tests lower them)
    return [web.get("/api/tasks/{id:\\d+}/image/{version}/{file}",
                    client_file(authorized, _image_of, lambda: MAX_TRANSFERS_PER_TASK, "image")),
            web.get("/api/tasks/{id:\\d+}/chunks/{prefix}/{file}",
                    client_file(authorized, _chunk_of, lambda: MAX_CHUNK_TRANSFERS_PER_TASK, "chunk"))]
