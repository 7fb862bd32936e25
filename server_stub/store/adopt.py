"""Adopting a FOG ``/images`` or Clonezilla ``/home/partimag`` tree: every image directory found on a group's
master node becomes an image definition, served from there as it is (the client reads these formats:
imager/foreign). What each directory is, is decided by its file names alone (contract/foreign.py).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TypedDict

from contract.foreign import CLONEZILLA, FOG, detect_format, image_type
from contract.versions import is_image_name
from server_stub.errors import Conflict
from server_stub.store.database import Database
from server_stub.store.images import Images
from server_stub.store.models import Image
from server_stub.store.storage import Storage
from server_stub.store.versions import bytes_under

FORMAT_NAMES = {FOG: "FOG", CLONEZILLA: "Clonezilla"}


class Skipped(TypedDict):
    name: str
    reason: str


class Adopted(TypedDict):
    adopted: list[Image]
    skipped: list[Skipped]


@dataclass(frozen=True)
class Found:
    """An image directory on the master, read before the transaction (sizes take a walk of the tree)."""
    name: str
    path: str
    format: str
    type: str
    modified: float
    stored_bytes: int


def scan(root: str) -> tuple[list[Found], list[Skipped]]:
    """The FOG and Clonezilla image directories right under ``root``; the ones whose name cannot be an image's,
    skipped. Symlinks (imager's own ``<name>`` links among them), hidden entries and anything else: ignored."""
    found: list[Found] = []
    skipped: list[Skipped] = []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.name.startswith(".") or entry.is_symlink() or not entry.is_dir(follow_symlinks=False):
            continue
        fmt = detect_format(entry.path)
        if fmt is None:
            continue
        if not is_image_name(entry.name):
            skipped.append({"name": entry.name, "reason": "not a valid image name (1-100 letters, digits, '.', '_' "
                                                          "or '-', starting with a letter or digit): rename it"})
            continue
        try:
            type_, modified = image_type(entry.path, fmt), entry.stat(follow_symlinks=False).st_mtime
        except OSError as exc:  # gone or unreadable meanwhile
            skipped.append({"name": entry.name, "reason": f"unreadable: {exc.strerror}"})
            continue
        # captured 0 would read as "never captured" (Images.serving_nodes)
        found.append(Found(entry.name, entry.path, fmt, type_, modified if modified > 0 else time.time(),
                           bytes_under(entry.path)))
    return found, skipped


class ImageAdopter:
    def __init__(self, db: Database, storage: Storage, images: Images) -> None:
        self.db, self.storage, self.images = db, storage, images

    def _master_root(self, group: str) -> tuple[int, str]:
        """(the master's id, its local directory), or a Conflict saying why there is none."""
        row = self.storage.group(group)
        if not row["master"]:
            raise Conflict(f"storage group {group} has no node yet; add its master (with --rsync-target DIR) first")
        master = self.storage.storage(row["master"])
        root = master["rsync_target"] or ""
        if not root.startswith("/"):
            raise Conflict(f"the master of storage group {group}, node {master['name']}, has no directory on this "
                           f"server (its rsync target is {root or 'not set'}): set one with 'imager-server storage "
                           f"set {master['name']} --rsync-target DIR', DIR the FOG or Clonezilla tree", field="group")
        if not os.path.isdir(root):
            raise Conflict(f"{root}, the directory of node {master['name']} (master of storage group {group}), is not "
                           "a directory this server reaches", field="group")
        return master["id"], root

    def adopt_images(self, group: str) -> Adopted:
        """Every FOG or Clonezilla image directory on the group's master not yet defined becomes an image of
        the group, its home the master, captured when its directory last changed. Twice adopts nothing new."""
        master_id, root = self._master_root(group)
        try:
            found, skipped = scan(root)
        except OSError as exc:
            raise Conflict(f"{root} (master of storage group {group}) cannot be read: {exc.strerror}",
                           field="group") from exc
        adopted: list[str] = []
        with self.db.transaction():
            if self._master_root(group) != (master_id, root):
                raise Conflict(f"the master of storage group {group} changed meanwhile; adopt again")
            group_id = self.storage.group(group)["id"]
            for image in found:
                existing = self.db.one("SELECT g.name AS group_name FROM images i LEFT JOIN storage_groups g "
                                       "ON g.id = i.group_id WHERE i.name = ?", image.name)
                if existing is not None:
                    skipped.append({"name": image.name, "reason": "an image of this name exists already (group "
                                                                  f"{existing['group_name'] or '-'})"})
                    continue
                self.db.execute(
                    "INSERT INTO images(name, storage_id, group_id, type, description, created, captured, "
                    "stored_bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", image.name, master_id, group_id, image.type,
                    f"{FORMAT_NAMES[image.format]} image adopted from {image.path}", time.time(), image.modified,
                    image.stored_bytes)
                adopted.append(image.name)
        skipped.sort(key=lambda s: s["name"])
        return {"adopted": [self.images.image(name) for name in adopted], "skipped": skipped}
