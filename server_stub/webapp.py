"""HTTP: boot scripts and boot files for machines, a JSON API for clients and admins."""
from __future__ import annotations

import collections
import hmac
import json
import logging
import os
import time
from typing import Any, Awaitable, Callable

from aiohttp import web

from server_stub import apidoc, tls
from server_stub import menuapi
from contract import inventory
from server_stub import bootpolicy, db, multicast, multicastweb, replication

log = logging.getLogger(__name__)

STORE = web.AppKey("store", db.Store)
CONFIG = web.AppKey("config", dict)
REPLICATOR = web.AppKey("replicator", replication.Replicator)


class RateLimit:
    """At most ``per_minute`` events in any 60 s window (a sliding log: registrations are rare)."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self.times: collections.deque[float] = collections.deque()

    def allow(self) -> bool:
        now = time.monotonic()
        while self.times and now - self.times[0] > 60:
            self.times.popleft()
        if len(self.times) >= self.per_minute:
            return False
        self.times.append(now)
        return True


LIMITER = web.AppKey("register_limiter", RateLimit)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, default=str))


@web.middleware
async def errors_as_json(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
    try:
        return await handler(request)
    except (db.Invalid, inventory.InvalidInventory) as exc:
        return _json({"error": str(exc)}, 400)
    except db.NotFound as exc:
        return _json({"error": str(exc)}, 404)
    except db.Conflict as exc:
        return _json({"error": str(exc)}, 409)
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        return _json({"error": f"bad request body: {exc}"}, 400)


def _too_large(limit: int, size: int) -> web.HTTPRequestEntityTooLarge:
    return web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=size, content_type="application/json",
                                         text=json.dumps({"error": f"request body larger than {limit} bytes"}))


async def _body(request: web.Request, limit: int | None = None) -> dict:
    if limit is not None:  # client calls that carry an inventory: never read more than the limit
        if (request.content_length or 0) > limit:
            raise _too_large(limit, request.content_length or 0)
        raw = b""
        while chunk := await request.content.read(limit + 1 - len(raw)):
            raw += chunk
            if len(raw) > limit:  # chunked, or a Content-Length that lied
                raise _too_large(limit, len(raw))
        data = json.loads(raw or b"{}")
    else:
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
    return bootpolicy.BootContext(base_url=base,
                                  extra_args=config.get("kernel_args", bootpolicy.BootContext.extra_args),
                                  unknown_hosts=config.get("unknown_hosts", "menu"),
                                  menu_timeout=config.get("menu_timeout", 3),
                                  **tls_boot_args(base, config.get("tls")))


def tls_boot_args(base: str, tls_config: dict | None) -> dict:
    """With serve --tls-cert: the imaging environment calls the API over https and pins the certificate."""
    if not tls_config:
        return {}
    return {"api_url": tls.api_url(base, tls_config["https_port"]), "server_fp": tls_config["fingerprint"]}


def decide_for_mac(store: db.Store, mac: str, ctx: bootpolicy.BootContext) -> bootpolicy.BootSpec:
    mac = db.normalize_mac(mac)
    host = store.find_host_by_mac(mac)
    task = store.active_task_for_mac(mac) if host else None
    spec = bootpolicy.decide(mac, host, task, ctx)
    decision = bootpolicy.describe(spec)
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


async def show_host(request: web.Request) -> web.Response:
    store = request.app[STORE]
    host = store.host(request.match_info["key"])
    return _json({**host, "inventory": store.inventory(host["name"])})


async def host_inventory(request: web.Request) -> web.Response:
    found = request.app[STORE].inventory(request.match_info["key"])
    if found is None:
        raise db.NotFound(f"host {request.match_info['key']} has sent no inventory yet")
    return _json(found)


async def list_storage(request: web.Request) -> web.Response:
    return _json(request.app[STORE].storage_nodes())


async def add_storage(request: web.Request) -> web.Response:
    body = await _body(request)
    return _json(request.app[STORE].add_storage(
        body["name"], body["export"], body.get("options", "vers=4.1"), group=body.get("group"),
        master=body.get("master") is True, max_clients=body.get("max_clients"),
        rsync_target=body.get("rsync_target")), 201)


async def set_storage(request: web.Request) -> web.Response:
    body = await _body(request)
    return _json(request.app[STORE].set_storage(request.match_info["name"], max_clients=body.get("max_clients"),
                                                master=body.get("master") is True,
                                                rsync_target=body.get("rsync_target")))


async def list_groups(request: web.Request) -> web.Response:
    return _json(request.app[STORE].groups())


async def add_group(request: web.Request) -> web.Response:
    return _json(request.app[STORE].add_group((await _body(request))["name"]), 201)


async def replicate_image(request: web.Request) -> web.Response:
    jobs = request.app[STORE].queue_replication(request.match_info["name"])
    request.app[REPLICATOR].wake()
    return _json(jobs, 202)


async def list_replication(request: web.Request) -> web.Response:
    jobs = request.app[STORE].replication_jobs(request.query.get("image"))
    return _json([{k: v for k, v in j.items() if k not in ("source_target", "node_target")} for j in jobs])


async def list_images(request: web.Request) -> web.Response:
    return _json(request.app[STORE].images())


async def add_image(request: web.Request) -> web.Response:
    body = await _body(request)
    return _json(request.app[STORE].add_image(body["name"], body.get("storage"), body.get("description", ""),
                                              body.get("type", "resizable"), group=body.get("group")), 201)


async def list_tasks(request: web.Request) -> web.Response:
    include_finished = request.query.get("all", "1") != "0"
    return _json([_public_task(t) for t in request.app[STORE].tasks(include_finished)])


async def add_task(request: web.Request) -> web.Response:
    body = await _body(request)
    options = {"disk": body.get("disk"), "after": body.get("after", "reboot"), "partition": body.get("partition"),
               "options": body.get("options")}
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
    session = None
    try:
        if task["type"] == "multicast":  # join the session, or fall back to unicast (server_stub/multicast.py)
            task, session = request.app[multicastweb.MULTICAST].checkin(task, request.remote)
        else:
            task = store.start_task(task["id"])
    except db.StorageBusy as busy:  # "message": what boot images before storage groups read
        return _json({"wait": True, "retry_after": 5, "position": busy.position, "reason": str(busy),
                      "message": str(busy)})
    image = store.image(task["image"]) if task["image"] else None
    node_name = task["storage"] or (session or {}).get("storage")
    node = store.storage(node_name) if node_name else None
    return _json({
        "id": task["id"], "type": task["type"], "state": task["state"], "disk": task["disk"],
        "partition": task["partition"], "after": task["after"], "options": task.get("options"),
        # FOG renames the deployed system after its host record; a host name is a valid hostname.
        "hostname": task["host"] if task["type"] in ("deploy", "multicast") else None,
        "host": {"mac": task["mac"], "name": task["host"]},
        "image": {"name": image["name"], "type": image["type"]} if image else None,
        "storage": {"name": node["name"], "export": node["export"], "options": node["options"]} if node else None,
        **({"multicast": session} if session is not None else {}),
    })


async def client_progress(request: web.Request) -> web.Response:
    task = _authorized_task(request)
    request.app[STORE].record_progress(task["id"], await _body(request))
    return _json({"ok": True})


async def client_done(request: web.Request) -> web.Response:
    task = _authorized_task(request)
    body = await _body(request, inventory.MAX_BODY)
    result = body.get("result", {})
    if not isinstance(result, dict):
        raise db.Invalid("result must be an object")
    # Any task may bring the machine's inventory (an inventory task always does); it is the task's host's.
    found = inventory.clean(result.pop("inventory")) if "inventory" in result else None
    request.app[STORE].finish_task(task["id"], result, inventory=found)
    if task["type"] == "capture":  # the capture queued copies to the group's other nodes
        request.app[REPLICATOR].wake()
    return _json({"ok": True})


async def client_register(request: web.Request) -> web.Response:
    """An unknown machine registers itself (no task, so no token): see docs/task-json.md for the limits."""
    config = request.app[CONFIG]
    if config.get("unknown_hosts", "menu") == "local":
        return _json({"error": "registration is disabled on this server (--unknown-hosts local)"}, 403)
    if not request.app[LIMITER].allow():
        return web.json_response({"error": "too many registrations; try again shortly"}, status=429,
                                 headers={"Retry-After": "10"})
    body = await _body(request, inventory.MAX_BODY)
    unknown = sorted(set(body) - {"mac", "inventory", "hostname", "image", "group"})
    if unknown:
        raise db.Invalid(f"unknown fields: {', '.join(unknown[:5])}")
    found = inventory.clean(body.get("inventory", {}))
    image = db.check_name(body["image"], "image") if body.get("image") is not None else None
    host = request.app[STORE].register_host(
        str(body.get("mac", "")), found, name=body.get("hostname"), image=image,
        group=body.get("group"), prefix=config.get("register_prefix", "mac"))
    log.info("registered %s as %s (%s)", host["mac"], host["name"], host["registered"])
    return _json({"host": {"mac": host["mac"], "name": host["name"], "registered": host["registered"],
                           "image": host["image"], "group": host["group_name"]}}, 201)


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
    app[LIMITER] = RateLimit(config.get("register_rate", 60))
    app[REPLICATOR] = replication.Replicator(store)
    app[menuapi.MENU] = menuapi.MenuState(store, config)

    async def replicator_life(app: web.Application):
        app[REPLICATOR].start()
        yield
        await app[REPLICATOR].close()

    app.cleanup_ctx.append(replicator_life)
    app[multicastweb.MULTICAST] = multicast.MulticastManager(store, config)
    app.cleanup_ctx.append(multicastweb.lifecycle)
    app.add_routes([
        web.get("/boot.ipxe", chain_script),
        web.get("/boot/{mac}.ipxe", boot_script),
        web.get("/files/{name}", boot_file),
        web.get("/api/openapi.yaml", apidoc.openapi_yaml),  # public: no secrets in it
        web.get("/api/hosts", admin_only(list_hosts)), web.post("/api/hosts", admin_only(add_host)),
        web.get("/api/hosts/{key}", admin_only(show_host)),
        web.get("/api/hosts/{key}/inventory", admin_only(host_inventory)),
        web.get("/api/storage", admin_only(list_storage)), web.post("/api/storage", admin_only(add_storage)),
        web.post("/api/storage/{name}", admin_only(set_storage)),
        web.get("/api/storage-groups", admin_only(list_groups)), web.post("/api/storage-groups", admin_only(add_group)),
        web.get("/api/images", admin_only(list_images)), web.post("/api/images", admin_only(add_image)),
        web.post("/api/images/{name}/replicate", admin_only(replicate_image)),
        web.get("/api/replication", admin_only(list_replication)),
        web.get("/api/tasks", admin_only(list_tasks)), web.post("/api/tasks", admin_only(add_task)),
        web.get("/api/tasks/{id:\\d+}", admin_only(get_task)),
        web.post("/api/tasks/{id:\\d+}/cancel", admin_only(cancel_task)),
        web.get("/api/boot-log", admin_only(boot_log)),
        # Machines: the per-task token, checked in each handler.
        web.post("/api/tasks/{id:\\d+}/checkin", client_checkin),
        web.post("/api/tasks/{id:\\d+}/progress", client_progress),
        web.post("/api/tasks/{id:\\d+}/done", client_done),
        web.post("/api/tasks/{id:\\d+}/failed", client_failed),
        *multicastweb.routes(admin_only, _authorized_task),
        # Unknown machines: no token exists yet; unknown MACs only, rate-limited, every field checked.
        web.post("/api/register", client_register),
        # The technician's menu: a session from the technician password or admin token (menuapi.py).
        *menuapi.routes(admin_only),
    ])
    return app
