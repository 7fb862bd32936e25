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
"""
from __future__ import annotations

import logging
import os
import re
import stat
from typing import Any, Callable

from aiohttp import web

from contract.versions import VERSIONS_DIR, is_version, version_of_link
from server_stub.appkeys import STORE
from server_stub.errors import Conflict, NotFound, RateLimited
from server_stub.store import Store
from server_stub.store.models import StorageNode, Task
from server_stub.store.storage import SERVER_HTTP

log = logging.getLogger(__name__)
# The client keeps at most 4 requests in flight (imager/httpstore.py); a little room for a retry overlapping.
MAX_TRANSFERS_PER_TASK = 6
IMAGE_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")  # manifest.json, d1p2.pcl.zst, d1.sfdisk …


def transport_of(task: Task, node: StorageNode | None) -> str:
    """``http`` for a deploy from a node with an HTTP transport; anything else (captures, multicast) uses NFS."""
    return "http" if node is not None and node.get("http_url") and task["type"] == "deploy" else "nfs"


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
    return answer


def image_file(store: Store, task: Task, version: str, file: str) -> str:
    """The path of ``file`` of ``version`` of the task's image on its node's local directory, or NotFound."""
    if task["type"] != "deploy" or task["state"] != "running":
        raise Conflict(f"task {task['id']} is a {task['state']} {task['type']}: images are served to a running "
                       "deploy only")
    node = store.storage(str(task["storage"])) if task["storage"] else None
    root = local_root(node) if node and node.get("http_url") == SERVER_HTTP else None
    name = str(task["image"])
    if node is None or root is None:
        raise NotFound(f"task {task['id']}'s storage node is not served by this server over HTTP")
    if version == name:  # the version published now
        version = published_version(node, name) or ""
    if not is_version(version, name) or not IMAGE_FILE.match(file):
        raise NotFound("no such file of this task's image")
    path = os.path.join(root, VERSIONS_DIR, version, file)
    try:
        info = os.lstat(path)
    except OSError:
        raise NotFound(f"{version}/{file} is not on storage node {task['storage']}") from None
    if not stat.S_ISREG(info.st_mode):  # a link or a directory is never served
        raise NotFound(f"{version}/{file} is not on storage node {task['storage']}")
    return path


def client_image_file(authorized: Callable[[web.Request], Task]) -> Any:
    transfers: dict[int, int] = {}  # task id → transfers in progress

    async def handler(request: web.Request) -> web.StreamResponse:
        task = authorized(request)  # 401 for a wrong token or an unknown task
        path = image_file(request.app[STORE], task, request.match_info["version"], request.match_info["file"])
        if transfers.get(task["id"], 0) >= MAX_TRANSFERS_PER_TASK:
            raise RateLimited(f"task {task['id']} has {MAX_TRANSFERS_PER_TASK} image transfers in progress",
                              retry_after=1)
        transfers[task["id"]] = transfers.get(task["id"], 0) + 1
        try:
            response = web.FileResponse(path, headers={"Cache-Control": "no-store"})
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


def routes(authorized: Callable[[web.Request], Task]) -> list[web.RouteDef]:
    return [web.get("/api/tasks/{id:\\d+}/image/{version}/{file}", client_image_file(authorized))]
