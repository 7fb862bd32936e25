"""Images: what each holds (used data against stored bytes), its versions on the nodes, where its copies
are and how their replication went, and which capture made it. Everyone signed in sees them; adding,
removing (an image, an old version), replicating and adopting a master's FOG or Clonezilla tree need an admin."""
from __future__ import annotations

import calendar
import time
from typing import Any, Mapping

from aiohttp import web

from contract.task import DEFAULT_IMAGE_FORMAT, IMAGE_FORMATS
from contract.vocabulary import IMAGE_TYPE_HELP, IMAGE_TYPES
from server_stub.accounts import AUDIT_TARGET
from server_stub.appkeys import STORE
from server_stub.console import reports
from server_stub.console.formdata import errors_by_field, form_text
from server_stub.console.render import action, page, redirect_after_post, render
from server_stub.errors import ApiError
from server_stub.store import Store
from server_stub.store.adopt import Adopted
from server_stub.store.models import Image, ImageVersion, ReplicationJob, Task

# Store checks that name no field, by what their message says; first match wins.
IMAGE_HINTS = {"image name": "name", "image type": "type", "image format": "format", "storage group": "group",
               "exists already": "name"}
FORMAT_HELP = {"stream": "one compressed stream a partition",
               "chunked": "chunks shared by its versions: a redeploy moves and writes only what changed"}


def ratio(stored: int | None, raw: int | None) -> float | None:
    """Stored bytes per byte of data (0.4: the files take 40 % of the data they hold)."""
    return stored / raw if stored is not None and raw else None


def captured_at(version: str) -> float | None:
    """When a version was captured, from its stamp (``name@YYYYmmddTHHMMSS-xxxxxx``, UTC, contract/versions.py);
    None for a stamp of another form."""
    try:
        stamp = version.rsplit("@", 1)[1][:15]
        return calendar.timegm(time.strptime(stamp, "%Y%m%dT%H%M%S"))
    except (IndexError, ValueError):
        return None


def _current_version(versions: list[ImageVersion], image: Image) -> ImageVersion | None:
    current = sorted((v for v in versions if v["current"]), key=lambda v: v["node"] != image["storage"])
    return current[0] if current else None  # the home node's, else another node's


def _summary(store: Store, image: Image) -> dict[str, Any]:
    versions = store.image_versions(image["name"])
    current = _current_version(versions, image)
    raw = current["raw_bytes"] if current else None
    stored = image["stored_bytes"]
    if stored is None and current is not None:
        stored = current["stored_bytes"]
    for version in versions:
        version["created"] = captured_at(version["version"]) or version["created"]
    versions.sort(key=lambda v: (-v["created"], v["node"]))  # newest capture first
    return {"image": image, "versions": versions, "current": current, "raw": raw, "stored": stored,
            "ratio": ratio(stored, raw), "version_names": sorted({v["version"] for v in versions})}


def _capture_task(store: Store, name: str) -> Task | None:
    """The finished capture that made the image's current version (its host, when it ended)."""
    rows, _total = store.tasks_page(state="done", type_="capture", image=name, sort="finished", limit=1)
    return rows[0] if rows else None


def _replicas(store: Store, image: Image, jobs: list[ReplicationJob]) -> list[dict[str, Any]]:
    """Each node of the image's group: does it serve the current version, and its latest replication job."""
    latest: dict[str, ReplicationJob] = {}
    for job in jobs:  # ordered by id: the last one per node wins
        latest[job["node"]] = job
    nodes = [n for n in store.storage_nodes() if n["group_id"] == image["group_id"] or n["id"] == image["storage_id"]]
    return [{"node": n, "home": n["id"] == image["storage_id"], "serving": n["name"] in image["replicas"],
             "job": latest.get(n["name"])} for n in nodes]


def _index_page(request: web.Request, status: int = 200, errors: Mapping[str, str] | None = None,
                values: Mapping[str, str] | None = None, adopt_error: str = "") -> web.Response:
    store = request.app[STORE]
    return render(request, "images_index.html", status, title="Images",
                  images=[_summary(store, image) for image in store.images()], groups=store.groups(),
                  types=IMAGE_TYPES, type_help=IMAGE_TYPE_HELP, formats=IMAGE_FORMATS, format_help=FORMAT_HELP,
                  errors=errors or {}, values=values or {},
                  adopt_error=adopt_error, notice=request.query.get("notice", ""))


@page()
async def images_index(request: web.Request) -> web.StreamResponse:
    return _index_page(request)


@action("admin", "add image")
async def add_image(request: web.Request) -> web.StreamResponse:
    fields = await form_text(request)
    try:
        image = request.app[STORE].add_image(fields.get("name", ""), description=fields.get("description", ""),
                                             type_=fields.get("type") or "resizable", group=fields.get("group") or None,
                                             format_=fields.get("format") or DEFAULT_IMAGE_FORMAT)
    except ApiError as exc:
        return _index_page(request, exc.status, errors_by_field(exc, IMAGE_HINTS), fields)
    return redirect_after_post(f"/images/{image['name']}",
                               f"Image {image['name']} added; capture a machine into it to fill it.")


