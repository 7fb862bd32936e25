"""Host groups (FOG's groups): named sets of hosts, a host in any number of them; each group's state at a glance;
one task queued for every host of a group.

A host's ``group_name`` (a full registration's group, ``host set --group``) is one of its memberships: the
triggers of migration 11 add the host to the group of that name (creating it) whenever the column is written,
and drop the membership of the name it replaced. Removing a host from that group here clears the column, and a
renamed group's hosts get the new name, so both views always agree.
"""
from __future__ import annotations

import sqlite3
import time
from typing import Any, TypedDict, cast

from contract.vocabulary import IMAGE_TASK_TYPES
from server_stub.errors import Conflict, Invalid, NotFound
from server_stub.store.database import Database
from server_stub.store.hosts import Hosts
from server_stub.store.models import Task
from server_stub.store.tasks import Tasks
from server_stub.store.validate import (check_after, check_disk_selector, check_name, check_partition,
                                        check_task_options, check_task_type)

MAX_GROUPS = 1000               # groups one server holds: bounds what callers can make it keep
MAX_GROUP_HOSTS = 10_000        # hosts in one group
MAX_HOSTS_PER_CALL = 1000       # hosts added or removed in one request
MAX_DESCRIPTION = 500

# Each member joined to its latest task (the MAX id on the tasks_by_host index); a host's active task is always
# its latest (one active task per host). The group's last task is the highest of those ids.
_GROUPS = ("SELECT g.id, g.name, g.description, g.created, COUNT(m.host_id) AS hosts, "
           "COALESCE(SUM(m.host_id IS NOT NULL AND (l.state IS NULL OR l.state NOT IN ('queued', 'running'))), 0) "
           "AS idle, COALESCE(SUM(l.state = 'queued'), 0) AS queued, COALESCE(SUM(l.state = 'running'), 0) AS running, "
           "COALESCE(SUM(l.state = 'failed'), 0) AS failed, MAX(l.id) AS last_task_id "
           "FROM host_groups g LEFT JOIN host_group_members m ON m.group_id = g.id "
           "LEFT JOIN tasks l ON l.id = (SELECT MAX(id) FROM tasks WHERE host_id = m.host_id) ")
_LAST_TASKS = ("SELECT t.id, t.type, t.state, h.name AS host, t.created, t.finished FROM tasks t "
               "JOIN hosts h ON h.id = t.host_id WHERE t.id IN ")
_MEMBERS = ("SELECT h.id, h.mac, h.name, h.group_name, i.name AS image, m.added, a.id AS task_id, a.type AS task_type, "
            "a.state AS task_state, l.id AS last_task_id, l.type AS last_type, l.state AS last_state, "
            "l.finished AS last_finished FROM host_group_members m JOIN hosts h ON h.id = m.host_id "
            "LEFT JOIN images i ON i.id = h.image_id "
            "LEFT JOIN tasks a ON a.host_id = h.id AND a.state IN ('queued', 'running') "
            "LEFT JOIN tasks l ON l.id = (SELECT MAX(id) FROM tasks WHERE host_id = h.id) "
            "WHERE m.group_id = ? ORDER BY h.name")


class LastTask(TypedDict):
    id: int
    type: str
    state: str
    host: str
    created: float
    finished: float | None


class HostGroup(TypedDict):
    """A group and its state at a glance: its hosts counted by their latest task."""
    id: int
    name: str
    description: str
    created: float
    hosts: int
    idle: int               # no queued or running task (those whose latest task failed included)
    queued: int
    running: int
    failed: int             # whose latest task failed
    last_task: LastTask | None  # the newest task of any of its hosts


class GroupMember(TypedDict):
    id: int
    mac: str
    name: str
    group_name: str | None
    image: str | None
    added: float
    task_id: int | None     # its active task
    task_type: str | None
    task_state: str | None
    last_task_id: int | None  # its latest task (the active one, or the last finished)
    last_type: str | None
    last_state: str | None
    last_finished: float | None


class HostGroupDetail(HostGroup):
    members: list[GroupMember]


class SkippedHost(TypedDict):
    host: str
    reason: str
    task_id: int | None


class GroupQueued(TypedDict):
    """What queueing a task for a group did: a task for each idle host, the busy ones skipped."""
    group: str
    queued: list[Task]
    skipped: list[SkippedHost]


