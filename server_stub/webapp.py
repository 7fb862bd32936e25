"""HTTP: boot scripts and boot files for machines, a JSON API for clients and admins.

Errors, bodies and rate limits: server_stub/http.py; what a MAC boots: server_stub/boot.py.
"""
from __future__ import annotations

import logging
import os
from typing import Any

from aiohttp import web

from contract import inventory
from contract.errorcodes import ERROR_CODES, ErrorReport
from contract.task import DEFAULT_IMAGE_FORMAT
from server_stub import adminapi, apidoc, boot, bootpolicy, console, menuapi, multicast, multicastweb, replication, tls
from server_stub import startup
from server_stub import usersapi
from server_stub import groupqueue, hostgroupsapi, wol
from server_stub import reportsapi
from server_stub import scriptsapi
from server_stub import scheduler, schedulesapi
from server_stub import setupapi
from server_stub import chunkbatch, deployfigures, imageserve
from server_stub import chunkgcapi
from server_stub.accounts import AUTH, PRINCIPAL_KEY, Authenticator, require
from server_stub.appkeys import CONFIG, STORE
from server_stub.config import ServerConfig
from server_stub.console.live import LIVE, LiveHub
from server_stub.errors import ApiError, Forbidden, Invalid, NotFound, StorageBusy, Unauthorized
from server_stub.http import (Handler, bearer_token, error_middleware, json_response, optional_bool,
                              optional_int, optional_object, optional_str, path_id, read_json, require_str,
                              require_str_list, same_secret)
from server_stub.store import Store
from server_stub.store.models import Task
from server_stub.store.validate import check_name

log = logging.getLogger(__name__)

REPLICATOR = web.AppKey("replicator", replication.Replicator)
BOOT = web.AppKey("boot", boot.BootService)

# Errors raised outside server_stub.errors, and the answer each means.
TRANSLATED_ERRORS: dict[type[Exception], type[ApiError]] = {inventory.InvalidInventory: Invalid}


def _public_task(task: Task) -> dict[str, Any]:
    """A task as admins see it: everything but the secret."""
    return {k: v for k, v in task.items() if k != "token"}


# --- boot --------------------------------------------------------------------

async def boot_script(request: web.Request) -> web.Response:
    service = request.app[BOOT]
    spec = service.decide_for_mac(request.match_info["mac"], service.http_base(request.host))
    return web.Response(text=bootpolicy.render_ipxe(spec), content_type="text/plain")


async def chain_script(request: web.Request) -> web.Response:
    base = request.app[BOOT].http_base(request.host)
    return web.Response(text=bootpolicy.render_chain_script(base), content_type="text/plain")


async def grub_config(request: web.Request) -> web.Response:
    """A GRUB with http asks for its machine's config (Debian's signed one has none: it uses TFTP, boot.py)."""
    service = request.app[BOOT]
    spec = service.decide_for_mac(request.match_info["mac"], service.http_base(request.host))
    return web.Response(text=bootpolicy.render_grub(spec), content_type="text/plain")


async def grub_entry(request: web.Request) -> web.Response:
    """GRUB's $prefix/grub.cfg when GRUB came over HTTP (UEFI HTTP boot): on to this machine's config."""
    path = bootpolicy.grub_path(request.app[BOOT].http_base(request.host))
    return web.Response(text=bootpolicy.render_grub_entry(f"{path}/boot/${{imager_mac}}.grub"),
                        content_type="text/plain")


