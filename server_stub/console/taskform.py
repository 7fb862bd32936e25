"""The one "queue a task" form, shared by the hosts list (checked hosts), a host's page (that host) and the
tasks page (host names typed): reading it, queueing through the store's own checks (all hosts or none, as
the CLI's ``task TYPE HOST[,HOST…]``), and placing a refusal next to the field it is about."""
from __future__ import annotations

from typing import Any, Mapping

from aiohttp import web

from contract.vocabulary import AFTER_VALUES, IMAGE_TASK_TYPES, QUEUEABLE_TASK_TYPES, WIPE_MODE_HELP, WIPE_MODES
from server_stub.console.formdata import errors_by_field, whole_number
from server_stub.errors import ApiError, Invalid
from server_stub.store import Store
from server_stub.store.models import Task
from server_stub.wol import wake_tasks

# Store checks that name no field, by what their message says (server_stub/store/validate.py, tasks.py).
TASK_HINTS = {"task type": "type", "after must": "after", "disk selector": "disk", "partition": "partition",
              "wipe task": "mode", "no image": "image", "never been captured": "image", "no host": "hosts",
              "active task": "hosts", "each host": "hosts"}
TYPE_HELP = {"capture": "copy the disk into an image", "deploy": "write an image onto the disk",
             "inventory": "collect CPU, RAM, disks, NICs and DMI", "wipe": "erase a disk",
             "disktest": "SMART health and a read-only surface scan", "debug": "a root shell on the machine"}
EMPTY_FORM = {"type": "deploy", "image": "", "disk": "", "partition": "", "after": "reboot", "mode": "", "hosts": "",
              "wake": "on"}


def choices(store: Store) -> dict[str, Any]:
    """What the form's lists offer: task types, images (capturable: all; deployable: captured ones marked),
    after-values and wipe modes."""
    return {"types": [(t, TYPE_HELP.get(t, "")) for t in QUEUEABLE_TASK_TYPES],
            "images": store.images(), "after": AFTER_VALUES,
            "modes": [(m, WIPE_MODE_HELP.get(m, "")) for m in WIPE_MODES]}


async def read(request: web.Request) -> tuple[dict[str, str], list[str]]:
    """(the form's fields as typed, for showing it again; the hosts: checked boxes ``host`` or typed ``hosts``)."""
    posted = await request.post()
    values = dict(EMPTY_FORM)
    for key in EMPTY_FORM:
        value = posted.get(key)
        if isinstance(value, str):
            values[key] = value.strip()
    values["wake"] = "on" if "1" in posted.getall("wake", ["1"]) else ""  # a hidden 0, then the checkbox's 1
    checked = [h.strip() for h in posted.getall("host", []) if isinstance(h, str) and h.strip()]
    typed = [h.strip() for h in values["hosts"].split(",") if h.strip()]
    return values, checked or typed


def queue(store: Store, values: Mapping[str, str], hosts: list[str], queued_by: str | None = None) -> list[Task]:
    """Queue the form's task for ``hosts``, all or none, as ``queued_by`` (the signed-in user); ApiError as the
    store (and the API) refuses it."""
    type_ = values.get("type", "")
    if not hosts:
        raise Invalid("choose at least one host", field="hosts")
    partition = whole_number(values.get("partition", ""), "partition", "partition")
    options = {"mode": values.get("mode", "")} if type_ == "wipe" else None
    image = values.get("image") or None if type_ in IMAGE_TASK_TYPES else None
    tasks = store.add_tasks(hosts, type_, image, disk=values.get("disk") or None,
                            after=values.get("after") or "reboot", partition=partition, options=options,
                            queued_by=queued_by)
    if values.get("wake", "on") == "on":  # as the API: a queued task wakes its host (server_stub/wol.py)
        wake_tasks(store, tasks)
    return tasks


def errors(error: ApiError) -> dict[str, str]:
    return errors_by_field(error, TASK_HINTS)


def queued_notice(tasks: list[Task]) -> str:
    if len(tasks) == 1:
        return f"Queued {tasks[0]['type']} task {tasks[0]['id']} for {tasks[0]['host']}."
    return f"Queued {len(tasks)} {tasks[0]['type']} tasks: " + ", ".join(t["host"] for t in tasks) + "."
