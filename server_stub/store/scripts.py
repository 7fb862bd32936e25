"""Post-deploy scripts (FOG's postdownloadscripts): an admin's script, kept whole in the database with the
SHA-256 the server computed, and its attachments to images and host groups (``hosts.group_name``).

A deploy task's scripts are those attached to its image and to its host's group, in attachment order
(``position``, then image before group, then name); a script attached both ways runs once, at its first place.
Bounds: a script is at most MAX_SCRIPT_BYTES, the server holds at most MAX_SCRIPTS, an image or a group has at
most MAX_ATTACHED scripts — what one admin call can make the server hold and a client run.
"""
from __future__ import annotations

import hashlib
import sqlite3
import time
from typing import TypedDict, cast

from server_stub.errors import Conflict, Invalid, NotFound
from server_stub.store.database import Database
from server_stub.store.validate import check_name

MAX_SCRIPT_BYTES = 256 * 1024
MAX_SCRIPTS = 200
MAX_ATTACHED = 20
MAX_DESCRIPTION = 500
TIMEOUT_DEFAULT_S = 300
TIMEOUT_MAX_S = 3600
POLICIES = ("fail", "warn")


class Script(TypedDict):
    id: int
    name: str
    description: str
    sha256: str
    size: int
    created: float
    created_by: str


class Attachment(TypedDict):
    id: int
    script: str
    script_id: int
    image: str | None
    group: str | None
    position: int
    timeout: int
    policy: str
    sha256: str


class ScriptDetail(Script):
    content: str
    attachments: list[Attachment]


class TaskScript(TypedDict):
    """A script as the deploy task lists it (contract/task.py TaskScript, with the URL the handler adds)."""
    id: int
    name: str
    sha256: str
    size: int
    timeout: int
    policy: str


_SCRIPT_COLUMNS = "s.id, s.name, s.description, s.sha256, s.size, s.created, s.created_by"
_ATTACHMENTS = ("SELECT a.id, s.name AS script, s.id AS script_id, i.name AS image, a.host_group AS \"group\", "
                "a.position, a.timeout, a.policy, s.sha256 FROM script_attachments a "
                "JOIN scripts s ON s.id = a.script_id LEFT JOIN images i ON i.id = a.image_id ")


def check_content(content: object) -> bytes:
    """A script's text: UTF-8, not empty, at most MAX_SCRIPT_BYTES, no NUL (a script, not a binary)."""
    if not isinstance(content, str):
        raise Invalid("content must be the script's text", field="content")
    try:
        data = content.encode("utf-8")
    except UnicodeEncodeError:
        raise Invalid("the script is not valid UTF-8 text", field="content") from None
    if not data.strip():
        raise Invalid("the script is empty", field="content")
    if len(data) > MAX_SCRIPT_BYTES:
        raise Invalid(f"the script is {len(data)} bytes; at most {MAX_SCRIPT_BYTES} are kept", field="content")
    if b"\0" in data:
        raise Invalid("the script holds a NUL byte: scripts are text", field="content")
    return data


def check_policy(policy: object) -> str:
    if policy not in POLICIES:
        raise Invalid(f"policy must be fail or warn, not {policy!r}", field="policy")
    return str(policy)


def check_timeout(timeout: object) -> int:
    if not isinstance(timeout, int) or isinstance(timeout, bool) or not 1 <= timeout <= TIMEOUT_MAX_S:
        raise Invalid(f"timeout must be 1-{TIMEOUT_MAX_S} seconds", field="timeout")
    return timeout


def check_position(position: object) -> int:
    if not isinstance(position, int) or isinstance(position, bool) or not 0 <= position <= 9999:
        raise Invalid("order must be a whole number 0-9999", field="order")
    return position