async def boot_file(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name in startup.HTTP_LOADERS:  # UEFI HTTP boot: the copies start-up installed in the TFTP root
        path = os.path.join(request.app[CONFIG].data_dir, "tftp", name)
        if not os.path.isfile(path):
            raise NotFound(f"{name} is not installed on this server (its Debian package: docs/secure-boot.md)")
        return web.FileResponse(path, headers={"Content-Type": "application/efi"})
    if name not in ("vmlinuz", "initrd.img"):
        raise NotFound(f"no boot file {name!r}")
    path = os.path.join(request.app[CONFIG].boot_dir, name)
    if not os.path.isfile(path):
        raise NotFound(f"{name} has not been built (make initramfs)")
    return web.FileResponse(path)  # sends Content-Length: iPXE crawls without it


# --- admin API ---------------------------------------------------------------

async def list_hosts(request: web.Request) -> web.Response:
    return json_response(request.app[STORE].hosts())


async def add_host(request: web.Request) -> web.Response:
    body = await read_json(request)
    return json_response(request.app[STORE].add_host(require_str(body, "mac"), require_str(body, "name")), 201)


async def show_host(request: web.Request) -> web.Response:
    store = request.app[STORE]
    host = store.host(request.match_info["key"])
    return json_response({**host, "groups": groupqueue.host_groups(store).groups_of_host(host["mac"]),
                          "inventory": store.inventory(host["name"])})


async def host_inventory(request: web.Request) -> web.Response:
    found = request.app[STORE].inventory(request.match_info["key"])
    if found is None:
        raise NotFound(f"host {request.match_info['key']} has sent no inventory yet")
    return json_response(found)


async def list_storage(request: web.Request) -> web.Response:
    return json_response(request.app[STORE].storage_nodes())


async def add_storage(request: web.Request) -> web.Response:
    body = await read_json(request)
    return json_response(request.app[STORE].add_storage(
        require_str(body, "name"), require_str(body, "export"), optional_str(body, "options", "vers=4.1") or "",
        group=optional_str(body, "group"), master=optional_bool(body, "master"),
        max_clients=optional_int(body, "max_clients"), rsync_target=optional_str(body, "rsync_target"),
        http_url=optional_str(body, "http_url")), 201)


async def set_storage(request: web.Request) -> web.Response:
    body = await read_json(request)
    return json_response(request.app[STORE].set_storage(
        request.match_info["name"], max_clients=optional_int(body, "max_clients"),
        master=optional_bool(body, "master"), rsync_target=optional_str(body, "rsync_target"),
        new_name=optional_str(body, "name"), export=optional_str(body, "export"), options=optional_str(body, "options"),
        http_url=optional_str(body, "http_url")))


async def list_groups(request: web.Request) -> web.Response:
    return json_response(request.app[STORE].groups())


async def add_group(request: web.Request) -> web.Response:
    return json_response(request.app[STORE].add_group(require_str(await read_json(request), "name")), 201)


async def replicate_image(request: web.Request) -> web.Response:
    jobs = request.app[STORE].queue_replication(request.match_info["name"])
    request.app[REPLICATOR].wake()
    return json_response(jobs, 202)


async def list_replication(request: web.Request) -> web.Response:
    jobs = request.app[STORE].replication_jobs(request.query.get("image"))
    return json_response([{k: v for k, v in j.items() if k not in ("source_target", "node_target")} for j in jobs])


async def list_images(request: web.Request) -> web.Response:
    return json_response(request.app[STORE].images())


async def add_image(request: web.Request) -> web.Response:
    body = await read_json(request)
    return json_response(request.app[STORE].add_image(
        require_str(body, "name"), optional_str(body, "storage"), optional_str(body, "description", "") or "",
        optional_str(body, "type", "resizable") or "", group=optional_str(body, "group"),
        format_=optional_str(body, "format", DEFAULT_IMAGE_FORMAT) or ""), 201)


async def list_tasks(request: web.Request) -> web.Response:
    include_finished = request.query.get("all", "1") != "0"
    return json_response([_public_task(t) for t in request.app[STORE].tasks(include_finished)])


async def add_task(request: web.Request) -> web.Response:
    body = await read_json(request)
    store = request.app[STORE]
    type_, image = require_str(body, "type"), optional_str(body, "image")
    options: dict[str, Any] = {
        "disk": optional_str(body, "disk"), "after": optional_str(body, "after", "reboot") or "",
        "partition": optional_int(body, "partition"), "options": optional_object(body, "options"),
        "queued_by": request[PRINCIPAL_KEY].actor}
    wake = wol.wake_wanted(body)  # on unless "wake": false, as FOG wakes on every queued task
    if "hosts" in body:  # several machines at once: all tasks or none
        tasks = store.add_tasks(require_str_list(body, "hosts"), type_, image, **options)
        if wake:
            wol.wake_tasks(store, tasks)
        return json_response([_public_task(t) for t in tasks], 201)
    task = store.add_task(require_str(body, "host"), type_, image, **options)
    if wake:
        wol.wake_tasks(store, [task])
    return json_response(_public_task(task), 201)


async def get_task(request: web.Request) -> web.Response:
    return json_response(_public_task(request.app[STORE].task(path_id(request, "task"))))


async def cancel_task(request: web.Request) -> web.Response:
    return json_response(_public_task(request.app[STORE].cancel_task(path_id(request, "task"))))


async def boot_log(request: web.Request) -> web.Response:
    return json_response(request.app[STORE].boot_log(request.query.get("mac")))


# --- client API (per-task token) -----------------------------------------------

def authorized_task(request: web.Request) -> Task:
    """The task of the path, if the request carries its token; 401 alike for an unknown task or a wrong token."""
    try:
        task = request.app[STORE].task(path_id(request, "task"))
    except NotFound:
        raise Unauthorized("unknown task or token") from None
    given = bearer_token(request)
    if not given or not same_secret(given, task["token"]):  # any text compares: non-ASCII is 401
        raise Unauthorized("unknown task or token")
    return task


async def client_claim(request: web.Request) -> web.Response:
    """The boot script's one-time claim → the task token, once (docs/security.md#task-claims)."""
    claim = require_str(await read_json(request), "claim")
    try:
        task_id = path_id(request, "task")
    except NotFound:
        raise Unauthorized("unknown task or claim") from None
    task = request.app[STORE].tasks_repo.claim_task(task_id, claim, request.remote)
    log.info("task %d claimed from %s", task["id"], request.remote)
    return json_response({"task": task["id"], "token": task["token"]})


async def client_checkin(request: web.Request) -> web.Response:
    task = authorized_task(request)
    store = request.app[STORE]
    session = None
    try:
        if task["type"] == "multicast":  # join the session, or fall back to unicast (server_stub/multicast.py)
            task, session = await request.app[multicastweb.MULTICAST].checkin(task, request.remote)
        else:
            task = store.start_task(task["id"])
    except StorageBusy as busy:  # "message": what boot images before storage groups read
        return json_response({"wait": True, "retry_after": 5, "position": busy.position, "reason": str(busy),
                              "message": str(busy)})
    image = store.image(task["image"]) if task["image"] else None
    node_name = task["storage"] or (session or {}).get("storage")
    node = store.storage(node_name) if node_name else None
    return json_response({
        "id": task["id"], "type": task["type"], "state": task["state"], "disk": task["disk"],
        "partition": task["partition"], "after": task["after"], "options": task.get("options"),
        # FOG renames the deployed system after its host record; a host name is a valid hostname.
        "hostname": task["host"] if task["type"] in ("deploy", "multicast") else None,
        "host": {"mac": task["mac"], "name": task["host"]},
        "image": {"name": image["name"], "type": image["type"], "format": image["format"]} if image else None,
        "storage": imageserve.checkin_storage(task, node) if node else None,  # NFS or HTTP (issue 17)
        **({"multicast": session} if session is not None else {}),
        "scripts": scriptsapi.task_scripts(store, task),  # run after the deploy (docs/task-json.md)
    })


async def client_progress(request: web.Request) -> web.Response:
    task = authorized_task(request)
    progress = await read_json(request)
    deployfigures.check_figures(progress, "progress")  # a deploy's reused/fetched/wrote bytes (issue 17)
    request.app[STORE].record_progress(task["id"], progress)
    return json_response({"ok": True})


async def client_done(request: web.Request) -> web.Response:
    task = authorized_task(request)
    body = await read_json(request, inventory.MAX_BODY)
    result = optional_object(body, "result") or {}
    deployfigures.check_figures(result, "result")
    # Any task may bring the machine's inventory (an inventory task always does); it is the task's host's.
    found = inventory.clean(result.pop("inventory")) if "inventory" in result else None
    request.app[STORE].finish_task(task["id"], result, inventory=found)
    if task["type"] == "capture":  # the capture queued copies to the group's other nodes
        request.app[REPLICATOR].wake()
    return json_response({"ok": True})


async def client_register(request: web.Request) -> web.Response:
    """An unknown machine registers itself (no task, so no token): see docs/task-json.md for the limits."""
    config = request.app[CONFIG]
    if request.app[STORE].unknown_hosts(config.unknown_hosts) == "local":  # the setting, at each request
        raise Forbidden("registration is disabled on this server (unknown hosts boot locally: imager-server "
                        "settings set unknown-hosts menu|register)")
    body = await read_json(request, inventory.MAX_BODY)
    # Counted per MAC, per address and in all before anything is written; the counts survive a restart.
    menuapi.limit_registration(request, body.get("mac", ""), config.register_rate)
    unknown = sorted(set(body) - {"mac", "inventory", "hostname", "image", "group"})
    if unknown:
        raise Invalid(f"unknown fields: {', '.join(unknown[:5])}")
    found = inventory.clean(body.get("inventory", {}))
    image = check_name(body["image"], "image") if body.get("image") is not None else None
    # hostname and group of any type: the store's name check refuses them, naming what was sent
    host = request.app[STORE].register_host(str(body.get("mac", "")), found, name=body.get("hostname"), image=image,
                                            group=body.get("group"), prefix=config.register_prefix)
    log.info("registered %s as %s (%s)", host["mac"], host["name"], host["registered"])
    return json_response({"host": {"mac": host["mac"], "name": host["name"], "registered": host["registered"],
                                   "image": host["image"], "group": host["group_name"]}}, 201)


def error_report(value: Any) -> ErrorReport:
    """The ``error`` of a failure report: a known code (contract.errorcodes), a message, a hint, details."""
    if not isinstance(value, dict):
        raise Invalid("error must be an object with code, message, hint and details")
    code = value.get("code")
    if code is None:
        raise Invalid("error.code is missing: one of contract.errorcodes.ERROR_CODES")
    if not isinstance(code, str) or code not in ERROR_CODES:
        raise Invalid(f"error.code {code!r} is not a known error code (contract.errorcodes.ERROR_CODES); "
                      "is the boot image older or newer than the server?", known=sorted(ERROR_CODES))
    message, hint, details = value.get("message"), value.get("hint", ""), value.get("details", {})
    if not isinstance(message, str) or not isinstance(hint, str) or not isinstance(details, dict):
        raise Invalid("error.message and error.hint must be strings, error.details an object")
    return {"code": code, "message": message, "hint": hint, "details": details}


async def client_failed(request: web.Request) -> web.Response:
    task = authorized_task(request)
    body = await read_json(request)
    error = error_report(body.get("error"))
    request.app[STORE].fail_task(task["id"], dict(error), str(body.get("log", "")))
    log.warning("task %d failed: %s: %s", task["id"], error["code"], error["message"])
    return json_response({"ok": True})


# Admin calls: the admin token (Bearer) or a console session (server_stub/accounts.py). A technician sees
# everything and queues, starts and cancels tasks; deletions, users, storage and settings need an admin.
admin_only = require("admin")
technician = require("technician")


def make_app(store: Store, config: ServerConfig) -> web.Application:
    middlewares = [error_middleware(TRANSLATED_ERRORS)]
    if config.tls is not None:  # inside the error middleware: its refusal has the same shape
        middlewares.append(tls.https_only_api(config.tls.https_port))
    app = web.Application(middlewares=middlewares)
    app[STORE] = store
    app[CONFIG] = config
    app[BOOT] = boot.BootService(store, config)
    app[AUTH] = Authenticator(store, config.admin_token, secure_cookies=config.tls is not None)
    app[REPLICATOR] = replication.Replicator(store)
    app[menuapi.MENU] = menuapi.MenuState(store, config)

    async def replicator_life(app: web.Application) -> Any:
        app[REPLICATOR].start()
        yield
        await app[REPLICATOR].close()

    app.cleanup_ctx.append(replicator_life)
    app[chunkgcapi.COLLECTOR] = chunkgcapi.ChunkCollector(store, app[REPLICATOR])  # chunk stores' GC (issue 17)
    app.cleanup_ctx.append(chunkgcapi.lifecycle)
    app[LIVE] = LiveHub(store)  # the console's live updates (server_stub/console/live.py)
    app.on_shutdown.append(app[LIVE].close)
    app[multicastweb.MULTICAST] = multicast.MulticastManager(store, config)
    app.cleanup_ctx.append(multicastweb.lifecycle)
    # scheduled tasks (issue 16): the runner in this loop, in the server's time zone ($TZ, else the system's)
    app[schedulesapi.SCHEDULER] = scheduler.Scheduler(store, scheduler.server_zone(),
                                                      waker=schedulesapi.wake_on_lan(store))
    app.cleanup_ctx.append(schedulesapi.lifecycle)
    app.add_routes([
        web.get("/boot.ipxe", chain_script),
        web.get("/boot/{mac}.ipxe", boot_script),
        web.get("/boot/{mac}.grub", grub_config),
        web.get("/grub/grub.cfg", grub_entry),
        web.get("/files/{name}", boot_file),
        web.get("/api/openapi.yaml", apidoc.openapi_yaml),  # public: no secrets in it
        web.get("/api/hosts", technician(list_hosts)), web.post("/api/hosts", admin_only(add_host)),
        web.get("/api/hosts/{key}", technician(show_host)),
        web.get("/api/hosts/{key}/inventory", technician(host_inventory)),
        web.get("/api/storage", technician(list_storage)), web.post("/api/storage", admin_only(add_storage)),
        web.post("/api/storage/{name}", admin_only(set_storage)),
        web.get("/api/storage-groups", technician(list_groups)), web.post("/api/storage-groups", admin_only(add_group)),
        web.get("/api/images", technician(list_images)), web.post("/api/images", admin_only(add_image)),
        web.post("/api/images/{name}/replicate", admin_only(replicate_image)),
        web.get("/api/replication", technician(list_replication)),
        web.get("/api/tasks", technician(list_tasks)), web.post("/api/tasks", technician(add_task)),
        web.get("/api/tasks/{id:\\d+}", technician(get_task)),
        web.post("/api/tasks/{id:\\d+}/cancel", technician(cancel_task)),
        web.get("/api/boot-log", technician(boot_log)),
        # Machines: the boot script's claim, once, for the per-task token; the token, checked in each handler.
        web.post("/api/tasks/{id:\\d+}/claim", client_claim),
        web.post("/api/tasks/{id:\\d+}/checkin", client_checkin),
        web.post("/api/tasks/{id:\\d+}/progress", client_progress),
        web.post("/api/tasks/{id:\\d+}/done", client_done),
        web.post("/api/tasks/{id:\\d+}/failed", client_failed),
        *multicastweb.routes(technician, authorized_task),
        # Unknown machines: no token exists yet; unknown MACs only, rate-limited, every field checked.
        web.post("/api/register", client_register),
        # The technician's menu: a session from the technician password or admin token (menuapi.py).
        *menuapi.routes(admin_only),
        # The web console: pages for people (server_stub/console/).
        *console.routes(),
        # Lists a page at a time, edits, removals, settings: the console's and the CLI's (adminapi.py).
        *adminapi.AdminApi(store, config).routes(admin_only, read_only=technician),
        *usersapi.routes(admin_only),  # console accounts and the audit log
        *hostgroupsapi.routes(admin_only, technician),  # host groups and Wake-on-LAN (issue 16)
        *reportsapi.routes(technician),  # task history, CSV export, storage report (issue 16)
        *scriptsapi.routes(admin_only, technician, authorized_task),  # post-deploy scripts (issue 16)
        *imageserve.routes(authorized_task),  # a deploy's image files over HTTP (issue 17)
        *chunkbatch.routes(authorized_task),  # many chunks an answer for a deploy over HTTP (issue 17)
        *chunkgcapi.routes(admin_only, technician),  # collecting a node's unused chunks (issue 17)
        *schedulesapi.routes(admin_only, technician),  # scheduled and recurring tasks (issue 16)
        *setupapi.routes(technician),  # the site's DHCP, NFS and firewall settings (issue 16, imager-server init)
    ])
    return app
