"""One task for a host group, as the API (hostgroupsapi.py) and the console (console/hostgroups.py) queue it:
unicast (a task per host, as ``task deploy|capture|…`` queues for one) or one multicast session for the
group's hosts; busy hosts are skipped and listed, and the queued hosts are woken unless ``wake`` is off."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypedDict

from contract.vocabulary import IMAGE_TASK_TYPES
from server_stub.errors import Invalid
from server_stub.multicast import MulticastManager
from server_stub.store import Store
from server_stub.store.database import Database
from server_stub.store.hostgroups import HostGroups, SkippedHost
from server_stub.store.models import Session, Task
from server_stub.wol import WakeReport, wake_tasks


def host_groups(store: Store) -> HostGroups:
    """The store's host groups (a repository over its database; holds no state of its own)."""
    db: Database = store.db
    return HostGroups(db, store.hosts_repo, store.tasks_repo)


@dataclass(frozen=True)
class GroupTask:
    """What to queue for a group: the fields of ``POST /api/tasks`` (without hosts), or a multicast session's."""
    type: str
    image: str | None = None
    disk: str | None = None
    after: str = "reboot"
    partition: int | None = None
    options: dict[str, Any] | None = None
    multicast: bool = False
    wake: bool = True
    multicast_fields: dict[str, Any] = field(default_factory=dict)  # min_receivers, max_wait, rate, interface
    queued_by: str | None = None


class GroupQueueAnswer(TypedDict):
    group: str
    queued: list[dict[str, Any]]    # the tasks, without their tokens
    skipped: list[SkippedHost]
    session: Session | None
    wake: WakeReport | None


def public_task(task: Task) -> dict[str, Any]:
    return {k: v for k, v in task.items() if k != "token"}


async def queue_for_group(store: Store, multicast: MulticastManager, group: str, wanted: GroupTask) -> GroupQueueAnswer:
    repo = host_groups(store)
    session: Session | None = None
    if wanted.multicast:
        if wanted.type != "deploy":
            raise Invalid("multicast sends an image: the task type is deploy", field="type")
        if wanted.partition is not None or wanted.options:
            raise Invalid("a multicast session restores whole disks: no partition or options", field="partition")
        idle, skipped = repo.idle_and_busy(group)
        queued: list[Task] = []
        if idle:
            session = await multicast.create(wanted.image or "", idle, disk=wanted.disk, after=wanted.after,
                                             queued_by=wanted.queued_by, **wanted.multicast_fields)
            queued = store.tasks_by_id([c["task_id"] for c in session["clients"]])
    else:
        if wanted.multicast_fields:
            raise Invalid(f"{', '.join(sorted(wanted.multicast_fields))}: for a multicast session only "
                          "(multicast: true)", field=sorted(wanted.multicast_fields)[0])
        image = wanted.image if wanted.type in IMAGE_TASK_TYPES else None
        if wanted.image and image is None:
            raise Invalid(f"a {wanted.type} task names no image", field="image")
        done = repo.queue_for_group(group, wanted.type, image, disk=wanted.disk, after=wanted.after,
                                    partition=wanted.partition, options=wanted.options, queued_by=wanted.queued_by)
        queued, skipped = done["queued"], done["skipped"]
    report = wake_tasks(store, queued) if wanted.wake and queued else None
    return GroupQueueAnswer(group=group, queued=[public_task(t) for t in queued], skipped=skipped,
                            session=session, wake=report)
