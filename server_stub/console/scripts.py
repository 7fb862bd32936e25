"""Post-deploy scripts (issue 16): every signed-in user sees the scripts, their SHA-256 and where they are
attached; an admin uploads one (a file or pasted text), attaches it to an image or a host group with its
order, timeout and policy, detaches and deletes. Forms call the same Scripts store methods as the API."""
from __future__ import annotations

from typing import Any, Mapping

from aiohttp import web

from server_stub.accounts import AUDIT_TARGET, PRINCIPAL_KEY
from server_stub.appkeys import STORE
from server_stub.console.formdata import errors_by_field, form_text, whole_number
from server_stub.console.render import action, page, redirect_after_post, render
from server_stub.errors import ApiError, Invalid
from server_stub.store.scripts import MAX_SCRIPT_BYTES, TIMEOUT_DEFAULT_S

HINTS = {"script name": "name", "group name": "group", "no image": "image", "no script": "script"}


def _index(request: web.Request, status: int = 200, form: str = "", errors: Mapping[str, str] | None = None,
           values: Mapping[str, str] | None = None) -> web.Response:
    store = request.app[STORE]
    scripts = [{**s, "attachments": store.scripts_repo.attachments(script=s["name"])}
               for s in store.scripts_repo.scripts()]
    groups = [r["group_name"] for r in store.db.all(
        "SELECT DISTINCT group_name FROM hosts WHERE group_name IS NOT NULL ORDER BY group_name")]
    return render(request, "scripts_index.html", status, title="Post-deploy scripts", scripts=scripts,
                  images=[i["name"] for i in store.images()], groups=groups, form=form, errors=errors or {},
                  values=values or {}, notice=request.query.get("notice", ""), max_kib=MAX_SCRIPT_BYTES // 1024,
                  default_timeout=TIMEOUT_DEFAULT_S)


@page()
async def scripts_index(request: web.Request) -> web.StreamResponse:
    return _index(request)


@page()
async def show_script(request: web.Request) -> web.StreamResponse:
    found = request.app[STORE].scripts_repo.script_detail(request.match_info["name"])
    return render(request, "scripts_show.html", title=f"Script {found['name']}", script=found)


async def _upload_fields(request: web.Request) -> tuple[dict[str, str], str | bytes]:
    """The text fields, and the script: the file chosen if any (its bytes), else the pasted text."""
    posted = await request.post()
    fields = {k: v.strip() for k, v in posted.items() if isinstance(v, str) and k not in ("csrf", "content")}
    upload = posted.get("file")
    if isinstance(upload, web.FileField):
        data = upload.file.read(MAX_SCRIPT_BYTES + 1)
        if data:
            return fields, data
    pasted = posted.get("content", "")
    return fields, pasted.replace("\r\n", "\n") if isinstance(pasted, str) else ""


@action("admin", "add script")
async def add_script(request: web.Request) -> web.StreamResponse:
    fields, content = await _upload_fields(request)
    request[AUDIT_TARGET] = fields.get("name", "")[:100]
    try:
        if isinstance(content, bytes):
            try:
                content = content.decode("utf-8")
            except UnicodeDecodeError:
                raise Invalid("the file is not UTF-8 text: scripts are text", field="content") from None
        added = request.app[STORE].scripts_repo.add_script(fields.get("name", ""), content,
                                                           fields.get("description", ""),
                                                           created_by=request[PRINCIPAL_KEY].actor)
    except ApiError as exc:
        errors = errors_by_field(exc, HINTS)
        if "content" in errors:  # the text area, or the file: one place to say it
            errors = {"file": errors["content"]}
        return _index(request, exc.status, "add-script-form", errors, fields)
    return redirect_after_post("/scripts", f"Script {added['name']} added (SHA-256 {added['sha256'][:16]}…).")


def _target(fields: Mapping[str, str]) -> dict[str, str | None]:
    kind, name = fields.get("target", "image"), fields.get(fields.get("target", "image"), "")
    if kind not in ("image", "group") or not name:
        raise Invalid("choose an image or type a host group", field="image" if kind != "group" else "group")
    return {"image": name, "group": None} if kind == "image" else {"image": None, "group": name}


@action("admin", "attach script")
async def attach_script(request: web.Request) -> web.StreamResponse:
    fields = await form_text(request)
    name = fields.get("script", "")
    try:
        target = _target(fields)
        request[AUDIT_TARGET] = f"{name} → {target['image'] or 'group ' + str(target['group'])}"[:100]
        order = whole_number(fields.get("order", ""), "order", "order")
        timeout = whole_number(fields.get("timeout", ""), "timeout", "timeout")
        done = request.app[STORE].scripts_repo.attach(
            name, **target, position=0 if order is None else order,
            timeout=TIMEOUT_DEFAULT_S if timeout is None else timeout, policy=fields.get("policy", "fail"))
    except ApiError as exc:
        return _index(request, exc.status, "attach-form", errors_by_field(exc, HINTS), fields)
    where = f"image {done['image']}" if done["image"] else f"host group {done['group']}"
    return redirect_after_post("/scripts", f"Script {done['script']} runs after deploys of {where}.")


@action("admin", "detach script")
async def detach_script(request: web.Request) -> web.StreamResponse:
    fields = await form_text(request)
    target = _target(fields)
    done = request.app[STORE].scripts_repo.detach(request.match_info["name"], **target)
    where = f"image {done['image']}" if done["image"] else f"host group {done['group']}"
    return redirect_after_post("/scripts", f"Script {done['script']} detached from {where}.")


@action("admin", "delete script")
async def delete_script(request: web.Request) -> web.StreamResponse:
    removed = request.app[STORE].scripts_repo.remove_script(request.match_info["name"])
    return redirect_after_post("/scripts", f"Script {removed['name']} deleted.")


def routes() -> list[web.RouteDef]:
    return [
        web.get("/scripts", scripts_index),
        web.post("/scripts", add_script),
        web.post("/scripts/attach", attach_script),
        web.get("/scripts/{name}", show_script),
        web.post("/scripts/{name}/detach", detach_script),
        web.post("/scripts/{name}/remove", delete_script),
    ]
