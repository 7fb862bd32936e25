"""Hosts (added by an admin or registered by the machine itself), their latest inventory, the boot log."""
from __future__ import annotations

import json
import sqlite3
import time
from typing import Any, cast

from server_stub.errors import Conflict, Invalid, NotFound
from server_stub.store.database import Database
from server_stub.store.images import Images
from server_stub.store.models import BootLogEntry, Host, Inventory
from server_stub.store.validate import check_name, normalize_mac

HOSTS = "SELECT h.*, i.name AS image FROM hosts h LEFT JOIN images i ON i.id = h.image_id "


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
        with self.db.transaction():
            self.db.execute("INSERT INTO boot_log(time, mac, decision, task_id) VALUES (?, ?, ?, ?)",
                            time.time(), mac, decision, task_id)

    def boot_log(self, mac: str | None = None, limit: int = 100) -> list[BootLogEntry]:
        if mac:
            return self.db.all_as(BootLogEntry, "SELECT * FROM boot_log WHERE mac = ? ORDER BY id DESC LIMIT ?",
                                  normalize_mac(mac), limit)
        return self.db.all_as(BootLogEntry, "SELECT * FROM boot_log ORDER BY id DESC LIMIT ?", limit)
