"""Names both sides agree on: task types and states, image types, wipe modes, what happens after."""
from __future__ import annotations

import enum


class TaskType(enum.StrEnum):
    CAPTURE = "capture"
    DEPLOY = "deploy"
    INVENTORY = "inventory"
    MULTICAST = "multicast"     # one per host of a multicast session; created by the session, not directly
    WIPE = "wipe"
    DISKTEST = "disktest"
    DEBUG = "debug"


class TaskState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELED = "canceled"


class ImageType(enum.StrEnum):
    """FOG's image types: 1 single disk resizable, 2 multiple partitions single disk, 3 all disks, 4 raw."""

    RESIZABLE = "resizable"
    MULTIPART = "multipart"
    ALLDISKS = "alldisks"
    RAW = "raw"


class WipeMode(enum.StrEnum):
    FAST = "fast"       # table, signatures, first and last MiB
    NORMAL = "normal"   # then one pass of zeros
    FULL = "full"       # NVMe sanitize/format, else random then zeros


class After(enum.StrEnum):
    """What a machine does when its task succeeded (a failure always reboots)."""

    REBOOT = "reboot"
    POWEROFF = "poweroff"


class Origin(enum.StrEnum):
    ADMIN = "admin"
    MENU = "menu"


# Task types an admin queues directly (multicast tasks come from a session).
QUEUEABLE_TASK_TYPES: tuple[str, ...] = tuple(t.value for t in TaskType if t is not TaskType.MULTICAST)
# Tasks that read or write an image.
IMAGE_TASK_TYPES: tuple[str, ...] = (TaskType.CAPTURE.value, TaskType.DEPLOY.value)
TASK_STATES: tuple[str, ...] = tuple(s.value for s in TaskState)
ACTIVE_STATES: tuple[str, ...] = (TaskState.QUEUED.value, TaskState.RUNNING.value)
FINAL_STATES: tuple[str, ...] = (TaskState.DONE.value, TaskState.FAILED.value, TaskState.CANCELED.value)
IMAGE_TYPES: tuple[str, ...] = tuple(t.value for t in ImageType)
WIPE_MODES: tuple[str, ...] = tuple(m.value for m in WipeMode)
AFTER_VALUES: tuple[str, ...] = tuple(a.value for a in After)
ORIGINS: tuple[str, ...] = tuple(o.value for o in Origin)

# What an admin or technician is told about each choice (CLI help, the menu, the console).
IMAGE_TYPE_HELP: dict[str, str] = {
    ImageType.RESIZABLE: "one disk, resizable to any disk the data fits (FOG type 1)",
    ImageType.MULTIPART: "one disk, exact partition layout (FOG type 2)",
    ImageType.ALLDISKS: "every fixed disk, exact layouts (FOG type 3)",
    ImageType.RAW: "every byte of the disk (FOG type 4)",
}
WIPE_MODE_HELP: dict[str, str] = {
    WipeMode.FAST: "partition table, signatures, first and last MiB (seconds)",
    WipeMode.NORMAL: "fast, then one pass of zeros over the whole disk",
    WipeMode.FULL: "NVMe sanitize/format if the drive can, else random data then zeros",
}
