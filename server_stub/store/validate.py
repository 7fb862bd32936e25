"""Checks of everything an admin, a technician or a client asks the store to keep.

The bottom of the store: it imports only the error hierarchy and the shared vocabulary, so a bad name,
MAC or option is refused with the same message whichever repository receives it.
"""
from __future__ import annotations

import json
import re
from typing import Any

from contract.task import IMAGE_FORMATS
from contract.vocabulary import (AFTER_VALUES, IMAGE_TYPES, ORIGINS, QUEUEABLE_TASK_TYPES, WIPE_MODES)
from server_stub.errors import Invalid

_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_EXPORT = re.compile(r"^[A-Za-z0-9.:\[\]-]+:/[A-Za-z0-9._/-]*$")
_MOUNT_OPTIONS = re.compile(r"^[A-Za-z0-9=.,_-]*$")
_DISK = re.compile(r"^(/dev/[A-Za-z0-9/_.-]+|(serial|wwn|model|size)=[A-Za-z0-9 ._:-]+)$")
# No '..' path component anywhere: a target names a place, it never climbs out of one.
_LOCAL = re.compile(r"^/(?!.*(^|/)\.\.(/|$))[A-Za-z0-9._/-]*$")
_DAEMON = re.compile(r"^rsync://([A-Za-z0-9][A-Za-z0-9._-]*@)?[A-Za-z0-9][A-Za-z0-9.-]*(:\d{1,5})?"
                     r"/[A-Za-z0-9][A-Za-z0-9._-]*(/(?!.*(^|/)\.\.(/|$))[A-Za-z0-9._/-]*)?$")
_SSH = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*@)?[A-Za-z0-9][A-Za-z0-9.-]*:/(?!.*(^|/)\.\.(/|$))[A-Za-z0-9._/-]*$")

MIN_PASSWORD = 8


def normalize_mac(mac: str) -> str:
    value = mac.strip().lower().replace("-", ":") if isinstance(mac, str) else ""
    if not _MAC.match(value):
        raise Invalid(f"{mac!r} is not a MAC address (aa:bb:cc:dd:ee:ff)")
    return value


def check_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise Invalid(f"{what} name {name!r} must be 1-100 letters, digits, '.', '_' or '-'")
    return name


def check_export(export: Any) -> str:
    if not isinstance(export, str) or not _EXPORT.match(export):
        raise Invalid(f"{export!r} is not an NFS export (host:/path)")
    return export


def check_mount_options(options: Any) -> str:
    if not isinstance(options, str) or not _MOUNT_OPTIONS.match(options):
        raise Invalid(f"{options!r} are not NFS mount options")
    return options


def check_max_clients(max_clients: Any) -> int:
    if not isinstance(max_clients, int) or isinstance(max_clients, bool) or max_clients < 1:
        raise Invalid("max_clients must be a number ≥ 1")
    return max_clients


def check_rsync_target(target: Any) -> str:
    """A directory on this server, ``rsync://host[:port]/module[/path]`` or ``[user@]host:/path`` (ssh).
    Returned with one trailing '/', so 'TARGET' + '.images/…' is a path under it."""
    kinds = (_DAEMON,) if isinstance(target, str) and target.startswith("rsync:") else (_LOCAL, _SSH)
    if not isinstance(target, str) or not any(r.match(target) for r in kinds):
        raise Invalid(f"{target!r} is not an rsync target (/local/dir, rsync://host/module/path or "
                      "user@host:/path)")
    return target.rstrip("/") + "/"


def check_choice(value: Any, choices: tuple[str, ...], what: str) -> str:
    if value not in choices:
        raise Invalid(f"{what} must be one of {', '.join(choices)}")
    return str(value)


def check_task_type(type_: Any) -> str:
    if type_ not in QUEUEABLE_TASK_TYPES:
        raise Invalid(f"task type {type_!r} is not one of {', '.join(QUEUEABLE_TASK_TYPES)}")
    return str(type_)


def check_image_type(type_: Any) -> str:
    if type_ not in IMAGE_TYPES:
        raise Invalid(f"image type {type_!r} is not one of {', '.join(IMAGE_TYPES)}")
    return str(type_)


def check_image_format(format_: Any) -> str:
    """What an image's captures write (contract.task.IMAGE_FORMATS): stream, or chunked for incremental redeploys."""
    if format_ not in IMAGE_FORMATS:
        raise Invalid(f"image format {format_!r} is not one of {', '.join(IMAGE_FORMATS)}", field="format")
    return str(format_)


def check_after(after: Any) -> str:
    return check_choice(after, AFTER_VALUES, "after")


def check_origin(origin: Any) -> str:
    return check_choice(origin, ORIGINS, "origin")


def check_disk_selector(disk: Any) -> str | None:
    if disk is not None and not (isinstance(disk, str) and _DISK.match(disk)):
        raise Invalid(f"{disk!r} is not a disk selector (/dev/…, serial=…, wwn=…, model=…, size=…)")
    return disk


def check_partition(type_: str, partition: Any) -> int | None:
    if partition is not None and (type_ != "deploy" or not isinstance(partition, int) or not 0 < partition < 256):
        raise Invalid("partition is a number 1-255, for deploy tasks only")
    return partition


def check_task_options(type_: str, options: Any) -> str | None:
    """The task's options as stored (JSON): a wipe's mode, nothing for the other types."""
    if type_ == "wipe":
        if not isinstance(options, dict) or options.get("mode") not in WIPE_MODES or set(options) != {"mode"}:
            raise Invalid(f"a wipe task needs options {{\"mode\": one of {', '.join(WIPE_MODES)}}}")
        return json.dumps(options)
    if options not in (None, {}):
        raise Invalid(f"a {type_} task takes no options")
    return None


def check_technician_password(password: Any) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD or not password.isprintable():
        raise Invalid(f"the technician password must be at least {MIN_PASSWORD} printable characters")
    return password


MAX_PAGE = 1000


def check_page(offset: Any, limit: Any) -> tuple[int, int | None]:
    """A page's start and size (None: all rows, for the CLI's full lists)."""
    if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset < 2**63:
        raise Invalid("offset must be a number ≥ 0", field="offset")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE):
        raise Invalid(f"limit must be a number from 1 to {MAX_PAGE}", field="limit")
    return offset, limit


def like_pattern(text: str) -> str:
    """``%text%`` for LIKE … ESCAPE '\\': the user's % and _ are letters, not wildcards."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
