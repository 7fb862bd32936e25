"""Where a task's bytes go: the node a task gets when it starts, or its place in the queue when all are full."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

from server_stub.errors import StorageBusy
from server_stub.store.database import Database
from server_stub.store.images import Images
from server_stub.store.models import StorageNode, Task
from server_stub.store.storage import Storage

# A client that asked within this many seconds is still in the queue (it asks again every 5 s).
WAITING_FRESH_S = 30


@dataclass(frozen=True)
class Placement:
    node: StorageNode | None         # None: the task reads or writes no image
    busy: StorageBusy | None = None  # every candidate full: the client waits (recorded on the task)


class Placer:
    def __init__(self, db: Database, storage: Storage, images: Images) -> None:
        self.db, self.storage, self.images = db, storage, images

    def place(self, task: Task) -> Placement:
        """A capture goes to the group's master, a deploy to the least loaded node holding the image
        (running / max_clients, then fewer running, then name). The caller's transaction keeps what is
        recorded here (the waiting mark, the queue position) even when it reports busy."""
        if task["image_id"] is None:
            return Placement(None)
        image = self.images.image(str(task["image"]))
        if task["type"] == "capture":
            candidates = self.storage.masters(image["group_id"])
        else:
            candidates = self.images.serving_nodes(image)
        free = [n for n in candidates if n["running"] < n["max_clients"]]
        if free:
            self.db.execute("UPDATE tasks SET waited = NULL WHERE id = ?", task["id"])
            return Placement(min(free, key=lambda n: (n["running"] / n["max_clients"], n["running"], n["name"])))
        now = time.time()
        ahead = self.db.scalar(
            "SELECT COUNT(*) FROM tasks t JOIN images i ON i.id = t.image_id WHERE i.group_id = ? "
            "AND t.state = 'queued' AND t.id < ? AND t.waited > ?",
            image["group_id"], task["id"], now - WAITING_FRESH_S)
        if not candidates:
            full = f"group {image['group_name']} has no node for {task['type']}"
        elif len(candidates) == 1:
            full = f"{candidates[0]['running']}/{candidates[0]['max_clients']} clients on node {candidates[0]['name']}"
        else:
            full = "every node holding the image is busy (" + ", ".join(
                f"{n['name']} {n['running']}/{n['max_clients']}" for n in candidates) + " clients)"
        busy = StorageBusy(f"storage full: {full}; waiting (position {ahead + 1})", ahead + 1)
        self.db.execute("UPDATE tasks SET waited = ?, progress = ? WHERE id = ?",
                        now, json.dumps({"stage": f"waiting: {busy}"}), task["id"])
        return Placement(None, busy)
