"""Storage: groups and their NFS nodes (how full each is, where it copies to), their free space, and the
replication jobs between them. Everyone signed in sees it; adding, editing and removing needs an admin."""
from __future__ import annotations

import os
from typing import Any, Mapping

from aiohttp import web

from server_stub.appkeys import STORE
from server_stub.console.formdata import errors_by_field, form_text, whole_number
from server_stub.console.render import action, page, redirect_after_post, render
from server_stub.errors import ApiError
from server_stub.store.models import StorageNode

# Store checks that name no field, by what their message says (server_stub/store/validate.py); first match wins.
NODE_HINTS = {"storage group": "group", "not an NFS export": "export", "not NFS mount options": "options",
              "not an rsync target": "rsync_target", "not an HTTP transport": "http_url", "max_clients": "max_clients", "storage node": "name"}
GROUP_HINTS = {"storage group": "name"}


def free_space(node: StorageNode) -> dict[str, int] | None:
    """Free and total bytes of a node this server reaches as a local directory; None: not known here
    (a remote rsync target, none, or a directory that is not there)."""
    target = node["rsync_target"] or ""
    if not target.startswith("/"):
        return None
    try:
        stats = os.statvfs(target)
    except OSError:
        return None
    return {"free": stats.f_bavail * stats.f_frsize, "total": stats.f_blocks * stats.f_frsize}


def _storage_page(request: web.Request, status: int = 200, form: str = "", errors: Mapping[str, str] | None = None,
                  values: Mapping[str, str] | None = None) -> web.Response:
    """The whole page; after a refusal, ``form`` (its id) shows ``errors`` and keeps ``values`` as typed."""
    store = request.app[STORE]
    nodes = store.storage_nodes()
    jobs = sorted(store.replication_jobs(), key=lambda j: -j["id"])
    return render(request, "storage_index.html", status, title="Storage", groups=store.groups(), nodes=nodes,
                  space={n["name"]: free_space(n) for n in nodes}, jobs=jobs, form=form,
                  errors=errors or {}, values=values or {}, notice=request.query.get("notice", ""))


@page()
async def storage_index(request: web.Request) -> web.StreamResponse:
    return _storage_page(request)


@action("admin", "add storage group")
async def add_group(request: web.Request) -> web.StreamResponse:
    fields = await form_text(request)
    try:
        group = request.app[STORE].add_group(fields.get("name", ""))
    except ApiError as exc:
        return _storage_page(request, exc.status, "add-group-form", errors_by_field(exc, GROUP_HINTS), fields)
    return redirect_after_post("/storage", f"Storage group {group['name']} added.")


@action("admin", "rename storage group")
async def rename_group(request: web.Request) -> web.StreamResponse:
    name, fields = request.match_info["name"], await form_text(request)
    try:
        group = request.app[STORE].rename_group(name, fields.get("name", ""))
    except ApiError as exc:
        return _storage_page(request, exc.status, f"rename-group-{name}", errors_by_field(exc, GROUP_HINTS), fields)
    return redirect_after_post("/storage", f"Storage group {name} is now {group['name']}.")


@action("admin", "remove storage group")
async def remove_group(request: web.Request) -> web.StreamResponse:
    group = request.app[STORE].remove_group(request.match_info["name"])
    return redirect_after_post("/storage", f"Storage group {group['name']} removed.")


def _node_arguments(fields: Mapping[str, str]) -> dict[str, Any]:
    return {"max_clients": whole_number(fields.get("max_clients", ""), "max_clients", "max clients"),
            "master": fields.get("master") == "on"}


@action("admin", "add storage node")
async def add_node(request: web.Request) -> web.StreamResponse:
    fields = await form_text(request)
    try:
        node = request.app[STORE].add_storage(
            fields.get("name", ""), fields.get("export", ""), fields.get("options") or "vers=4.1",
            group=fields.get("group") or None, rsync_target=fields.get("rsync_target") or None,
            http_url=fields.get("http_url") or None, **_node_arguments(fields))
    except ApiError as exc:
        return _storage_page(request, exc.status, "add-node-form", errors_by_field(exc, NODE_HINTS), fields)
    return redirect_after_post("/storage", f"Storage node {node['name']} added to group {node['group_name']}.")


def _node_page(request: web.Request, node: StorageNode, status: int = 200,
               errors: Mapping[str, str] | None = None, values: Mapping[str, str] | None = None) -> web.Response:
    typed = dict(values) if values is not None else {
        "name": node["name"], "export": node["export"], "options": node["options"],
        "max_clients": str(node["max_clients"]), "rsync_target": node["rsync_target"] or "",
        "http_url": node["http_url"] or ""}
    return render(request, "storage_node.html", status, title=f"Storage node {node['name']}", node=node,
                  space=free_space(node), errors=errors or {}, values=typed)


@page("admin")
async def edit_node_form(request: web.Request) -> web.StreamResponse:
    return _node_page(request, request.app[STORE].storage(request.match_info["name"]))


@action("admin", "edit storage node")
async def edit_node(request: web.Request) -> web.StreamResponse:
    store, name, fields = request.app[STORE], request.match_info["name"], await form_text(request)
    node = store.storage(name)
    try:
        target, http = fields.get("rsync_target", ""), fields.get("http_url", "")
        changed = store.set_storage(
            name, new_name=fields.get("name", ""), export=fields.get("export", ""), options=fields.get("options", ""),
            rsync_target=target if target or node["rsync_target"] else None,
            http_url=http if http or node["http_url"] else None, **_node_arguments(fields))
    except ApiError as exc:
        return _node_page(request, node, exc.status, errors_by_field(exc, NODE_HINTS), fields)
    return redirect_after_post("/storage", f"Storage node {changed['name']} saved.")


@action("admin", "remove storage node")
async def remove_node(request: web.Request) -> web.StreamResponse:
    node = request.app[STORE].remove_storage(request.match_info["name"])
    return redirect_after_post("/storage", f"Storage node {node['name']} removed.")


def routes() -> list[web.RouteDef]:
    return [
        web.get("/storage", storage_index),
        web.post("/storage/groups", add_group),
        web.post("/storage/groups/{name}", rename_group),
        web.post("/storage/groups/{name}/remove", remove_group),
        web.post("/storage/nodes", add_node),
        web.get("/storage/nodes/{name}", edit_node_form),
        web.post("/storage/nodes/{name}", edit_node),
        web.post("/storage/nodes/{name}/remove", remove_node),
    ]
