"""HTTP API of host groups and Wake-on-LAN (issue 16; docs/fleet.md).

    GET  /api/host-groups                    every group and its state at a glance        technician
    POST /api/host-groups                    {name, description?}                         admin
    GET  /api/host-groups/{name}             the group, its hosts and theirs tasks        technician
    POST /api/host-groups/{name}             {name?, description?}: rename, describe      admin
    DELETE /api/host-groups/{name}           the group (its hosts stay)                   admin
    POST /api/host-groups/{name}/hosts       {hosts: [...]} join                          admin
    POST /api/host-groups/{name}/hosts/remove {hosts: [...]} leave                        admin
    POST /api/host-groups/{name}/tasks       one task for the group (groupqueue.py)       technician
    POST /api/host-groups/{name}/wake        magic packets for its hosts                  technician
    POST /api/hosts/{key}/wake               magic packets for one host                   technician
    GET|POST /api/wake-targets               where packets go, per storage group          technician|admin

Every call is audited by ``require`` (accounts.py); a request naming an unknown field is refused.
"""
from __future__ import annotations

from typing import Any, Callable

from aiohttp import web

from server_stub.accounts import AUDIT_TARGET, PRINCIPAL_KEY
from server_stub.errors import Invalid
from server_stub.groupqueue import GroupTask, host_groups, queue_for_group
from server_stub.http import (Handler, json_response, optional_int, optional_object, optional_str, read_json,
                              require_str, require_str_list)
from server_stub.multicastweb import MULTICAST
from server_stub.appkeys import STORE
from server_stub.store.wake import WakeTargets
from server_stub.wol import wake_hosts, wake_wanted

Wrap = Callable[[Handler], Handler]
TASK_FIELDS = ("type", "image", "disk", "after", "partition", "options", "multicast", "wake", "min_receivers",
               "max_wait", "rate", "interface")
MULTICAST_FIELDS = ("min_receivers", "max_wait", "rate", "interface")


def only_fields(body: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise Invalid(f"unknown field {unknown[0]} (this call takes {', '.join(allowed)})", field=unknown[0])


def flag(body: dict[str, Any], key: str, default: bool) -> bool:
    """true or false; absent or null: ``default``."""
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise Invalid(f"{key} must be true or false", field=key)
    return value


def group_task(body: dict[str, Any], queued_by: str | None) -> GroupTask:
    only_fields(body, TASK_FIELDS)
    rate = body.get("rate")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (str, int))):
        raise Invalid("rate must be bits per second, like 200m or 500000", field="rate")
    multicast_fields: dict[str, Any] = {}
    for key in ("min_receivers", "max_wait"):
        if body.get(key) is not None:
            multicast_fields[key] = optional_int(body, key)
    for key in ("rate", "interface"):
        if body.get(key) is not None:
            multicast_fields[key] = rate if key == "rate" else optional_str(body, key)
    return GroupTask(type=require_str(body, "type"), image=optional_str(body, "image"), disk=optional_str(body, "disk"),
                     after=optional_str(body, "after", "reboot") or "", partition=optional_int(body, "partition"),
                     options=optional_object(body, "options"), multicast=flag(body, "multicast", False),
                     wake=wake_wanted(body), multicast_fields=multicast_fields, queued_by=queued_by)


# --- groups --------------------------------------------------------------------

async def list_groups(request: web.Request) -> web.Response:
    return json_response(host_groups(request.app[STORE]).groups())


async def add_group(request: web.Request) -> web.Response:
    body = await read_json(request)
    only_fields(body, ("name", "description"))
    name = require_str(body, "name")
    request[AUDIT_TARGET] = name[:100]
    return json_response(host_groups(request.app[STORE]).add_group(name, optional_str(body, "description", "") or ""),
                         201)


async def show_group(request: web.Request) -> web.Response:
    return json_response(host_groups(request.app[STORE]).group_detail(request.match_info["name"]))


async def edit_group(request: web.Request) -> web.Response:
    body = await read_json(request)
    only_fields(body, ("name", "description"))
    return json_response(host_groups(request.app[STORE]).edit_group(
        request.match_info["name"], optional_str(body, "name"), optional_str(body, "description")))


async def remove_group(request: web.Request) -> web.Response:
    return json_response(host_groups(request.app[STORE]).remove_group(request.match_info["name"]))


async def add_members(request: web.Request) -> web.Response:
    body = await read_json(request)
    only_fields(body, ("hosts",))
    return json_response(host_groups(request.app[STORE]).add_members(request.match_info["name"],
                                                                      require_str_list(body, "hosts")))


async def remove_members(request: web.Request) -> web.Response:
    body = await read_json(request)
    only_fields(body, ("hosts",))
    return json_response(host_groups(request.app[STORE]).remove_members(request.match_info["name"],
                                                                         require_str_list(body, "hosts")))


async def queue_group_task(request: web.Request) -> web.Response:
    """201 when a task was queued; 200 when every host was busy (all skipped, nothing queued)."""
    wanted = group_task(await read_json(request), request[PRINCIPAL_KEY].actor)
    answer = await queue_for_group(request.app[STORE], request.app[MULTICAST], request.match_info["name"], wanted)
    return json_response(answer, 201 if answer["queued"] else 200)


# --- wake ----------------------------------------------------------------------

async def wake_group(request: web.Request) -> web.Response:
    store = request.app[STORE]
    macs = host_groups(store).member_macs(request.match_info["name"])
    if not macs:
        raise Invalid(f"host group {request.match_info['name']} has no hosts to wake")
    return json_response(wake_hosts(store, macs))


async def wake_host(request: web.Request) -> web.Response:
    return json_response(wake_hosts(request.app[STORE], [request.match_info["key"]]))


async def wake_targets(request: web.Request) -> web.Response:
    return json_response(WakeTargets(request.app[STORE].db).settings())


async def set_wake_target(request: web.Request) -> web.Response:
    """{storage_group: name or null (the server's default), broadcast, interface}; neither: back to the default."""
    body = await read_json(request)
    only_fields(body, ("storage_group", "broadcast", "interface"))
    group = optional_str(body, "storage_group")
    request[AUDIT_TARGET] = (group or "default")[:100]
    setting = WakeTargets(request.app[STORE].db).set_target(group, optional_str(body, "broadcast"),
                                                             optional_str(body, "interface"))
    return json_response({"storage_group": group, "removed": setting is None, "setting": setting})


def routes(admin_only: Wrap, technician: Wrap) -> list[web.RouteDef]:
    return [
        web.get("/api/host-groups", technician(list_groups)), web.post("/api/host-groups", admin_only(add_group)),
        web.get("/api/host-groups/{name}", technician(show_group)),
        web.post("/api/host-groups/{name}", admin_only(edit_group)),
        web.delete("/api/host-groups/{name}", admin_only(remove_group)),
        web.post("/api/host-groups/{name}/hosts", admin_only(add_members)),
        web.post("/api/host-groups/{name}/hosts/remove", admin_only(remove_members)),
        web.post("/api/host-groups/{name}/tasks", technician(queue_group_task)),
        web.post("/api/host-groups/{name}/wake", technician(wake_group)),
        web.post("/api/hosts/{key}/wake", technician(wake_host)),
        web.get("/api/wake-targets", technician(wake_targets)),
        web.post("/api/wake-targets", admin_only(set_wake_target)),
    ]
