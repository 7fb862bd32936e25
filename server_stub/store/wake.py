"""Where Wake-on-LAN packets go (table ``wake_targets``, migration 11): per storage group, and the server's
default (storage_group_id NULL). A host's packets follow the storage group of the image it is to deploy or
capture (else of its assigned image): that group's machines are the ones on that site's subnets."""
from __future__ import annotations

import time
from typing import Any, TypedDict

from server_stub.errors import NotFound
from server_stub.store.database import Database
from server_stub.wol import WakeTarget, check_broadcast, check_interface


class WakeSetting(TypedDict):
    storage_group: str | None   # None: the server's default
    broadcast: str | None
    interface: str | None
    updated: float


_SETTINGS = ("SELECT g.name AS storage_group, w.broadcast, w.interface, w.updated FROM wake_targets w "
             "LEFT JOIN storage_groups g ON g.id = w.storage_group_id ")


class WakeTargets:
    def __init__(self, db: Database) -> None:
        self.db = db

    def settings(self) -> list[WakeSetting]:
        """The default first (if set), then each storage group's."""
        return self.db.all_as(WakeSetting, _SETTINGS + "ORDER BY w.storage_group_id IS NOT NULL, g.name")

    def set_target(self, storage_group: str | None, broadcast: str | None, interface: str | None) -> WakeSetting | None:
        """Set a storage group's target (None: the server's default); neither address nor interface: remove it,
        and that group's hosts use the default again. Answers the setting, or None once removed."""
        broadcast = check_broadcast(broadcast) if broadcast not in (None, "") else None
        interface = check_interface(interface) if interface not in (None, "") else None
        with self.db.transaction():
            group_id = None
            if storage_group is not None:
                row = self.db.one("SELECT id FROM storage_groups WHERE name = ?", storage_group)
                if not row:
                    raise NotFound(f"no storage group {storage_group!r}", field="storage_group")
                group_id = row["id"]
            self.db.execute("DELETE FROM wake_targets WHERE storage_group_id IS ?", group_id)
            if broadcast is None and interface is None:
                return None
            self.db.execute("INSERT INTO wake_targets(storage_group_id, broadcast, interface, updated) "
                            "VALUES (?, ?, ?, ?)", group_id, broadcast, interface, time.time())
        found = self.db.one(_SETTINGS + "WHERE w.storage_group_id IS ?", group_id)
        assert found is not None
        return WakeSetting(**found)  # type: ignore[typeddict-item]

    def target_for(self, host_id: int, image: str | None = None) -> WakeTarget | None:
        """The target of this host: its image's storage group's (``image``, else the host's assigned one),
        else the server default; None when neither is set (then nothing is sent)."""
        if image is not None:
            row: dict[str, Any] | None = self.db.one("SELECT group_id FROM images WHERE name = ?", image)
        else:
            row = self.db.one("SELECT i.group_id FROM hosts h JOIN images i ON i.id = h.image_id WHERE h.id = ?",
                              host_id)
        group_id = row["group_id"] if row else None
        if group_id is not None:
            found = self.db.one(_SETTINGS + "WHERE w.storage_group_id = ?", group_id)
            if found:
                return WakeTarget(found["broadcast"], found["interface"], f"storage group {found['storage_group']}")
        default = self.db.one(_SETTINGS + "WHERE w.storage_group_id IS NULL")
        if default:
            return WakeTarget(default["broadcast"], default["interface"], "server default")
        return None