def _checked_group_name(name: Any) -> str:
    try:
        return check_name(name, "group")
    except Invalid as exc:
        exc.details.setdefault("field", "name")
        raise


class HostGroups:
    def __init__(self, db: Database, hosts: Hosts, tasks: Tasks) -> None:
        self.db, self.hosts, self.tasks = db, hosts, tasks

    # --- groups ------------------------------------------------------------
    def add_group(self, name: str, description: str = "") -> HostGroup:
        name, description = _checked_group_name(name), _checked_description(description)
        try:
            with self.db.transaction():
                if self.db.scalar("SELECT COUNT(*) FROM host_groups") >= MAX_GROUPS:
                    raise Conflict(f"this server holds {MAX_GROUPS} host groups already; remove unused ones first")
                self.db.execute("INSERT INTO host_groups(name, description, created) VALUES (?, ?, ?)",
                                name, description, time.time())
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"host group {name} exists already", field="name") from exc
        return self.group(name)

    def _row(self, name: str) -> dict[str, Any]:
        row = self.db.one("SELECT * FROM host_groups WHERE name = ?", name)
        if not row:
            raise NotFound(f"no host group {name!r}")
        return row

    def group(self, name: str) -> HostGroup:
        rows = self.db.all(_GROUPS + "WHERE g.name = ? GROUP BY g.id", name)
        if not rows:
            raise NotFound(f"no host group {name!r}")
        return self._with_last_tasks(rows)[0]

    def groups(self) -> list[HostGroup]:
        return self._with_last_tasks(self.db.all(_GROUPS + "GROUP BY g.id ORDER BY g.name"))

    def _with_last_tasks(self, rows: list[dict[str, Any]]) -> list[HostGroup]:
        """Each row's ``last_task_id`` replaced by that task (one query for all of them; ≤ MAX_GROUPS ids)."""
        ids = [r["last_task_id"] for r in rows if r["last_task_id"] is not None]
        found = {t["id"]: t for t in self.db.all_as(LastTask, _LAST_TASKS + f"({','.join('?' * len(ids))})", *ids)} \
            if ids else {}
        for row in rows:
            row["last_task"] = found.get(row.pop("last_task_id"))
        return cast(list[HostGroup], rows)

    def group_detail(self, name: str) -> HostGroupDetail:
        group = self.group(name)
        members = self.db.all_as(GroupMember, _MEMBERS, group["id"])
        return cast(HostGroupDetail, {**group, "members": members})

    def edit_group(self, name: str, new_name: str | None = None, description: str | None = None) -> HostGroup:
        """Rename it (its hosts' group_name follows) or change its description."""
        with self.db.transaction():
            group = self._row(name)
            if description is not None:
                self.db.execute("UPDATE host_groups SET description = ? WHERE id = ?",
                                _checked_description(description), group["id"])
            if new_name is not None and new_name != name:
                new_name = _checked_group_name(new_name)
                if self.db.one("SELECT id FROM host_groups WHERE name = ?", new_name):
                    raise Conflict(f"host group {new_name} exists already", field="name")
                self.db.execute("UPDATE host_groups SET name = ? WHERE id = ?", new_name, group["id"])
                # The trigger finds no group of the old name any more: the memberships stay as they are.
                self.db.execute("UPDATE hosts SET group_name = ? WHERE group_name = ?", new_name, name)
        return self.group(new_name or name)

    def remove_group(self, name: str) -> HostGroup:
        """The group goes, its hosts stay (their group_name cleared where it named this group)."""
        with self.db.transaction():
            group = self.group(name)
            self.db.execute("DELETE FROM host_groups WHERE id = ?", group["id"])
            self.db.execute("UPDATE hosts SET group_name = NULL WHERE group_name = ?", name)
        return group

    # --- members -----------------------------------------------------------
    def _host_ids(self, hosts: list[str]) -> list[tuple[int, str]]:
        if not isinstance(hosts, list) or not hosts or not all(isinstance(h, str) for h in hosts):
            raise Invalid("give the hosts as a list of names or MACs", field="hosts")
        if len(hosts) > MAX_HOSTS_PER_CALL:
            raise Invalid(f"at most {MAX_HOSTS_PER_CALL} hosts at a time", field="hosts")
        found: list[tuple[int, str]] = []
        for key in hosts:
            try:
                host = self.hosts.host(key)
            except NotFound as exc:
                exc.details.setdefault("field", "hosts")
                raise
            found.append((host["id"], host["name"]))
        return found

    def add_members(self, name: str, hosts: list[str]) -> HostGroupDetail:
        """Hosts join the group (one already in it stays, once); all or none."""
        with self.db.transaction():
            group = self._row(name)
            now = time.time()
            for host_id, _ in self._host_ids(hosts):
                self.db.execute("INSERT OR IGNORE INTO host_group_members(group_id, host_id, added) VALUES (?, ?, ?)",
                                group["id"], host_id, now)
            if self.db.scalar("SELECT COUNT(*) FROM host_group_members WHERE group_id = ?", group["id"]) \
                    > MAX_GROUP_HOSTS:
                raise Conflict(f"a host group holds at most {MAX_GROUP_HOSTS} hosts", field="hosts")
        return self.group_detail(name)

    def remove_members(self, name: str, hosts: list[str]) -> HostGroupDetail:
        """Hosts leave the group (the hosts themselves stay); one not in it: Invalid, and none leaves."""
        with self.db.transaction():
            group = self._row(name)
            for host_id, host_name in self._host_ids(hosts):
                gone = self.db.execute("DELETE FROM host_group_members WHERE group_id = ? AND host_id = ?",
                                       group["id"], host_id).rowcount
                if not gone:
                    raise Invalid(f"host {host_name} is not in group {name}", field="hosts")
                self.db.execute("UPDATE hosts SET group_name = NULL WHERE id = ? AND group_name = ?", host_id, name)
        return self.group_detail(name)

    def groups_of_host(self, key: str) -> list[str]:
        host = self.hosts.host(key)
        return [r["name"] for r in self.db.all("SELECT g.name FROM host_group_members m JOIN host_groups g "
                                               "ON g.id = m.group_id WHERE m.host_id = ? ORDER BY g.name", host["id"])]

    def member_macs(self, name: str) -> list[str]:
        """The MACs of the group's hosts, by host name."""
        group = self._row(name)
        return [r["mac"] for r in self.db.all("SELECT h.mac FROM host_group_members m JOIN hosts h ON h.id = m.host_id "
                                              "WHERE m.group_id = ? ORDER BY h.name", group["id"])]

    # --- tasks -------------------------------------------------------------
    def idle_and_busy(self, name: str) -> tuple[list[str], list[SkippedHost]]:
        """(the MACs of the group's hosts without an active task, the others with what they are busy with)."""
        group = self._row(name)
        members = self.db.all_as(GroupMember, _MEMBERS, group["id"])
        if not members:
            raise Invalid(f"host group {name} has no hosts; add some first", field="group")
        idle = [m["mac"] for m in members if m["task_id"] is None]
        busy = [SkippedHost(host=m["name"], task_id=m["task_id"],
                            reason=f"has a {m['task_state']} {m['task_type']} task ({m['task_id']})")
                for m in members if m["task_id"] is not None]
        return idle, busy

    def queue_for_group(self, name: str, type_: str, image: str | None, **options: Any) -> GroupQueued:
        """The same task (add_task's options) for each of the group's hosts that has none active, all of them or
        none; a busy host is skipped and listed, not a refusal. The options are checked even when every host
        is busy, so a mistake shows at once; so are the image and, for a deploy, that it was captured."""
        check_task_type(type_)
        check_task_options(type_, options.get("options"))
        check_after(options.get("after", "reboot"))
        check_disk_selector(options.get("disk"))
        check_partition(type_, options.get("partition"))
        if type_ in IMAGE_TASK_TYPES:  # as add_task checks it, but before any host is looked at
            if image is None:
                raise Invalid(f"a {type_} task names its image", field="image")
            if type_ == "deploy" and not self.tasks.images.image(image)["captured"]:
                raise Conflict(f"image {image} has never been captured; nothing to deploy", field="image")
        with self.db.transaction():
            idle, busy = self.idle_and_busy(name)
            queued = [self.tasks.add_task(mac, type_, image, **options) for mac in idle]
        return GroupQueued(group=name, queued=queued, skipped=busy)


def _checked_description(text: Any) -> str:
    if not isinstance(text, str) or len(text) > MAX_DESCRIPTION or not text.isprintable():
        raise Invalid(f"a description is printable text of at most {MAX_DESCRIPTION} characters",
                      field="description")
    return text
