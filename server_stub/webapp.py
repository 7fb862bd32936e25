"""HTTP: boot scripts and boot files for machines, a JSON API for clients and admins."""
from __future__ import annotations

import hmac
import json
import logging
import os
from typing import Any, Awaitable, Callable

from aiohttp import web

from server_stub import bootpolicy, db

log = logging.getLogger(__name__)

STORE = web.AppKey("store", db.Store)
CONFIG = web.AppKey("config", dict)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, default=str))


@web.middleware
async def errors_as_json(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
    try:
        return await handler(request)
    except db.Invalid as exc:
        return _json({"error": str(exc)}, 400)
    except db.NotFound as exc:
        return _json({"error": str(exc)}, 404)
    except db.Conflict as exc:
        return _json({"error": str(exc)}, 409)
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        return _json({"error": f"bad request body: {exc}"}, 400)


async def _body(request: web.Request) -> dict:
    data = await request.json()
    if not isinstance(data, dict):
        raise db.Invalid("the request body must be a JSON object")
    return data


def _public_task(task: dict) -> dict:
    """A task as admins see it: everything but the secret."""
    return {k: v for k, v in task.items() if k != "token"}


# --- boot --------------------------------------------------------------------

def boot_context(request: web.Request) -> bootpolicy.BootContext:
    config = request.app[CONFIG]
    base = config.get("public_url") or f"http://{request.host}"
    return bootpolicy.BootContext(base_url=base, extra_args=config.get("kernel_args", bootpolicy.BootContext.extra_args))


def decide_for_mac(store: db.Store, mac: str, ctx: bootpolicy.BootContext) -> bootpolicy.BootSpec:
    mac = db.normalize_mac(mac)
    host = store.find_host_by_mac(mac)
    task = store.active_task_for_mac(mac) if host else None
    spec = bootpolicy.decide(mac, host, task, ctx)
    decision = "imager" if isinstance(spec, bootpolicy.ImagerBoot) else f"local: {spec.reason}"
    store.log_boot(mac, decision, task["id"] if task else None)
    log.info("boot %s → %s", mac, decision)
    return spec


async def boot_script(request: web.Request) -> web.Response:
    spec = decide_for_mac(request.app[STORE], request.match_info["mac"], boot_context(request))
    return web.Response(text=bootpolicy.render_ipxe(spec), content_type="text/plain")


async def chain_script(request: web.Request) -> web.Response:
    return web.Response(text=bootpolicy.render_chain_script(boot_context(request).base_url), content_type="text/plain")


async def boot_file(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in ("vmlinuz", "initrd.img"):
        raise web.HTTPNotFound()
    path = os.path.join(request.app[CONFIG]["boot_dir"], name)
    if not os.path.isfile(path):
        raise web.HTTPNotFound(text=f"{name} has not been built (make initramfs)")
    return web.FileResponse(path)  # sends Content-Length: iPXE crawls without it


# --- admin API ---------------------------------------------------------------

async def list_hosts(request: web.Request) -> web.Response:
    return _json(request.app[STORE].hosts())


async def add_host(request: web.Request) -> web.Response:
    body = await _body(request)
    return _json(request.app[STORE].add_host(body["mac"], body["name"]), 201)


async def list_storage(request: web.Request) -> web.Response:
    return _json(request.app[STORE].storage_nodes())


async def add_storage(request: web.Request) -> web.Response:
    body = await _body(request)
    return _json(request.app[STORE].add_storage(body["name"], body["export"], body.get("options", "vers=4.1")), 201)


async def set_storage(request: web.Request) -> web.Response:
    body = await _body(request)
    return _json(request.app[STORE].set_storage_limit(request.match_info["name"], body.get("max_clients")))


async def list_images(request: web.Request) -> web.Response:
    return _json(request.app[STORE].images())


async def add_image(request: web.Request) -> web.Response:
    body = await _body(request)
    return _json(request.app[STORE].add_image(body["name"], body["storage"], body.get("description", ""),
                                              body.get("type", "resizable")), 201)


async def list_tasks(request: web.Request) -> web.Response:
    include_finished = request.query.get("all", "1") != "0"
    return _json([_public_task(t) for t in request.app[STORE].tasks(include_finished)])


async def add_task(request: web.Request) -> web.Response:
    body = await _body(request)
    options = {"disk": body.get("disk"), "after": body.get("after", "reboot"), "partition": body.get("partition")}
    if "hosts" in body:  # several machines at once: all tasks or none
        if not isinstance(body["hosts"], list):
            raise db.Invalid("hosts must be a list")
        tasks = request.app[STORE].add_tasks(body["hosts"], body["type"], body.get("image"), **options)
        return _json([_public_task(t) for t in tasks], 201)
    task = request.app[STORE].add_task(body["host"], body["type"], body.get("image"), **options)
    return _json(_public_task(task), 201)


async def get_task(request: web.Request) -> web.Response:
    return _json(_public_task(request.app[STORE].task(int(request.match_info["id"]))))


async def cancel_task(request: web.Request) -> web.Response:
    return _json(_public_task(request.app[STORE].cancel_task(int(request.match_info["id"]))))


async def boot_log(request: web.Request) -> web.Response:
    return _json(request.app[STORE].boot_log(request.query.get("mac")))


# --- client API (per-task token) -----------------------------------------------

def _authorized_task(request: web.Request) -> dict:
    store = request.app[STORE]
    try:
        task = store.task(int(request.match_info["id"]))
    except db.NotFound:
        raise web.HTTPUnauthorized(text='{"error": "unknown task or token"}', content_type="application/json")
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not given or not hmac.compare_digest(given, task["token"]):
        raise web.HTTPUnauthorized(text='{"error": "unknown task or token"}', content_type="application/json")
    return task


async def client_checkin(request: web.Request) -> web.Response:
    task = _authorized_task(request)
    store = request.app[STORE]
    try:
        task = store.start_task(task["id"])
    except db.StorageBusy as busy:
        return _json({"wait": True, "retry_after": 5, "position": busy.position, "message": str(busy)})
    image = store.image(task["image"])
    node = store.storage(image["storage"])
    return _json({
        "id": task["id"], "type": task["type"], "state": task["state"], "disk": task["disk"],
        "partition": task["partition"], "after": task["after"],
        # FOG renames the deployed system after its host record; a host name is a valid hostname.
        "hostname": task["host"] if task["type"] == "deploy" else None,
        "host": {"mac": task["mac"], "name": task["host"]},
        "image": {"name": image["name"], "type": image["type"]},
        "storage": {"name": node["name"], "export": node["export"], "options": node["options"]},
    })


async def client_progress(request: web.Request) -> web.Response:
    task = _authorized_task(request)
    request.app[STORE].record_progress(task["id"], await _body(request))
    return _json({"ok": True})


async def client_done(request: web.Request) -> web.Response:
    task = _authorized_task(request)
    body = await _body(request)
    request.app[STORE].finish_task(task["id"], body.get("result", {}))
    return _json({"ok": True})


async def client_failed(request: web.Request) -> web.Response:
    task = _authorized_task(request)
    body = await _body(request)
    error = body.get("error") if isinstance(body.get("error"), dict) else {"message": str(body.get("error"))}
    request.app[STORE].fail_task(task["id"], error, str(body.get("log", "")))
    log.warning("task %d failed: %s", task["id"], error.get("message"))
    return _json({"ok": True})


def admin_only(handler: Callable[[web.Request], Awaitable[web.Response]]):
    """Admin calls carry the token from <data-dir>/admin.token (created at first start)."""
    async def checked(request: web.Request) -> web.Response:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not given or not hmac.compare_digest(given, request.app[CONFIG]["admin_token"]):
            return _json({"error": "admin credential missing or wrong (see <data-dir>/admin.token)"}, 401)
        return await handler(request)
    return checked


def make_app(store: db.Store, config: dict) -> web.Application:
    app = web.Application(middlewares=[errors_as_json])
    app[STORE] = store
    app[CONFIG] = config
    app.add_routes([
        web.get("/boot.ipxe", chain_script),
        web.get("/boot/{mac}.ipxe", boot_script),
        web.get("/files/{name}", boot_file),
        web.get("/api/hosts", admin_only(list_hosts)), web.post("/api/hosts", admin_only(add_host)),
        web.get("/api/storage", admin_only(list_storage)), web.post("/api/storage", admin_only(add_storage)),
        web.post("/api/storage/{name}", admin_only(set_storage)),
        web.get("/api/images", admin_only(list_images)), web.post("/api/images", admin_only(add_image)),
        web.get("/api/tasks", admin_only(list_tasks)), web.post("/api/tasks", admin_only(add_task)),
        web.get("/api/tasks/{id:\\d+}", admin_only(get_task)),
        web.post("/api/tasks/{id:\\d+}/cancel", admin_only(cancel_task)),
        web.get("/api/boot-log", admin_only(boot_log)),
        # Machines: the per-task token, checked in each handler.
        web.post("/api/tasks/{id:\\d+}/checkin", client_checkin),
        web.post("/api/tasks/{id:\\d+}/progress", client_progress),
        web.post("/api/tasks/{id:\\d+}/done", client_done),
        web.post("/api/tasks/{id:\\d+}/failed", client_failed),
    ])
    return app
