"""Replication jobs' records: one per node of an image's group but its home, ``queued → running → done |
failed``. What runs them (rsync in the event loop) is server_stub/replication.py."""
from __future__ import annotations

import os
import time
from typing import cast

from contract.foreign import detect_format
from server_stub.errors import Conflict, NotFound
from server_stub.store.database import Database
from server_stub.store.images import Images
from server_stub.store.models import ReplicationJob

JOB_STATES = ("queued", "running", "done", "failed")

JOBS = ("SELECT j.*, i.name AS image, src.name AS source, dst.name AS node, src.rsync_target AS source_target, "
        "dst.rsync_target AS node_target FROM replication_jobs j JOIN images i ON i.id = j.image_id "
        "JOIN storage_nodes src ON src.id = j.source_id JOIN storage_nodes dst ON dst.id = j.node_id ")


class ReplicationJobs:
    def __init__(self, db: Database, images: Images) -> None:
        self.db, self.images = db, images

    def queue_for(self, image_id: int) -> list[int]:
        """A job per node of the image's group but its home; a job already queued for that node will copy
        whatever is current when it runs, so none is added beside it."""
        with self.db.transaction():
            image = self.db.one("SELECT * FROM images WHERE id = ?", image_id)
            if image is None:
                raise NotFound(f"no image {image_id}")
            # Queued jobs have not run yet: they copy from the current home, and none copies the home onto itself.
            self.db.execute("DELETE FROM replication_jobs WHERE image_id = ? AND state = 'queued' AND node_id = ?",
                            image_id, image["storage_id"])
            self.db.execute("UPDATE replication_jobs SET source_id = ? WHERE image_id = ? AND state = 'queued'",
                            image["storage_id"], image_id)
            added = []
            for node in self.db.all("SELECT id FROM storage_nodes WHERE group_id = ? AND id != ? ORDER BY name",
                                    image["group_id"], image["storage_id"]):
                if self.db.one("SELECT id FROM replication_jobs WHERE image_id = ? AND node_id = ? "
                               "AND state = 'queued'", image_id, node["id"]):
                    continue
                cur = self.db.execute("INSERT INTO replication_jobs(image_id, source_id, node_id, state, created) "
                                      "VALUES (?, ?, ?, 'queued', ?)",
                                      image_id, image["storage_id"], node["id"], time.time())
                assert cur.lastrowid is not None
                added.append(cur.lastrowid)
        return added

    def queue_replication(self, image: str) -> list[ReplicationJob]:
        row = self.images.image(image)
        if not row["captured"]:
            raise Conflict(f"image {image} has never been captured; nothing to replicate")
        home = self.db.one("SELECT rsync_target FROM storage_nodes WHERE id = ?", row["storage_id"])
        root = str((home or {}).get("rsync_target") or "")
        found = root.startswith("/") and not os.path.islink(os.path.join(root, image)) and \
            detect_format(os.path.join(root, image))
        if found:
            raise Conflict(f"image {image} is a {found} image adopted as it lies in {root}; replication copies "
                           "images imager captured. Copy its directory yourself, or capture it once with imager")
        return [self.replication_job(i) for i in self.queue_for(row["id"])]

    def replication_job(self, job_id: int) -> ReplicationJob:
        row = self.db.one(JOBS + "WHERE j.id = ?", job_id)
        if not row:
            raise NotFound(f"no replication job {job_id}")
        return cast(ReplicationJob, row)

    def replication_jobs(self, image: str | None = None) -> list[ReplicationJob]:
        if image is not None:
            return self.db.all_as(ReplicationJob, JOBS + "WHERE i.name = ? ORDER BY j.id", image)
        return self.db.all_as(ReplicationJob, JOBS + "ORDER BY j.id")

    def claim_replication(self, busy_nodes: set[int]) -> ReplicationJob | None:
        """The oldest queued job for a node that is not copying already, now running."""
        marks = ",".join("?" * len(busy_nodes))
        exclude = f"AND node_id NOT IN ({marks}) " if busy_nodes else ""
        with self.db.transaction():
            row = self.db.one(f"SELECT id FROM replication_jobs WHERE state = 'queued' {exclude}ORDER BY id LIMIT 1",
                              *busy_nodes)
            if not row:
                return None
            self.db.execute("UPDATE replication_jobs SET state = 'running', started = ?, bytes = 0, error = NULL "
                            "WHERE id = ?", time.time(), row["id"])
        return self.replication_job(row["id"])

    def replication_progress(self, job_id: int, nbytes: int, version: str | None = None) -> None:
        with self.db.transaction():
            self.db.execute("UPDATE replication_jobs SET bytes = ?, version = COALESCE(?, version) WHERE id = ?",
                            nbytes, version, job_id)

    def end_replication(self, job_id: int, state: str, nbytes: int | None = None,
                        error: str | None = None) -> ReplicationJob:
        if state not in ("done", "failed"):
            raise ValueError(f"a replication job ends done or failed, not {state}")
        with self.db.transaction():
            self.db.execute("UPDATE replication_jobs SET state = ?, finished = ?, bytes = COALESCE(?, bytes), "
                            "error = ? WHERE id = ?", state, time.time(), nbytes, error, job_id)
        return self.replication_job(job_id)

    def requeue_interrupted_replication(self) -> int:
        """Jobs a stopped server left running start again from the beginning (rsync skips what is there)."""
        with self.db.transaction():
            return self.db.execute("UPDATE replication_jobs SET state = 'queued', started = NULL "
                                   "WHERE state = 'running'").rowcount
