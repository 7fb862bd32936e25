"""Images: each belongs to a storage group; its home node (``storage_id``) holds the version the last capture
published. A deploy may read it there or on any node whose replica of that version is done."""
from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping
from typing import Any, cast

from contract.task import DEFAULT_IMAGE_FORMAT
from server_stub.errors import Conflict, Invalid, NotFound
from server_stub.store.database import Database
from server_stub.store.models import Image, StorageNode
from server_stub.store.storage import NODES, Storage
from server_stub.store.validate import check_image_format, check_image_type, check_name

MAX_DESCRIPTION = 1000  # characters: free text shown with the image
IMAGES = ("SELECT i.*, s.name AS storage, g.name AS group_name FROM images i "
          "JOIN storage_nodes s ON s.id = i.storage_id LEFT JOIN storage_groups g ON g.id = i.group_id ")



def check_description(description: str) -> None:
    if len(description) > MAX_DESCRIPTION:
        raise Invalid(f"an image's description is at most {MAX_DESCRIPTION} characters", field="description")


class Images:
    def __init__(self, db: Database, storage: Storage) -> None:
        self.db, self.storage = db, storage

    def add_image(self, name: str, storage: str | None = None, description: str = "", type_: str = "resizable",
                  group: str | None = None, format_: str = DEFAULT_IMAGE_FORMAT) -> Image:
        """An image of a group (``storage`` NODE, the older form, means that node's group)."""
        check_name(name, "image")
        check_image_type(type_)
        check_image_format(format_)
        check_description(description)
        if (group is None) == (storage is None):
            raise Invalid("give the image's storage group (or, the older form, a storage node)")
        try:
            with self.db.transaction():
                group_name = group if group is not None else self.storage.storage(str(storage))["group_name"]
                group_row = self.storage.group(str(group_name))
                if not group_row["master"]:
                    raise Conflict(f"storage group {group_row['name']} has no node yet; add one first")
                home = self.storage.storage(group_row["master"])
                self.db.execute("INSERT INTO images(name, storage_id, group_id, type, format, description, created) "
                                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                                name, home["id"], group_row["id"], type_, format_, description, time.time())
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"image {name} exists already") from exc
        return self.image(name)

    def edit_image(self, name: str, description: str | None = None, type_: str | None = None,
                   format_: str | None = None) -> Image:
        """Change what the next capture writes (type, format) and the description; only the fields given.
        The versions already captured keep their own format: each one's manifest says it."""
        if description is not None:
            check_description(description)
        fields = {"description": description, "type": None if type_ is None else check_image_type(type_),
                  "format": None if format_ is None else check_image_format(format_)}
        changes = {column: value for column, value in fields.items() if value is not None}
        with self.db.transaction():
            image = self.image(name)
            if changes:
                self.db.execute(f"UPDATE images SET {', '.join(f'{c} = ?' for c in changes)} WHERE id = ?",
                                *changes.values(), image["id"])
        return self.image(name)

    def image(self, name: str) -> Image:
        row = self.db.one(IMAGES + "WHERE i.name = ?", name)
        if not row:
            raise NotFound(f"no image {name!r}")
        row["replicas"] = [n["name"] for n in self.serving_nodes(row)]
        return cast(Image, row)

    def images(self) -> list[Image]:
        return [self.image(r["name"]) for r in self.db.all("SELECT name FROM images ORDER BY name")]

    def remove_image(self, name: str) -> Image:
        """Forget an image (its files stay on the nodes: remove its versions first to free them). Refused
        while a task, a multicast session or a replication uses it; finished tasks keep its name."""
        with self.db.transaction():
            image = self.image(name)
            busy = self.db.one("SELECT id, type, state FROM tasks WHERE image_id = ? AND state IN ('queued', "
                               "'running')", image["id"])
            if busy:
                raise Conflict(f"image {name} is used by {busy['state']} {busy['type']} task {busy['id']}; "
                               "wait for it or cancel it first")
            if self.db.one("SELECT id FROM multicast_sessions WHERE image_id = ? AND state IN ('waiting', 'sending')", image["id"]):
                raise Conflict(f"image {name} is being sent by a multicast session; cancel it first")
            if self.db.one("SELECT id FROM replication_jobs WHERE image_id = ? AND state = 'running'", image["id"]):
                raise Conflict(f"image {name} is being copied to another node; try again when that ends")
            self.db.execute("UPDATE tasks SET image_name = ?, image_id = NULL WHERE image_id = ?", name, image["id"])
            self.db.execute("UPDATE hosts SET image_id = NULL WHERE image_id = ?", image["id"])
            self.db.execute("DELETE FROM multicast_clients WHERE session_id IN "
                            "(SELECT id FROM multicast_sessions WHERE image_id = ?)", image["id"])
            self.db.execute("DELETE FROM multicast_sessions WHERE image_id = ?", image["id"])
            self.db.execute("DELETE FROM replication_jobs WHERE image_id = ?", image["id"])
            self.db.execute("DELETE FROM images WHERE id = ?", image["id"])
        return image

    def source_host(self, image_id: int) -> str | None:
        """The host whose capture made the image's current version."""
        return cast(str | None, self.db.scalar(
            "SELECT h.name FROM tasks t JOIN hosts h ON h.id = t.host_id WHERE t.image_id = ? AND t.type = 'capture' "
            "AND t.state = 'done' ORDER BY t.finished DESC LIMIT 1", image_id))

    def serving_nodes(self, image: Mapping[str, Any]) -> list[StorageNode]:
        """Nodes that hold the image's current version whole: its home, and every node whose replication
        started after that version was published and finished."""
        if not image["captured"]:
            return []
        return self.db.all_as(StorageNode, NODES + "WHERE s.id = ? OR s.id IN (SELECT node_id FROM replication_jobs "
                           "WHERE image_id = ? AND state = 'done' AND started >= ?) ORDER BY s.name",
                           image["storage_id"], image["id"], image["captured"])

    def captured(self, image_id: int, stored_bytes: int | None, node_id: int | None) -> None:
        """A capture published a new version on ``node_id``, its new home."""
        self.db.execute("UPDATE images SET captured = ?, stored_bytes = ?, storage_id = COALESCE(?, storage_id) "
                        "WHERE id = ?", time.time(), stored_bytes, node_id, image_id)
