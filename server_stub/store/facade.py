"""``Store``: the repositories over one Database, and their public methods under one name each.

Callers (webapp, menuapi, multicast, replication, cli) hold one Store; the repositories stay reachable as
attributes for code that wants one subject (``store.tasks_repo.transition``).
"""
from __future__ import annotations

from collections.abc import Callable

from server_stub.store.accounts import Accounts
from server_stub.store.adopt import ImageAdopter
from server_stub.store.database import Database
from server_stub.store.hosts import Hosts
from server_stub.store.images import Images
from server_stub.store.menu import MenuSettings
from server_stub.store.multicast import MulticastRecords
from server_stub.store.placement import Placer
from server_stub.store.replication_jobs import ReplicationJobs
from server_stub.store.schedules import Schedules
from server_stub.store.scripts import Scripts
from server_stub.store.storage import Storage
from server_stub.store.tasks import Tasks
from server_stub.store.models import Image, ImageVersion
from server_stub.store.versions import ImageVersions


class Store:
    def __init__(self, path: str) -> None:
        self.db = Database(path)
        self.storage_repo = Storage(self.db)
        self.images_repo = Images(self.db, self.storage_repo)
        self.hosts_repo = Hosts(self.db, self.images_repo)
        self.jobs_repo = ReplicationJobs(self.db, self.images_repo)
        self.tasks_repo = Tasks(self.db, self.hosts_repo, self.images_repo,
                                Placer(self.db, self.storage_repo, self.images_repo), self.jobs_repo)
        self.multicast_repo = MulticastRecords(self.db, self.hosts_repo, self.tasks_repo)
        self.menu_repo = MenuSettings(self.db)
        self.accounts = Accounts(self.db)  # console users, their sessions, the audit log
        self.scripts_repo = Scripts(self.db)  # post-deploy scripts and their attachments (issue 16)

        # hosts
        self.add_host = self.hosts_repo.add_host
        self.host = self.hosts_repo.host
        self.hosts = self.hosts_repo.hosts
        self.find_host_by_mac = self.hosts_repo.find_host_by_mac
        self.register_host = self.hosts_repo.register_host
        self.inventory = self.hosts_repo.inventory
        self.log_boot = self.hosts_repo.log_boot
        self.boot_log = self.hosts_repo.boot_log
        # storage groups and nodes
        self.add_group = self.storage_repo.add_group
        self.group = self.storage_repo.group
        self.groups = self.storage_repo.groups
        self.add_storage = self.storage_repo.add_storage
        self.storage = self.storage_repo.storage
        self.storage_nodes = self.storage_repo.storage_nodes
        self.set_storage = self.storage_repo.set_storage
        # images
        self.add_image = self.images_repo.add_image
        self.image = self.images_repo.image
        self.images = self.images_repo.images
        # replication jobs
        self.queue_replication = self.jobs_repo.queue_replication
        self.replication_job = self.jobs_repo.replication_job
        self.replication_jobs = self.jobs_repo.replication_jobs
        self.claim_replication = self.jobs_repo.claim_replication
        self.replication_progress = self.jobs_repo.replication_progress
        self.end_replication = self.jobs_repo.end_replication
        self.requeue_interrupted_replication = self.jobs_repo.requeue_interrupted_replication
        # tasks
        self.add_task = self.tasks_repo.add_task
        self.add_tasks = self.tasks_repo.add_tasks
        self.task = self.tasks_repo.task
        self.tasks = self.tasks_repo.tasks
        self.active_task_for_mac = self.tasks_repo.active_task_for_mac
        self.start_task = self.tasks_repo.start_task
        self.record_progress = self.tasks_repo.record_progress
        self.finish_task = self.tasks_repo.finish_task
        self.fail_task = self.tasks_repo.fail_task
        self.cancel_task = self.tasks_repo.cancel_task
        self.tasks_by_id = self.tasks_repo.tasks_by_id
        # ("task", id) / ("session", id) after each change, whoever made it (the console's live updates)
        self.on_change = self.tasks_repo.listeners.append
        # multicast sessions
        self.add_session = self.multicast_repo.add_session
        self.session = self.multicast_repo.session
        self.sessions = self.multicast_repo.sessions
        self.session_of_task = self.multicast_repo.session_of_task
        self.multicast_checkin = self.multicast_repo.multicast_checkin
        self.multicast_ready = self.multicast_repo.multicast_ready
        self.multicast_go = self.multicast_repo.multicast_go
        self.multicast_sending = self.multicast_repo.multicast_sending
        self.multicast_sender = self.multicast_repo.multicast_sender
        self.multicast_drop = self.multicast_repo.multicast_drop
        self.multicast_end = self.multicast_repo.multicast_end
        self.multicast_interrupted = self.multicast_repo.multicast_interrupted
        self.waiting_sessions = self.multicast_repo.waiting_sessions
        self.active_sessions = self.multicast_repo.active_sessions
        # the technician's menu
        self.technician_password = self.menu_repo.technician_password
        self.set_technician_password = self.menu_repo.set_technician_password
        # the console's lists, edits and removals (issue 12)
        self.versions_repo = ImageVersions(self.db, self.images_repo)
        self.hosts_page = self.hosts_repo.hosts_page
        self.edit_host = self.hosts_repo.edit_host
        self.remove_host = self.hosts_repo.remove_host
        self.tasks_page = self.tasks_repo.tasks_page
        self.edit_image = self.images_repo.edit_image
        self.image_source_host = self.images_repo.source_host
        self.image_versions = self.versions_repo.image_versions
        # told the storage nodes whose files a removal freed (the chunk collector runs there)
        self.removal_listeners: list[Callable[[set[str]], None]] = []
        self.on_removal = self.removal_listeners.append
        # FOG and Clonezilla trees on a master become image definitions (issue 14)
        self.adopt_images = ImageAdopter(self.db, self.storage_repo, self.images_repo).adopt_images
        self.rename_group = self.storage_repo.rename_group
        self.remove_group = self.storage_repo.remove_group
        self.remove_storage = self.storage_repo.remove_storage
        self.unknown_hosts = self.menu_repo.unknown_hosts
        self.set_unknown_hosts = self.menu_repo.set_unknown_hosts
        self.settings = self.menu_repo.settings
        # scheduled and recurring tasks (issue 16; their times and runs: server_stub/scheduler.py)
        self.schedules_repo = Schedules(self.db, self.hosts_repo, self.images_repo)

    def remove_image_version(self, name: str, version: str) -> list[ImageVersion]:
        removed = self.versions_repo.remove_image_version(name, version)
        self._removed({v["node"] for v in removed})
        return removed

    def remove_image(self, name: str) -> Image:
        image = self.images_repo.remove_image(name)
        self._removed({n["name"] for n in self.storage_nodes()
                       if n["group_id"] == image["group_id"] or n["id"] == image["storage_id"]})
        return image

    def _removed(self, nodes: set[str]) -> None:
        for listener in self.removal_listeners:
            listener(nodes)

    def close(self) -> None:
        self.db.close()