def adopted_notice(group: str, done: Adopted, most: int = 10) -> str:
    """One line for the page after adopting: the names adopted, the ones skipped with why (the first ``most``
    of each: the notice travels in the URL; a second run adopts nothing new, so listing them all is safe)."""
    def some(items: list[str]) -> str:
        more = f" and {len(items) - most} more" if len(items) > most else ""
        return ", ".join(items[:most]) + more
    adopted = [i["name"] for i in done["adopted"]]
    text = f"Group {group}: adopted {some(adopted)}." if adopted else f"Group {group}: no new image to adopt."
    if done["skipped"]:
        text += " Skipped: " + some([f"{s['name']} ({s['reason']})" for s in done["skipped"]]) + "."
    return text


@action("admin", "adopt images")
async def adopt_images(request: web.Request) -> web.StreamResponse:
    group = (await form_text(request)).get("group", "")
    request[AUDIT_TARGET] = group[:100]
    try:
        done = request.app[STORE].adopt_images(group)
    except ApiError as exc:  # no such group, or its master has no directory here: said next to the form
        return _index_page(request, exc.status, values={"adopt_group": group}, adopt_error=exc.message)
    return redirect_after_post("/images", adopted_notice(group, done))


def _image_page(request: web.Request, name: str, status: int = 200, error: str = "") -> web.Response:
    store = request.app[STORE]
    image = store.image(name)
    jobs = store.replication_jobs(name)
    return render(request, "images_show.html", status, title=f"Image {name}", summary=_summary(store, image),
                  image=image, capture=_capture_task(store, name), replicas=_replicas(store, image, jobs),
                  jobs=jobs, types=IMAGE_TYPES, type_help=IMAGE_TYPE_HELP, formats=IMAGE_FORMATS,
                  format_help=FORMAT_HELP, error=error, notice=request.query.get("notice", ""),
                  **reports.history_of(store, image=name))


@page()
async def show_image(request: web.Request) -> web.StreamResponse:
    return _image_page(request, request.match_info["name"])


@action("admin", "edit image")
async def edit_image(request: web.Request) -> web.StreamResponse:
    name, fields = request.match_info["name"], await form_text(request)
    try:
        request.app[STORE].edit_image(name, description=fields.get("description"), type_=fields.get("type"),
                                      format_=fields.get("format"))
    except ApiError as exc:
        if exc.status == 404:
            raise
        return _image_page(request, name, exc.status, exc.message)
    saved = request.app[STORE].image(name)
    return redirect_after_post(f"/images/{name}", f"Image {name} saved; its next capture is {saved['type']}, "
                               f"{saved['format']}.")


@action("admin", "remove image version")
async def remove_version(request: web.Request) -> web.StreamResponse:
    name, version = request.match_info["name"], request.match_info["version"]
    try:
        removed = request.app[STORE].remove_image_version(name, version)
    except ApiError as exc:  # the current version, one in use, or one already gone: said on the image's page
        request.app[STORE].image(name)
        return _image_page(request, name, exc.status, exc.message)
    nodes = ", ".join(sorted({v["node"] for v in removed}))
    return redirect_after_post(f"/images/{name}", f"Version {version} removed from {nodes}.")


@action("admin", "remove image")
async def remove_image(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    try:
        request.app[STORE].remove_image(name)
    except ApiError as exc:
        if exc.status == 404:
            raise
        return _image_page(request, name, exc.status, exc.message)
    return redirect_after_post("/images", f"Image {name} removed (its files stay on the nodes).")


@action("admin", "replicate image")
async def replicate_image(request: web.Request) -> web.StreamResponse:
    from server_stub.webapp import REPLICATOR  # here: webapp imports the console at its top
    name = request.match_info["name"]
    try:
        jobs = request.app[STORE].queue_replication(name)
    except ApiError as exc:
        if exc.status == 404:
            raise
        return _image_page(request, name, exc.status, exc.message)
    request.app[REPLICATOR].wake()
    if not jobs:
        return redirect_after_post(f"/images/{name}", f"Image {name}: no copy queued (its group has no other node, or the "
                                   "copies are queued already).")
    nodes = ", ".join(job["node"] for job in jobs)
    return redirect_after_post(f"/images/{name}", f"Image {name}: copies to {nodes} queued.")


def routes() -> list[web.RouteDef]:
    return [
        web.get("/images", images_index),
        web.post("/images", add_image),
        web.post("/images/adopt", adopt_images),
        web.get("/images/{name}", show_image),
        web.post("/images/{name}/edit", edit_image),
        web.post("/images/{name}/remove", remove_image),
        web.post("/images/{name}/replicate", replicate_image),
        web.post("/images/{name}/versions/{version}/remove", remove_version),
    ]
