"""The shapes of the rows the store returns: one TypedDict per subject, as the API shows them (JSON columns
decoded, the names of what ids point to joined in)."""
from __future__ import annotations

from typing import Any, TypedDict


class Host(TypedDict):
    id: int
    mac: str
    name: str
    created: float
    registered: str         # admin | quick | full
    image_id: int | None    # the image a full registration assigned
    group_name: str | None
    image: str | None       # that image's name


class Inventory(TypedDict):
    collected: float
    task_id: int | None
    data: dict[str, Any]


class BootLogEntry(TypedDict):
    id: int
    time: float
    mac: str
    decision: str
    task_id: int | None


class StorageGroup(TypedDict):
    id: int
    name: str
    created: float
    master: str | None      # its master node's name
    nodes: int


class StorageNode(TypedDict):
    id: int
    name: str
    export: str
    options: str
    max_clients: int
    created: float
    group_id: int | None
    master: int             # 1 for the group's master
    rsync_target: str | None
    http_url: str | None    # deploys over HTTP: 'server' or a web server's URL; None: NFS (issue 17)
    group_name: str | None
    running: int            # tasks running on it now


class Image(TypedDict):
    id: int
    name: str
    storage_id: int         # its home node
    group_id: int | None
    type: str
    format: str             # what its captures write: stream or chunked (contract.task.IMAGE_FORMATS)
    description: str
    created: float
    captured: float | None
    stored_bytes: int | None
    storage: str            # the home node's name
    group_name: str | None
    replicas: list[str]     # nodes serving its current version


class Task(TypedDict):
    id: int
    host_id: int
    type: str
    image_id: int | None
    disk: str | None
    partition: int | None
    after: str
    state: str
    token: str
    created: float
    started: float | None
    finished: float | None
    progress: dict[str, Any] | None
    error: dict[str, Any] | None
    log: str | None
    result: dict[str, Any] | None
    storage_id: int | None  # the node chosen at checkin
    waited: float | None    # when it last asked for a full node
    options: dict[str, Any] | None
    origin: str
    claimed: float | None           # when the boot script's claim was exchanged for the token (or menu: at birth)
    claimed_from: str | None        # the address that claimed, or "menu"
    claims_refused: int             # second claims refused (docs/security.md#task-claims)
    claim_refused_at: float | None
    claim_refused_from: str | None
    queued_by: str | None           # who queued it (migration 9; older tasks: None)
    mac: str
    host: str
    image: str | None
    storage: str | None


class ReplicationJob(TypedDict):
    id: int
    image_id: int
    source_id: int
    node_id: int
    state: str
    version: str | None
    bytes: int | None
    error: str | None
    created: float
    started: float | None
    finished: float | None
    image: str
    source: str
    node: str
    source_target: str | None
    node_target: str | None


class SessionClient(TypedDict):
    task_id: int
    session_id: int
    state: str
    address: str | None
    reason: str | None
    updated: float
    task_state: str
    host: str
    mac: str
    error: str | None       # the task's error message
    stage: str | None       # the task's progress stage


class Session(TypedDict):
    id: int
    image_id: int
    state: str
    min_receivers: int
    max_wait: int
    rate: int | None
    interface: str | None
    portbase: int
    image_dir: str
    version: str
    files: list[str]
    storage_id: int | None
    go: int
    created: float
    first_ready: float | None
    started: float | None
    finished: float | None
    current: str | None
    sender_pid: int | None
    detail: str | None
    error: str | None
    image: str
    storage: str | None
    clients: list[SessionClient]


class InterruptedSession(TypedDict):
    id: int
    sender_pid: int | None
    files: str              # JSON, as stored
    image_dir: str
    current: str | None


class User(TypedDict):
    id: int
    name: str
    role: str               # admin | technician
    created: float
    password_changed: float


class WebSession(TypedDict):
    token_hash: str
    user_id: int | None     # None: signed in with the admin token
    actor: str
    role: str
    csrf: str
    address: str | None
    created: float
    expires: float


class AuditEntry(TypedDict):
    id: int
    time: float
    actor: str
    role: str
    via: str                # token | session
    action: str             # "POST /api/tasks", "console: cancel task"
    target: str
    outcome: str            # the HTTP status, or the error's code
    address: str | None


class HostRow(Host):
    """A host in a page of the hosts list, with its active task (None: nothing to do)."""
    task_id: int | None
    task_type: str | None
    task_state: str | None


class ImageVersion(TypedDict):
    """A version directory ``.images/<name>@<stamp>`` on a node this server reaches as a local directory."""
    version: str
    node: str
    current: bool           # what the node's ``<name>`` symlink points at
    created: float          # the directory's modification time
    stored_bytes: int       # bytes of its files, and of the chunks it names (chunked: see chunk_bytes)
    chunk_bytes: int        # of those, the chunks in the node's store, shared with its other versions and images
    raw_bytes: int | None   # the data the image holds, uncompressed (from its manifest)
