"""The task the server hands a client at checkin (docs/task-json.md): what the client reads, and nothing more.

``POST /api/tasks/{id}/checkin`` answers a ``Task``; a multicast task also carries ``multicast``
(a ``MulticastSession``), and ``POST /api/tasks/{id}/ready`` answers a ``MulticastSession`` too.
"""
from __future__ import annotations

from typing import Any, NotRequired, TypedDict


class TaskHost(TypedDict):
    mac: str
    name: str


class TaskImage(TypedDict):
    name: str
    type: NotRequired[str]          # resizable (default), multipart, alldisks, raw
    format: NotRequired[str]        # IMAGE_FORMATS: what a capture writes: stream (default) or chunked


class TaskStorage(TypedDict):
    export: str                     # NFS export, mounted with ``options``
    name: NotRequired[str]
    options: NotRequired[str]
    transport: NotRequired[str]     # TRANSPORTS: nfs (default: mount ``export``) or http (fetch from ``url``)
    url: NotRequired[str]           # http: the image directory; '<url><file>'. A path: this server, task token
    chunks_url: NotRequired[str]    # http: the node's chunk store; '<chunks_url><2 hex>/<sha256>.zst'
    chunks_batch_url: NotRequired[str]  # http, this server: POST many chunk names, get them back to back


IMAGE_FORMATS = ("stream", "chunked")   # docs/image-format.md; chunked: content-addressed chunks, incremental deploys
DEFAULT_IMAGE_FORMAT = "chunked"        # what a new image's captures write unless told otherwise
TRANSPORTS = ("nfs", "http")        # how a deploy reads its image (docs/http-transport.md); captures: nfs


class MulticastFile(TypedDict):
    file: str
    portbase: int


class MulticastSession(TypedDict, total=False):
    session: int
    state: str                      # waiting, sending, …
    client: str                     # joined, ready, receiving, fallback, dropped
    version: str                    # <name>@<stamp>: .images/<version> on the export
    storage: str
    sender: str | None              # udp-receiver's --mcast-rdv-address
    files: list[MulticastFile]      # in the order they are sent
    fallback: bool                  # too late: deploy ``version`` by unicast
    reason: str
    join: bool                      # (answer to ready) the sender runs


class TaskScript(TypedDict):
    """A post-deploy script the deploy runs afterwards, in list order (docs/fleet.md#post-deploy-scripts)."""
    name: str
    sha256: str                     # of the bytes the server holds; checked before the script runs
    size: int
    timeout: int                    # seconds; then its process group is killed
    policy: str                     # fail (the task fails) or warn (logged, the task goes on)
    url: str                        # a path on the same server: GET with the task token


class Task(TypedDict, total=False):
    id: int
    type: str                       # contract.vocabulary.TaskType
    state: str
    disk: str | None                # a disk selector; None: the only fixed disk
    partition: int | None           # deploy: only this partition
    after: str                      # reboot or poweroff
    hostname: str | None
    host: TaskHost
    image: TaskImage | None         # None: inventory and the service ops
    storage: TaskStorage | None
    options: dict[str, Any] | None  # wipe: {"mode": …}
    multicast: MulticastSession
    origin: str                     # admin or menu
    scripts: list[TaskScript]       # deploy: post-deploy scripts (absent: none)


def deploys_over_http(task: Task) -> bool:
    """A deploy whose storage node sends it the image over HTTP (docs/http-transport.md); everything else mounts
    NFS. The agent (what to mount) and the deploy op (where the streams come from) both ask this."""
    storage = task.get("storage")
    return task.get("type") == "deploy" and storage is not None and storage.get("transport") == "http"