class Scripts:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add_script(self, name: str, content: object, description: str = "", created_by: str = "") -> Script:
        check_name(name, "script")
        data = check_content(content)
        if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
            raise Invalid(f"the description must be text of at most {MAX_DESCRIPTION} characters",
                          field="description")
        try:
            with self.db.transaction():
                if self.db.scalar("SELECT COUNT(*) FROM scripts") >= MAX_SCRIPTS:
                    raise Conflict(f"the server holds {MAX_SCRIPTS} scripts already; delete one first")
                self.db.execute("INSERT INTO scripts(name, description, content, sha256, size, created, created_by) "
                                "VALUES (?, ?, ?, ?, ?, ?, ?)", name, description, data,
                                hashlib.sha256(data).hexdigest(), len(data), time.time(), created_by[:100])
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"script {name} exists already (delete it first to replace it)", field="name") from exc
        return self.script(name)

    def script(self, name: str) -> Script:
        row = self.db.one(f"SELECT {_SCRIPT_COLUMNS} FROM scripts s WHERE s.name = ?", name)
        if row is None:
            raise NotFound(f"no script {name!r}")
        return cast(Script, row)

    def scripts(self) -> list[Script]:
        return self.db.all_as(Script, f"SELECT {_SCRIPT_COLUMNS} FROM scripts s ORDER BY s.name")

    def script_detail(self, name: str) -> ScriptDetail:
        found = self.script(name)
        content = self.db.scalar("SELECT content FROM scripts WHERE id = ?", found["id"])
        return {**found, "content": bytes(content).decode("utf-8", errors="replace"),
                "attachments": self.attachments(script=name)}

    def remove_script(self, name: str) -> Script:
        """Forget a script and its attachments; a task that listed it meanwhile is answered 404 for it."""
        with self.db.transaction():
            found = self.script(name)
            self.db.execute("DELETE FROM scripts WHERE id = ?", found["id"])
        return found

    def attachments(self, script: str | None = None, image: str | None = None,
                    group: str | None = None) -> list[Attachment]:
        where, args = [], []
        for column, value in (("s.name", script), ("i.name", image), ("a.host_group", group)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        sql = _ATTACHMENTS + (f"WHERE {' AND '.join(where)} " if where else "") + \
            "ORDER BY a.position, a.host_group IS NOT NULL, s.name"
        return self.db.all_as(Attachment, sql, *args)

    def attach(self, name: str, *, image: str | None = None, group: str | None = None, position: object = 0,
               timeout: object = TIMEOUT_DEFAULT_S, policy: object = "fail") -> Attachment:
        """Attach to an image or to a host group (one of them); attaching again changes order, timeout, policy."""
        if (image is None) == (group is None):
            raise Invalid("attach the script to an image or to a host group (one of them)")
        order, seconds, rule = check_position(position), check_timeout(timeout), check_policy(policy)
        with self.db.transaction():
            found = self.script(name)
            image_id = self._image_id(image) if image is not None else None
            host_group = check_name(group, "group") if group is not None else None
            where = "image_id = ?" if image_id is not None else "host_group = ?"
            target = image_id if image_id is not None else host_group
            existing = self.db.scalar(f"SELECT id FROM script_attachments WHERE script_id = ? AND {where}",
                                      found["id"], target)
            if existing is None:
                if self.db.scalar(f"SELECT COUNT(*) FROM script_attachments WHERE {where}", target) >= MAX_ATTACHED:
                    raise Conflict(f"{'image' if image else 'group'} {image or group} has {MAX_ATTACHED} scripts "
                                   "already; detach one first")
                self.db.execute("INSERT INTO script_attachments(script_id, image_id, host_group, position, timeout, "
                                "policy) VALUES (?, ?, ?, ?, ?, ?)", found["id"], image_id, host_group, order,
                                seconds, rule)
            else:
                self.db.execute("UPDATE script_attachments SET position = ?, timeout = ?, policy = ? WHERE id = ?",
                                order, seconds, rule, existing)
        return next(a for a in self.attachments(script=name, image=image, group=group))

    def detach(self, name: str, *, image: str | None = None, group: str | None = None) -> Attachment:
        if (image is None) == (group is None):
            raise Invalid("detach the script from an image or from a host group (one of them)")
        with self.db.transaction():
            self.script(name)
            found = self.attachments(script=name, image=image, group=group)
            if not found:
                raise NotFound(f"script {name} is not attached to {'image ' + image if image else 'group ' + str(group)}")
            self.db.execute("DELETE FROM script_attachments WHERE id = ?", found[0]["id"])
        return found[0]

    def scripts_for(self, image: str | None, group: str | None) -> list[TaskScript]:
        """What a deploy of ``image`` onto a host of ``group`` runs, in order; each script once."""
        if image is None:
            return []
        rows = self.db.all(
            "SELECT s.id, s.name, s.sha256, s.size, a.timeout, a.policy FROM script_attachments a "
            "JOIN scripts s ON s.id = a.script_id LEFT JOIN images i ON i.id = a.image_id "
            "WHERE i.name = ? OR (a.host_group IS NOT NULL AND a.host_group = ?) "
            "ORDER BY a.position, a.host_group IS NOT NULL, s.name", image, group)
        seen: set[int] = set()
        ordered: list[TaskScript] = []
        for row in rows:
            if row["id"] not in seen:
                seen.add(row["id"])
                ordered.append(cast(TaskScript, row))
        return ordered

    def script_content(self, script_id: int) -> bytes:
        content = self.db.scalar("SELECT content FROM scripts WHERE id = ?", script_id)
        if content is None:
            raise NotFound("no such script")
        return bytes(content)

    def _image_id(self, image: str) -> int:
        found = self.db.scalar("SELECT id FROM images WHERE name = ?", image)
        if found is None:
            raise NotFound(f"no image {image!r}")
        return int(found)
