"""Post-deploy scripts over HTTP (issue 16): admins upload, attach and delete them; a deploying machine fetches
the ones its task lists, with its task token, and nothing else.

- ``/api/scripts…``: reads for technicians, changes for admins (audited by ``require``).
- ``GET /api/tasks/{id}/scripts/{script}``: the script's bytes for the running deploy task whose token the
  request carries, when the script is one of that task's (its image's or its host group's); any other
  script is 404, as if it did not exist. The client checks the bytes against the SHA-256 the checkin listed.
"""
from __future__ import annotations

from typing import Any, Callable

from aiohttp import web

from server_stub.accounts import AUDIT_TARGET, PRINCIPAL_KEY
from server_stub.appkeys import STORE
from server_stub.errors import Conflict, Invalid, NotFound
from server_stub.http import Handler, json_response, optional_str, path_id, read_json, require_str
from server_stub.store import Store
from server_stub.store.models import Task

Wrap = Callable[[Handler], Handler]
DEPLOYING = ("deploy", "multicast")  # the task types that end with the image on the disk


def script_url(task_id: int, script_id: int) -> str:
    """Where the client fetches a script: a path on the server it already talks to (never another host)."""
    return f"/api/tasks/{task_id}/scripts/{script_id}"


def task_scripts(store: Store, task: Task) -> list[dict[str, Any]]:
    """The checkin's ``scripts``: what this deploy runs afterwards (contract/task.py TaskScript)."""
    if task["type"] not in DEPLOYING or not task["image"]:
        return []
    group = store.host(task["host"])["group_name"]
    return [{"name": s["name"], "sha256": s["sha256"], "size": s["size"], "timeout": s["timeout"],
             "policy": s["policy"], "url": script_url(task["id"], s["id"])}
            for s in store.scripts_repo.scripts_for(task["image"], group)]


def _target(body: dict[str, Any]) -> tuple[str | None, str | None]:
    image, group = optional_str(body, "image"), optional_str(body, "group")
    if (image is None) == (group is None):
        raise Invalid("give image or group (one of them)", field="image")
    return image, group


def _only(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise Invalid(f"unknown field {unknown[0]} (fields: {', '.join(sorted(allowed))})", field=unknown[0])


async def list_scripts(request: web.Request) -> web.Response:
    store = request.app[STORE]
    return json_response([{**s, "attachments": store.scripts_repo.attachments(script=s["name"])}
                          for s in store.scripts_repo.scripts()])


async def add_script(request: web.Request) -> web.Response:
    body = await read_json(request)
    _only(body, {"name", "description", "content"})
    name = require_str(body, "name")
    request[AUDIT_TARGET] = name[:100]
    found = request.app[STORE].scripts_repo.add_script(name, body.get("content"),
                                                        optional_str(body, "description", "") or "",
                                                        created_by=request[PRINCIPAL_KEY].actor)
    return json_response(found, 201)


async def show_script(request: web.Request) -> web.Response:
    return json_response(request.app[STORE].scripts_repo.script_detail(request.match_info["name"]))


async def remove_script(request: web.Request) -> web.Response:
    return json_response(request.app[STORE].scripts_repo.remove_script(request.match_info["name"]))


async def attach_script(request: web.Request) -> web.Response:
    body = await read_json(request)
    _only(body, {"image", "group", "order", "timeout", "policy"})
    image, group = _target(body)
    request[AUDIT_TARGET] = f"{request.match_info['name']} → {image or 'group ' + str(group)}"[:100]
    return json_response(request.app[STORE].scripts_repo.attach(
        request.match_info["name"], image=image, group=group, position=body.get("order", 0),
        timeout=body.get("timeout", 300), policy=body.get("policy", "fail")))


async def detach_script(request: web.Request) -> web.Response:
    body = await read_json(request)
    _only(body, {"image", "group"})
    image, group = _target(body)
    request[AUDIT_TARGET] = f"{request.match_info['name']} ✕ {image or 'group ' + str(group)}"[:100]
    return json_response(request.app[STORE].scripts_repo.detach(request.match_info["name"], image=image,
                                                                group=group))


def client_script(authorized: Callable[[web.Request], Task]) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        task = authorized(request)  # 401 for a wrong token or an unknown task
        wanted = path_id(request, "script", "script")
        if task["state"] != "running":
            raise Conflict(f"task {task['id']} is {task['state']}: scripts are served to a running deploy only")
        listed = {int(s["url"].rsplit("/", 1)[1]) for s in task_scripts(request.app[STORE], task)}
        if wanted not in listed:  # another image's or group's script: as if there were none
            raise NotFound("no such script for this task")
        return web.Response(body=request.app[STORE].scripts_repo.script_content(wanted),
                            content_type="application/octet-stream")
    return handler


def routes(admin_only: Wrap, read_only: Wrap, authorized: Callable[[web.Request], Task]) -> list[web.RouteDef]:
    return [
        web.get("/api/scripts", read_only(list_scripts)), web.post("/api/scripts", admin_only(add_script)),
        web.get("/api/scripts/{name}", read_only(show_script)),
        web.delete("/api/scripts/{name}", admin_only(remove_script)),
        web.post("/api/scripts/{name}/attach", admin_only(attach_script)),
        web.post("/api/scripts/{name}/detach", admin_only(detach_script)),
        # A deploying machine, with its task token: one of its task's scripts.
        web.get("/api/tasks/{id:\\d+}/scripts/{script:\\d+}", client_script(authorized)),
    ]
