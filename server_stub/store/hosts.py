"""Hosts (added by an admin or registered by the machine itself), their latest inventory, the boot log."""
from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping
from typing import Any, cast

from server_stub.errors import Conflict, Invalid, NotFound
from server_stub.store.database import Database
from server_stub.store.images import Images
from server_stub.store.models import BootLogEntry, Host, HostRow, Inventory
from server_stub.store.validate import check_name, check_page, like_pattern, normalize_mac

HOSTS = "SELECT h.*, i.name AS image FROM hosts h LEFT JOIN images i ON i.id = h.image_id "
# hosts_page: each sort key and its column (only these reach the SQL); ties go by name, which is unique.
HOST_SORTS = {"name": "h.name", "mac": "h.mac", "created": "h.created", "registered": "h.registered",
              "group": "h.group_name", "image": "i.name", "task": "t.state"}
_PAGE_FROM = ("FROM hosts h LEFT JOIN images i ON i.id = h.image_id "
              "LEFT JOIN tasks t ON t.host_id = h.id AND t.state IN ('queued', 'running') ")
_SEARCH = r"WHERE (h.name LIKE ? ESCAPE '\' OR h.mac LIKE ? ESCAPE '\' OR h.group_name LIKE ? ESCAPE '\' " \
          r"OR i.name LIKE ? ESCAPE '\') "
EDITABLE = ("name", "mac", "image", "group")
BOOT_LOG_PER_MAC = 200
BOOT_LOG_TOTAL = 100_000


