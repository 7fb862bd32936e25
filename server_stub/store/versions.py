"""An image's versions on its nodes: the directories ``.images/<name>@<stamp>`` under each node of its group
that this server reaches as a local directory (the node's ``rsync_target``), and removing an old one.

The node's ``<name>`` symlink names the current version (contract/versions.py); that one is never removed here.
"""
from __future__ import annotations

import json
import os
import shutil
from typing import Any

from contract.manifest import MANIFEST
from contract.versions import VERSIONS_DIR, is_version, version_of_link
from server_stub.errors import Conflict, Invalid, NotFound
from server_stub.store.database import Database
from server_stub.store.images import Images
from server_stub.store.models import Image, ImageVersion, StorageNode
from server_stub.store.storage import NODES


class ImageVersions:
    def __init__(self, db: Database, images: Images) -> None:
        self.db, self.images = db, images

    def _local_nodes(self, image: Image) -> list[tuple[StorageNode, str]]:
        """(node, its local directory) for the image's group's nodes (and its home) that are directories here."""
        nodes = self.db.all_as(StorageNode, NODES + "WHERE s.group_id = ? OR s.id = ? ORDER BY s.name",
                               image["group_id"], image["storage_id"])
        return [(n, str(n["rsync_target"])) for n in nodes if (n["rsync_target"] or "").startswith("/")]

    def image_versions(self, name: str) -> list[ImageVersion]:
        """Every version of the image on every local node, newest first."""
        image = self.images.image(name)
        found: list[ImageVersion] = []
        for node, root in self._local_nodes(image):
            current = _current(root, name)
            try:
                entries = os.listdir(os.path.join(root, VERSIONS_DIR))
            except OSError:
                continue
            for entry in entries:
                path = os.path.join(root, VERSIONS_DIR, entry)
                if not is_version(entry, name) or not os.path.isdir(path):
                    continue
                raw, chunk_bytes = _manifest_figures(path)
                found.append({"version": entry, "node": node["name"], "current": entry == current,
                              "created": os.path.getmtime(path), "stored_bytes": bytes_under(path) + chunk_bytes,
                              "chunk_bytes": chunk_bytes, "raw_bytes": raw})
        return sorted(found, key=lambda v: (-v["created"], v["version"], v["node"]))

    def remove_image_version(self, name: str, version: str) -> list[ImageVersion]:
        """Delete an old version from every local node holding it; what was removed. The current version of
        a node, or one a multicast session, replication or running deploy may read, is refused."""
        image = self.images.image(name)
        if not is_version(version, name):
            raise Invalid(f"{version!r} is not a version of image {name} ({name}@<stamp>)", field="version")
        held = [v for v in self.image_versions(name) if v["version"] == version]
        if not held:
            raise NotFound(f"no version {version} of image {name} on a node this server reaches")
        current = [v["node"] for v in held if v["current"]]
        if current:
            raise Conflict(f"{version} is the current version of image {name} on {', '.join(current)}; "
                           "only older versions can be removed")
        if self.db.one("SELECT id FROM multicast_sessions WHERE image_id = ? AND version = ? AND state IN "
                       "('waiting', 'sending')", image["id"], version):
            raise Conflict(f"a multicast session is sending {version}; cancel it first")
        if self.db.one("SELECT id FROM replication_jobs WHERE image_id = ? AND state = 'running'", image["id"]):
            raise Conflict(f"image {name} is being copied to another node; try again when that ends")
        if self.db.one("SELECT id FROM tasks WHERE image_id = ? AND state = 'running' AND started < ?",
                       image["id"], image["captured"] or 0):
            raise Conflict(f"a task that started before image {name}'s last capture may still read {version}; "
                           "try again when it ends")
        roots = {n["name"]: root for n, root in self._local_nodes(image)}
        for entry in held:
            shutil.rmtree(os.path.join(roots[entry["node"]], VERSIONS_DIR, version))
        return held


def _current(root: str, name: str) -> str | None:
    try:
        return version_of_link(name, os.readlink(os.path.join(root, name)))
    except OSError:
        return None


def bytes_under(path: str) -> int:
    """The size of every file under ``path`` (links not followed; a file gone meanwhile counts 0)."""
    total = 0
    for folder, _dirs, files in os.walk(path):
        for file in files:
            try:
                total += os.lstat(os.path.join(folder, file)).st_size
            except OSError:
                continue
    return total


def _manifest_figures(path: str) -> tuple[int | None, int]:
    """From the version's manifest: the uncompressed data of its streams (None: no readable manifest), and the
    stored size of the chunks its chunked partitions name (they live in the node's shared chunk store)."""
    try:
        with open(os.path.join(path, MANIFEST)) as f:
            manifest: dict[str, Any] = json.load(f)
        raw = chunks = 0
        for disk in manifest.get("disks", []):
            if disk.get("mode") == "raw":
                raw += int(disk.get("raw_bytes") or 0)
                continue
            for part in disk.get("partitions", []):
                raw += int(part.get("raw_bytes") or 0)
                if "chunks" in part:
                    chunks += int(part.get("stored_bytes") or 0)
                for volume in (part.get("lvm") or {}).get("volumes", []):
                    raw += int(volume.get("raw_bytes") or 0)
        return raw, chunks
    except (OSError, ValueError, TypeError, AttributeError):
        return None, 0