class Hosts:
    def __init__(self, db: Database, images: Images) -> None:
        self.db, self.images = db, images

    def add_host(self, mac: str, name: str) -> Host:
        mac, name = normalize_mac(mac), check_name(name, "host")
        try:
            with self.db.transaction():
                self.db.execute("INSERT INTO hosts(mac, name, created) VALUES (?, ?, ?)", mac, name, time.time())
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"a host with MAC {mac} or name {name} exists already") from exc
        return self.host(mac)

    def host(self, key: str) -> Host:
        """By MAC or by name."""
        try:
            row = self.db.one(HOSTS + "WHERE h.mac = ?", normalize_mac(key))
        except Invalid:
            row = self.db.one(HOSTS + "WHERE h.name = ?", key)
        if not row:
            raise NotFound(f"no host {key!r}")
        return cast(Host, row)

    def find_host_by_mac(self, mac: str) -> Host | None:
        return cast(Host | None, self.db.one(HOSTS + "WHERE h.mac = ?", normalize_mac(mac)))

    def hosts(self) -> list[Host]:
        return self.db.all_as(Host, HOSTS + "ORDER BY h.name")

    def hosts_page(self, query: str = "", sort: str = "name", descending: bool = False, offset: int = 0,
                   limit: int | None = 50) -> tuple[list[HostRow], int]:
        """One page of the hosts whose name, MAC, group or image contains ``query`` (any case), sorted by
        ``sort`` (a HOST_SORTS key), with each one's active task; and how many match in all."""
        if sort not in HOST_SORTS:
            raise Invalid(f"sort by one of {', '.join(HOST_SORTS)}", field="sort")
        offset, limit = check_page(offset, limit)
        where, args = (_SEARCH, [like_pattern(query)] * 4) if query else ("", [])
        total = self.db.scalar("SELECT COUNT(*) FROM hosts h LEFT JOIN images i ON i.id = h.image_id " + where,
                               *args)
        order = f"{HOST_SORTS[sort]} {'DESC' if descending else 'ASC'}, h.name {'DESC' if descending else 'ASC'}"
        rows = self.db.all_as(HostRow, "SELECT h.*, i.name AS image, t.id AS task_id, t.type AS task_type, "
                              "t.state AS task_state " + _PAGE_FROM + where + f"ORDER BY {order} LIMIT ? OFFSET ?",
                              *args, -1 if limit is None else limit, offset)
        return rows, int(total)

    def edit_host(self, key: str, changes: Mapping[str, str | None]) -> Host:
        """Change a host's name, MAC, assigned image or group (keys of ``changes``; None clears image or group)."""
        unknown = sorted(set(changes) - set(EDITABLE))
        if unknown:
            raise Invalid(f"a host has no field {', '.join(unknown)} to change (only {', '.join(EDITABLE)})")
        sets: dict[str, Any] = {}
        if "name" in changes:
            sets["name"] = _checked("name", lambda: check_name(changes["name"], "host"))
        if "mac" in changes:
            sets["mac"] = _checked("mac", lambda: normalize_mac(str(changes["mac"] or "")))
        if "group" in changes:
            group = changes["group"]
            sets["group_name"] = None if group in (None, "") else _checked("group", lambda: check_name(group, "group"))
        with self.db.transaction():
            host = self.host(key)
            if "image" in changes:
                image = changes["image"]
                sets["image_id"] = None if image in (None, "") else _checked(
                    "image", lambda: self.images.image(str(image))["id"])
            for column, what in (("name", "name"), ("mac", "MAC")):
                if column in sets and self.db.one(f"SELECT id FROM hosts WHERE {column} = ? AND id != ?",
                                                  sets[column], host["id"]):
                    raise Conflict(f"another host has the {what} {sets[column]} already", field=column)
            if sets:
                self.db.execute(f"UPDATE hosts SET {', '.join(f'{c} = ?' for c in sets)} WHERE id = ?",
                                *sets.values(), host["id"])
        return self.host(str(sets.get("mac", host["mac"])))

    def remove_host(self, key: str) -> Host:
        """Forget a host, its inventory and its finished tasks (its boot log stays, by MAC); refused while
        it has a task to do."""
        with self.db.transaction():
            host = self.host(key)
            active = self.db.one("SELECT id, type, state FROM tasks WHERE host_id = ? AND state IN "
                                 "('queued', 'running')", host["id"])
            if active:
                raise Conflict(f"host {host['name']} has a {active['state']} {active['type']} task "
                               f"({active['id']}); cancel it first")
            self.db.execute("DELETE FROM multicast_clients WHERE task_id IN (SELECT id FROM tasks WHERE host_id = ?)",
                            host["id"])
            self.db.execute("DELETE FROM tasks WHERE host_id = ?", host["id"])
            self.db.execute("DELETE FROM host_inventory WHERE host_id = ?", host["id"])
            self.db.execute("DELETE FROM hosts WHERE id = ?", host["id"])
        return host

    def register_host(self, mac: str, inventory: dict[str, Any], name: str | None = None, image: str | None = None,
                      group: str | None = None, prefix: str = "mac") -> Host:
        """A machine that booted unknown registers itself: quick (no name: FOG's default from the MAC)
        or full (the technician chose name, image, group). Never touches a host that exists."""
        mac = normalize_mac(mac)
        kind = "quick" if name is None and image is None and group is None else "full"
        name = check_name(name, "host") if name is not None else check_name(prefix + mac.replace(":", ""), "host")
        if group is not None:
            check_name(group, "group")
        with self.db.transaction():
            image_id = self.images.image(image)["id"] if image is not None else None
            if self.db.one("SELECT id FROM hosts WHERE mac = ?", mac):
                raise Conflict(f"MAC {mac} is registered already")
            if self.db.one("SELECT id FROM hosts WHERE name = ?", name):
                raise Conflict(f"a host named {name} exists already")
            cur = self.db.execute(
                "INSERT INTO hosts(mac, name, created, registered, image_id, group_name) VALUES (?, ?, ?, ?, ?, ?)",
                mac, name, time.time(), kind, image_id, group)
            assert cur.lastrowid is not None
            self.store_inventory(cur.lastrowid, inventory, None)
        return self.host(mac)

    def store_inventory(self, host_id: int, inventory: dict[str, Any], task_id: int | None) -> None:
        with self.db.transaction():
            self.db.execute("INSERT OR REPLACE INTO host_inventory(host_id, collected, task_id, data) "
                            "VALUES (?, ?, ?, ?)", host_id, time.time(), task_id, json.dumps(inventory))

    def inventory(self, key: str) -> Inventory | None:
        """The host's latest inventory: {"collected", "task_id", "data"}, or None if it never sent one."""
        row = self.db.one("SELECT collected, task_id, data FROM host_inventory WHERE host_id = ?", self.host(key)["id"])
        if row:
            row["data"] = json.loads(row["data"])
        return cast(Inventory | None, row)

    # --- boot log ----------------------------------------------------------
    def log_boot(self, mac: str, decision: str, task_id: int | None) -> None:
        """One boot decision; the log keeps the newest BOOT_LOG_PER_MAC of a MAC and BOOT_LOG_TOTAL in all,
        pruned here so a machine that reboots in a loop (or a flood of made-up MACs) cannot grow it."""
        with self.db.transaction():
            row = self.db.execute("INSERT INTO boot_log(time, mac, decision, task_id) VALUES (?, ?, ?, ?)",
                                  time.time(), mac, decision, task_id).lastrowid
            self.db.execute("DELETE FROM boot_log WHERE mac = ? AND id <= (SELECT id FROM boot_log WHERE mac = ? "
                            "ORDER BY id DESC LIMIT 1 OFFSET ?)", mac, mac, BOOT_LOG_PER_MAC)
            self.db.execute("DELETE FROM boot_log WHERE id <= ?", (row or 0) - BOOT_LOG_TOTAL)

    def boot_log(self, mac: str | None = None, limit: int = 100) -> list[BootLogEntry]:
        if mac:
            return self.db.all_as(BootLogEntry, "SELECT * FROM boot_log WHERE mac = ? ORDER BY id DESC LIMIT ?",
                                  normalize_mac(mac), limit)
        return self.db.all_as(BootLogEntry, "SELECT * FROM boot_log ORDER BY id DESC LIMIT ?", limit)


def _checked(field: str, check: Any) -> Any:
    """``check()``, its refusal naming the form field it is about."""
    try:
        return check()
    except (Invalid, NotFound) as exc:
        exc.details.setdefault("field", field)
        raise
